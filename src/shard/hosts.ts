// A shard's Postgres URL may name several hosts, in libpq's multi-host form:
//   postgres://user:pass@h1:5432,h2:5432/engine[?target_session_attrs=read-write]
// node-postgres connects to one host only, so the URL is taken apart here: one
// single-host URL per host (what pg is given), and whether new connections must be
// checked to accept writes. A URL of one host without target_session_attrs is passed
// to pg exactly as written.

export interface HostPort { host: string; port: number }

export interface ShardTarget {
  /** The hosts in the order listed. */
  hosts: HostPort[];
  /**
   * Each new connection is checked to accept writes (one query) and the shard follows
   * the host that does: several hosts, or `target_session_attrs=read-write` given.
   */
  follows: boolean;
  /** The URL pg is given for one of the hosts (never target_session_attrs). */
  urlFor(h: HostPort): string;
  /** `h1:5432,h2:5432/engine`: where, without the user or password. */
  display: string;
}

export class ShardUrlError extends Error {}

const SCHEME = /^(postgres(?:ql)?:\/\/)([^/?#]*)(.*)$/s;
const HOST = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._%-]+)(?::(\d{1,5}))?$/;
const DEFAULT_PORT = 5432;
/** The one value the engine accepts: it writes, so it follows the host that takes writes. */
const TARGET = 'read-write';

export const hostName = (h: HostPort) => `${h.host.includes(':') ? `[${h.host}]` : h.host}:${h.port}`;

/**
 * PG_SHARDS is a comma list of URLs, and a multi-host URL holds commas of its own: a
 * new URL starts only where a comma is followed by a scheme (postgres://).
 */
export function splitShardList(raw: string): string[] {
  return raw.split(/,(?=\s*[A-Za-z][A-Za-z0-9+.-]*:\/\/)/).map((s) => s.trim()).filter(Boolean);
}

/** Takes a shard URL apart; a malformed host list or an unsupported option throws ShardUrlError naming it. */
export function parseShardUrl(url: string): ShardTarget {
  const m = SCHEME.exec(url);
  if (!m) throw new ShardUrlError(`not a postgres:// URL: ${redact(url)}`);
  const [, scheme, authority, rest] = m as unknown as [string, string, string, string];
  const at = authority.lastIndexOf('@');
  const userinfo = at >= 0 ? authority.slice(0, at + 1) : '';
  const specs = authority.slice(at + 1).split(',');
  const queryAt = rest.indexOf('?');
  const path = queryAt >= 0 ? rest.slice(0, queryAt) : rest;
  const query = queryAt >= 0 ? rest.slice(queryAt + 1).split('&').filter(Boolean) : [];
  const params = new URLSearchParams(query.join('&'));

  const target = params.get('target_session_attrs');
  if (target !== null && target !== TARGET) {
    throw new ShardUrlError(`target_session_attrs=${target} is not supported in ${redact(url)}: the engine writes, so a shard's ` +
      `connections go to the host that accepts writes (${TARGET}, which a URL of several hosts gets without asking)`);
  }
  for (const name of ['host', 'hostaddr', 'port']) {
    if (params.get(name)?.includes(',')) {
      throw new ShardUrlError(`${name}= lists several values in ${redact(url)}: list the hosts in the URL instead, postgres://user:pass@h1:5432,h2:5432/db`);
    }
  }
  const several = specs.length > 1;
  if (!several && target === null) {
    // As today: pg parses it, with its own defaults (PGHOST, PGPORT, sockets).
    const single = parseHost(specs[0]!, url, false);
    return { hosts: [single], follows: false, urlFor: () => url, display: `${hostName(single)}${path}` };
  }
  const hosts = specs.map((s) => parseHost(s, url, true));
  const seen = new Set(hosts.map(hostName));
  if (seen.size !== hosts.length) throw new ShardUrlError(`a host is listed twice in ${redact(url)}`);
  const kept = query.filter((p) => !p.startsWith('target_session_attrs='));
  const tail = `${path}${kept.length ? `?${kept.join('&')}` : ''}`;
  const raw = new Map(hosts.map((h, i) => [hostName(h), specs[i]!]));
  return {
    hosts, follows: true,
    urlFor: (h) => `${scheme}${userinfo}${raw.get(hostName(h)) ?? hostName(h)}${tail}`,
    display: `${hosts.map(hostName).join(',')}${path}`,
  };
}

function parseHost(spec: string, url: string, strict: boolean): HostPort {
  const m = HOST.exec(spec);
  if (!m) {
    if (!strict) return { host: spec || 'localhost', port: DEFAULT_PORT };
    throw new ShardUrlError(`invalid host "${spec}" in ${redact(url)}: expected host[:port], comma-separated, e.g. postgres://user:pass@h1:5432,h2:5432/db`);
  }
  const port = m[2] === undefined ? DEFAULT_PORT : Number(m[2]);
  if (port < 1 || port > 65535) throw new ShardUrlError(`invalid port ${m[2]} in ${redact(url)}`);
  return { host: m[1]!.replace(/^\[(.*)\]$/, '$1'), port };
}

/** A URL fit for an error message: the password replaced. */
export function redact(url: string): string {
  return url.replace(/^(postgres(?:ql)?:\/\/[^:@/]*):[^@/]*@/, '$1:***@');
}
