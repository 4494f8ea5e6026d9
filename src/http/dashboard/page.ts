// GET /dashboard (and / redirects to it): the live sale dashboard, one self-contained
// page. Its CSS and script are inlined at start (no external assets, no CDN), and the
// Content-Security-Policy allows exactly those two by hash, plus this origin for
// fetch and the WebSocket. The three files sit beside this module: in src/, and under
// dist/src/ where `npm run build` copies them (tools/build/assets.ts), so a release runs
// without src/.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Replies } from '../reply.js';
import type { TemplatedApp } from '../uws.js';

const DIR = path.dirname(fileURLToPath(import.meta.url));

/** The page and its Content-Security-Policy; throws (naming the file) when one is missing. */
export function buildDashboard(): { html: string; csp: string } {
  const read = (f: string) => readFileSync(path.join(DIR, f), 'utf8');
  const style = read('dashboard.css');
  const script = read('dashboard.js');
  const html = read('dashboard.html').replace('/*STYLE*/', () => style).replace('/*SCRIPT*/', () => script);
  const hash = (s: string) => `'sha256-${createHash('sha256').update(s).digest('base64')}'`;
  const csp = [
    "default-src 'none'", `style-src ${hash(style)}`, `script-src ${hash(script)}`, "connect-src 'self'",
    "img-src 'self' data:", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
  ].join('; ');
  return { html, csp };
}

export function mountDashboard(app: TemplatedApp, replies: Replies): void {
  const page = buildDashboard();
  const headers = {
    'content-type': 'text/html; charset=utf-8', 'content-security-policy': page.csp, 'cache-control': 'no-store',
    'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer',
  };
  app.get('/dashboard', (res) => replies.send(res, replies.nextRequestId(), { status: 200, headers, body: page.html }));
  app.get('/', (res) => replies.send(res, replies.nextRequestId(),
    { status: 303, headers: { location: '/dashboard' }, body: '' }));
}
