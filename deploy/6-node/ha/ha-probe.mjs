#!/usr/bin/env node
// Split brain, watched from an app server: every --probe-ms, pg_is_in_recovery() and
// transaction_read_only on every node of every shard at once, each answer appended as
// a JSON line to --events. Afterwards `rounds` judges: in no round may a shard have
// two writable nodes. deploy-local.sh runs `watch` on app1 through its whole HA proof.
//
// usage: ha-probe.mjs watch --shards '0:db1=10.0.0.1:5432,db2=10.0.0.2:5432;1:...' --user U --password P --db D
//          --events FILE --status FILE --stop-file FILE [--probe-ms 150]
//        ha-probe.mjs rounds --events FILE
// `watch` rewrites --status after every round (shell-readable: ROUNDS=.. MULTI=.. W0=db1 W1=.. W2=..,
// the writable node per shard, `none` or `db1+db2`). `rounds` prints
// `RESULT probes {...}` and exits 1 when any round saw two writable nodes of one shard.
// It needs the `pg` package (the repository's node_modules).
import { appendFileSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import pg from 'pg';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function opts(argv) {
  const o = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || argv[i + 1] === undefined) throw new Error(`bad argument ${argv[i]}`);
    o[argv[i].slice(2)] = argv[i + 1];
  }
  return o;
}

/** '0:db1=a:5432,db2=b:5432;1:...' -> [{ shard, name, host, port }] */
function parseShards(spec) {
  return spec.split(';').filter(Boolean).flatMap((part) => {
    const at = part.indexOf(':');
    if (at < 1) throw new Error(`bad --shards part ${part}`);
    const shard = part.slice(0, at), list = part.slice(at + 1);
    return list.split(',').map((s) => {
      const [name, hp] = s.split('=');
      const [host, port] = hp.split(':');
      return { shard: Number(shard), name, host, port: Number(port) };
    });
  });
}

// ---- watch -----------------------------------------------------------------------------

async function watch(o) {
  const nodes = parseShards(o.shards);
  const every = Number(o['probe-ms'] ?? 150);
  const shards = [...new Set(nodes.map((n) => n.shard))].sort();
  const clients = new Map();
  const st = { rounds: 0, multi: 0 };
  const key = (n) => `${n.shard}/${n.name}`;

  // A node that does not answer within 2 x --probe-ms counts as down for that round,
  // so rounds keep their pace while a node hangs (its connection is made again).
  async function state(n) {
    try {
      let c = clients.get(key(n));
      if (!c) {
        c = new pg.Client({ host: n.host, port: n.port, user: o.user, password: o.password, database: o.db,
          connectionTimeoutMillis: 2 * every, query_timeout: 2 * every, application_name: 'ha-probe' });
        c.on('error', () => undefined);
        clients.set(key(n), c);
        await c.connect();
      }
      const r = await c.query("SELECT pg_is_in_recovery() AS rec, current_setting('transaction_read_only') AS ro");
      return !r.rows[0].rec && r.rows[0].ro === 'off' ? 'p' : 's';
    } catch {
      clients.get(key(n))?.end().catch(() => undefined);
      clients.delete(key(n));
      return 'x';
    }
  }

  while (!existsSync(o['stop-file'])) {
    const t = Date.now();
    const states = await Promise.all(nodes.map(state));
    const st_ = {};
    nodes.forEach((n, i) => { (st_[n.shard] ??= {})[n.name] = states[i]; });
    appendFileSync(o.events, `${JSON.stringify({ k: 'probe', t, st: st_ })}\n`);
    st.rounds++;
    const writable = shards.map((s) => Object.entries(st_[s]).filter(([, v]) => v === 'p').map(([name]) => name));
    if (writable.some((w) => w.length > 1)) st.multi++;
    const tmp = `${o.status}.tmp`;
    writeFileSync(tmp, `ROUNDS=${st.rounds} MULTI=${st.multi} ${shards.map((s, i) => `W${s}=${writable[i].join('+') || 'none'}`).join(' ')} PROBE_MS=${t}\n`);
    renameSync(tmp, o.status);
    await sleep(Math.max(0, every - (Date.now() - t)));
  }
  for (const c of clients.values()) c.end().catch(() => undefined);
}

// ---- rounds ----------------------------------------------------------------------------

function quantile(xs, q) {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

function rounds(o) {
  const probes = readFileSync(o.events, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((e) => e.k === 'probe');
  const writable = (p, s) => Object.values(p.st[s]).filter((v) => v === 'p').length;
  const shards = probes.length ? Object.keys(probes[0].st) : [];
  const perShard = Object.fromEntries(shards.map((s) => [s, {
    two_writable_rounds: probes.filter((p) => writable(p, s) > 1).length,
    no_writable_rounds: probes.filter((p) => writable(p, s) === 0).length,
  }]));
  const multi = probes.filter((p) => shards.some((s) => writable(p, s) > 1));
  const gaps = probes.slice(1).map((p, i) => p.t - probes[i].t);
  const out = {
    rounds: probes.length, shards: shards.length, two_writable_rounds: multi.length, two_writable_at: multi.slice(0, 5).map((p) => p.t),
    max_writable: Math.max(0, ...probes.flatMap((p) => shards.map((s) => writable(p, s)))), per_shard: perShard,
    interval_p50_ms: quantile(gaps, 0.5), interval_max_ms: Math.max(0, ...gaps),
  };
  process.stdout.write(`RESULT probes ${JSON.stringify(out)}\n`);
  process.exit(probes.length > 0 && multi.length === 0 ? 0 : 1);
}

const [cmd, ...rest] = process.argv.slice(2);
const o = opts(rest);
if (cmd === 'watch') await watch(o);
else if (cmd === 'rounds') rounds(o);
else { process.stderr.write('usage: ha-probe.mjs watch|rounds ... (see the top of the file)\n'); process.exit(2); }
