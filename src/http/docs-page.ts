// GET /docs: the OpenAPI document as one readable page, rendered on the server from
// the same object /openapi.json serves (no script, no external asset: the machines
// this runs on may have no internet). Every operation is one <section> with its
// method, path, who may call it, parameters, request body and answers.
import { createHash } from 'node:crypto';

type Doc = Record<string, any>;

const STYLE = `
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:72rem;padding:1rem 1.5rem;color:#1b1f24}
h1{font-size:1.5rem}h2{font-size:1.1rem;margin:2rem 0 .3rem;font-family:ui-monospace,monospace}
code,pre{font-family:ui-monospace,monospace;font-size:13px}
pre{background:#f4f5f7;padding:.6rem;white-space:pre-wrap;overflow:auto;max-height:28rem}
table{border-collapse:collapse;margin:.4rem 0}
td,th{border:1px solid #d0d4da;padding:.2rem .5rem;text-align:left;vertical-align:top}
.m{display:inline-block;min-width:4.2rem;font-weight:700;text-transform:uppercase}
.get{color:#0a6b2e}.post{color:#0b4f9c}.put,.patch{color:#8a5a00}.delete{color:#a11}
section{border-top:1px solid #d0d4da;padding-bottom:.5rem}nav li{list-style:none;font-family:ui-monospace,monospace}
.who{color:#555}`;

/** Text and attribute values (always double-quoted here) made inert. */
const esc = (v: unknown) => String(v).replace(/[&<>]/g, (c) => `&#${c.charCodeAt(0)};`);
const attr = (v: unknown) => esc(v).replace(/"/g, '&#34;');
const anchor = (method: string, path: string) => `op-${method}-${path.replace(/[^A-Za-z0-9]+/g, '-')}`;

/** A schema in one line: its type and the constraints a client must meet. */
function brief(s: Doc | undefined): string {
  if (!s) return '';
  const type = Array.isArray(s.type) ? s.type.join(' | ') : s.type
    ?? (s.anyOf ? 'one of several' : s.const !== undefined ? JSON.stringify(s.const) : 'any');
  const bits = [type];
  if (s.enum) bits.push(`one of ${s.enum.map((e: unknown) => JSON.stringify(e)).join(', ')}`);
  if (s.pattern) bits.push(`pattern ${s.pattern}`);
  for (const k of ['minimum', 'maximum', 'minLength', 'maxLength', 'minItems', 'maxItems',
    'default']) if (s[k] !== undefined) bits.push(`${k} ${JSON.stringify(s[k])}`);
  return bits.join('; ');
}

const pad = (depth: number) => '  '.repeat(depth);

/**
 * A schema as an indented outline, `name: type; constraints` per field. In a request
 * (`marks`) a field the client may leave out is `name?`; answers carry every field
 * their status knows.
 */
function outline(s: Doc, marks: boolean, depth = 0): string {
  if (s.$ref) return s.$ref.split('/').pop();
  if (s.anyOf) return s.anyOf.map((x: Doc) => outline(x, marks, depth)).join(' | ');
  if (s.type === 'object' && s.properties) {
    const required = new Set<string>(s.required ?? []);
    const fields = Object.entries<Doc>(s.properties).map(([name, f]) => {
      const note = f.description ? `  // ${f.description}` : '';
      return `${pad(depth + 1)}${name}${marks && !required.has(name) ? '?' : ''}: ${outline(f, marks,
        depth + 1)}${note}`;
    });
    return `{\n${fields.join('\n')}\n${pad(depth)}}`;
  }
  if (s.type === 'array' && s.items) {
    const n = [s.minItems !== undefined ? `min ${s.minItems}` : '',
      s.maxItems !== undefined ? `max ${s.maxItems}` : ''].filter(Boolean).join(', ');
    return `[${outline(s.items, marks, depth)}]${n ? ` (${n} items)` : ''}`;
  }
  return brief(s);
}

function schemaBlock(label: string, schema: Doc, marks: boolean): string {
  if (schema.$ref === '#/components/schemas/Error') return ' <a href="#error-shape">(the error shape)</a>';
  return `<details${marks ? ' open' : ''}><summary>${esc(label)}</summary><pre>${esc(outline(schema,
    marks))}</pre></details>`;
}

function parameters(params: Doc[]): string {
  if (params.length === 0) return '';
  const rows = params.map((p) =>
    `<tr><td><code>${esc(p.name)}</code></td><td>${esc(p.in)}</td><td>${p.required ? 'yes' : 'no'}</td>` +
    `<td>${esc(brief(p.schema))}</td><td>${esc(p.description ?? '')}</td></tr>`);
  const head = '<tr><th>parameter</th><th>in</th><th>required</th><th>schema</th><th>meaning</th></tr>';
  return `<table>${head}${rows.join('')}</table>`;
}

function responses(rs: Doc): string {
  const rows = Object.entries(rs).map(([status, r]) => {
    const headers = Object.keys(r.headers ?? {}).map((h) => `<code>${esc(h)}</code>`).join(', ');
    const [type, media] = (Object.entries<Doc>(r.content ?? {})[0] ?? []) as [string?, Doc?];
    const body = media?.schema ? schemaBlock(type ?? '', media.schema, false) : '';
    return `<tr><td>${esc(status)}</td><td>${esc(r.description ?? '')}${body}</td><td>${headers}</td></tr>`;
  });
  return `<table><tr><th>answer</th><th>body</th><th>headers</th></tr>${rows.join('')}</table>`;
}

function operation(path: string, method: string, op: Doc): string {
  const body = op.requestBody?.content?.['application/json']?.schema;
  return `<section id="${anchor(method, path)}" data-op="${attr(`${method.toUpperCase()} ${path}`)}">
<h2><span class="m ${esc(method)}">${esc(method)}</span>${esc(path)}</h2>
<p>${esc(op.summary ?? '')} <span class="who">(${esc(op['x-auth']
  ?? (op.security?.length ? 'bearer token' : 'public'))}; <code>${esc(op.operationId)}</code>)</span></p>
${op.description ? `<p>${esc(op.description)}</p>` : ''}
${parameters(op.parameters ?? [])}
${body ? schemaBlock('request body (application/json)', body, true) : ''}
${responses(op.responses ?? {})}
</section>`;
}

function operations(doc: Doc): [string, string, Doc][] {
  return Object.entries<Doc>(doc.paths ?? {}).flatMap(([path, ops]) =>
    Object.entries<Doc>(ops).map(([method, op]) => [path, method, op] as [string, string, Doc]));
}

export function renderDocs(doc: Doc): string {
  const ops = operations(doc);
  const nav = ops.map(([path, method, op]) => `<li><a href="#${anchor(method,
    path)}"><span class="m ${esc(method)}">${esc(method)}</span>${esc(path)}</a> ${esc(op.summary ?? '')}</li>`);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(doc.info?.title ?? 'API')}</title><style>${STYLE}</style></head>
<body><h1>${esc(doc.info?.title ?? 'API')}</h1>
<p>${esc(doc.info?.description ?? '')}</p>
<p>Rendered from <a href="/openapi.json">/openapi.json</a> (OpenAPI ${esc(doc.openapi)}).
Bearer tokens go in <code>Authorization: Bearer &lt;token&gt;</code>.</p>
<nav><ul>${nav.join('')}</ul></nav>
<section id="error-shape"><h2>The error shape</h2><pre>${esc(outline(doc.components?.schemas?.Error ?? {},
  false))}</pre></section>
${ops.map(([path, method, op]) => operation(path, method, op)).join('\n')}
</body></html>`;
}

/** The page and the headers it is served with: only its own inline style may apply. */
export function docsPage(doc: Doc): { html: string; headers: Record<string, string> } {
  const styleHash = createHash('sha256').update(STYLE).digest('base64');
  return {
    html: renderDocs(doc),
    headers: {
      'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'content-security-policy': `default-src 'none'; style-src 'sha256-${styleHash}'; ` +
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    },
  };
}
