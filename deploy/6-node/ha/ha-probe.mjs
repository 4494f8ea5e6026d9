#!/usr/bin/env node
// The client side of prove-local.sh: it stands in for an app server writing to one
// shard while that shard fails over, and judges afterwards what the database kept.
//
//   run     a writer: one INSERT after another into ha_probe on whichever node takes
//           writes, each acknowledged id recorded with when it was sent and acknowledged;
//           and a prober: every --probe-ms, pg_is_in_recovery() on every node at once.
//           Both append JSON lines to --events; --status gets a shell-readable summary
//           after each probe round. Stops when --stop-file exists.
//   verify  reads the events and the phases prove-local.sh marked, the rows of the
//           final primary and (optionally) of a point-in-time restore, and prints
//           RESULT lines: acknowledged rows lost, writable nodes per probe round,
//           failover and write-gap times per phase, the restore check.
//
// usage: ha-probe.mjs run --nodes db1=10.0.0.1:5432,db2=10.0.0.2:5432 --user U --password P --db D
//          --events FILE --status FILE --stop-file FILE [--every-ms 20] [--probe-ms 150]
//        ha-probe.mjs verify --events FILE --marks FILE --final URL [--restored URL --target-ms MS]
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

// ---- run ---------------------------------------------------------------------------

async function run(o) {
  const nodes = o.nodes.split(',').map((s) => {
    const [name, hp] = s.split('=');
    const [host, port] = hp.split(':');
    return { name, host, port: Number(port) };
  });
  const every = Number(o['every-ms'] ?? 20);
  const probeEvery = Number(o['probe-ms'] ?? 150);
  // As the engine's pools: a client-side deadline on every query (a node cut off the
  // network answers nothing; the writer waits 6 s like the engine's query_timeout, the
  // prober 1 s), connects bounded too.
  const cfg = (n, queryMs) => ({ host: n.host, port: n.port, user: o.user, password: o.password, database: o.db,
    connectionTimeoutMillis: 1000, query_timeout: queryMs, application_name: 'ha-probe' });
  const log = (ev) => appendFileSync(o.events, `${JSON.stringify(ev)}\n`);
  const st = { acks: 0, fails: 0, lastAckMs: 0, lastAckNode: '', rounds: 0, multi: 0, writable: '' };
  const stopped = () => existsSync(o['stop-file']);

  async function isPrimary(n, client) {
    const r = await client.query('SELECT pg_is_in_recovery() AS rec, current_setting($1) AS ro', ['transaction_read_only']);
    return !r.rows[0].rec && r.rows[0].ro === 'off';
  }

  // The writer: a connection to the node that takes writes; on any error, drop it and
  // find that node again (every node asked at once, as the engine's probe does).
  async function writer() {
    let client = null, node = null, id = 0;
    const find = async () => {
      for (;;) {
        if (stopped()) return null;
        const found = await Promise.all(nodes.map(async (n) => {
          const c = new pg.Client(cfg(n, 6000));
          c.on('error', () => undefined);
          try {
            await c.connect();
            if (await isPrimary(n, c)) return { n, c };
          } catch { /* down or read-only */ }
          c.end().catch(() => undefined);
          return null;
        }));
        const hit = found.find(Boolean);
        for (const f of found) if (f && f !== hit) f.c.end().catch(() => undefined);
        if (hit) return hit;
        await sleep(50);
      }
    };
    for (;;) {
      if (stopped()) break;
      if (!client) {
        const hit = await find();
        if (!hit) break;
        ({ c: client, n: node } = hit);
        client.on('error', () => undefined);
        await client.query('CREATE TABLE IF NOT EXISTS ha_probe (id bigint PRIMARY KEY, sent_ms bigint NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())');
      }
      const row = ++id, sent = Date.now();
      try {
        await client.query('INSERT INTO ha_probe (id, sent_ms) VALUES ($1, $2)', [row, sent]);
        const at = Date.now();
        log({ k: 'ack', id: row, s: sent, a: at, n: node.name });
        st.acks++; st.lastAckMs = at; st.lastAckNode = node.name;
      } catch (err) {
        log({ k: 'fail', id: row, s: sent, a: Date.now(), n: node.name, e: `${err.code ?? ''} ${err.message}`.trim().slice(0, 160) });
        st.fails++;
        client.end().catch(() => undefined);
        client = null;
      }
      await sleep(every);
    }
    client?.end().catch(() => undefined);
  }

  // The prober: persistent connections, re-opened after any failure. A node that does
  // not answer within --probe-ms x 2 counts as down for that round, so rounds keep
  // their pace while a node hangs (its connection is dropped and made again).
  async function prober() {
    const clients = new Map();
    while (!stopped()) {
      const t = Date.now();
      const states = await Promise.all(nodes.map(async (n) => {
        try {
          let c = clients.get(n.name);
          if (!c) {
            c = new pg.Client({ ...cfg(n, 2 * probeEvery), connectionTimeoutMillis: 2 * probeEvery });
            c.on('error', () => undefined);
            clients.set(n.name, c);
            await c.connect();
          }
          const r = await c.query('SELECT pg_is_in_recovery() AS rec');
          return r.rows[0].rec ? 's' : 'p';
        } catch {
          clients.get(n.name)?.end().catch(() => undefined);
          clients.delete(n.name);
          return 'x';
        }
      }));
      const st_ = Object.fromEntries(nodes.map((n, i) => [n.name, states[i]]));
      log({ k: 'probe', t, st: st_ });
      const writable = nodes.filter((_, i) => states[i] === 'p').map((n) => n.name);
      st.rounds++;
      if (writable.length > 1) st.multi++;
      st.writable = writable.join('+') || 'none';
      const tmp = `${o.status}.tmp`;
      writeFileSync(tmp, `ACKS=${st.acks} FAILS=${st.fails} LAST_ACK_MS=${st.lastAckMs} LAST_ACK_NODE=${st.lastAckNode || 'none'} ` +
        `ROUNDS=${st.rounds} MULTI=${st.multi} WRITABLE=${st.writable} PROBE_MS=${t}\n`);
      renameSync(tmp, o.status);
      await sleep(Math.max(0, probeEvery - (Date.now() - t)));
    }
    for (const c of clients.values()) c.end().catch(() => undefined);
  }

  await Promise.all([writer(), prober()]);
}

// ---- verify ------------------------------------------------------------------------

async function ids(url) {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  await c.connect();
  try {
    return new Set((await c.query('SELECT id FROM ha_probe')).rows.map((r) => Number(r.id)));
  } finally {
    await c.end();
  }
}

function quantile(xs, q) {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

async function verify(o) {
  const events = readFileSync(o.events, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const acks = events.filter((e) => e.k === 'ack');
  const fails = events.filter((e) => e.k === 'fail');
  const probes = events.filter((e) => e.k === 'probe');
  const out = (phase, obj) => process.stdout.write(`RESULT ${phase} ${JSON.stringify(obj)}\n`);

  // 1. Every acknowledged row is on the final primary.
  const final = await ids(o.final);
  const lost = acks.filter((a) => !final.has(a.id)).map((a) => a.id);
  const unknownKept = fails.filter((f) => final.has(f.id)).length;
  out('writes', { acked: acks.length, failed: fails.length, lost: lost.length, lost_ids: lost.slice(0, 20),
    failed_but_committed: unknownKept, failed_not_committed: fails.length - unknownKept, final_rows: final.size });

  // 2. At most one writable node in every probe round.
  const multi = probes.filter((p) => Object.values(p.st).filter((s) => s === 'p').length > 1);
  const none = probes.filter((p) => Object.values(p.st).every((s) => s !== 'p'));
  const gaps = probes.slice(1).map((p, i) => p.t - probes[i].t);
  out('probes', { rounds: probes.length, max_writable: Math.max(0, ...probes.map((p) => Object.values(p.st).filter((s) => s === 'p').length)),
    two_writable_rounds: multi.length, two_writable_at: multi.slice(0, 5).map((p) => p.t), no_writable_rounds: none.length,
    interval_p50_ms: quantile(gaps, 0.5), interval_max_ms: Math.max(0, ...gaps) });

  // 3. Per phase: failed writes, time to the first acknowledged write on a new node,
  //    the longest stretch without an acknowledged write.
  const marks = readFileSync(o.marks, 'utf8').split('\n').filter(Boolean).map((l) => l.split(' '));
  const begins = new Map(marks.filter((m) => m[0] === 'BEGIN').map((m) => [m[1], Number(m[2])]));
  for (const [name, start] of begins) {
    const end = Number(marks.find((m) => m[0] === 'END' && m[1] === name)?.[2] ?? Date.now());
    const before = acks.filter((a) => a.a <= start).at(-1);
    const inside = acks.filter((a) => a.a > start && a.a <= end);
    const firstElsewhere = inside.find((a) => before && a.n !== before.n);
    const first = inside[0];
    const stamps = [start, ...inside.map((a) => a.a), end];
    const gap = Math.max(...stamps.slice(1).map((t, i) => t - stamps[i]));
    out(`phase:${name}`, {
      ms: end - start, acked: inside.length, failed: fails.filter((f) => f.s >= start && f.s <= end).length,
      node_before: before?.n ?? null, node_after: inside.at(-1)?.n ?? null,
      first_ack_after_ms: first ? first.a - start : null,
      first_ack_on_new_node_ms: firstElsewhere ? firstElsewhere.a - start : null,
      longest_write_gap_ms: gap,
    });
  }

  // 4. The point-in-time restore: rows acknowledged before the target are there,
  //    rows sent after it are not (those in flight at the target may be either).
  if (o.restored) {
    const target = Number(o['target-ms']);
    const restored = await ids(o.restored);
    const mustHave = acks.filter((a) => a.a <= target);
    const mustNot = [...acks, ...fails].filter((a) => a.s > target);
    const missing = mustHave.filter((a) => !restored.has(a.id)).length;
    const extra = mustNot.filter((a) => restored.has(a.id)).length;
    out('restore', { target_ms: target, rows: restored.size, acked_before_target: mustHave.length, missing,
      sent_after_target: mustNot.length, present_after_target: extra, ok: missing === 0 && extra === 0 && mustHave.length > 0 && mustNot.length > 0 });
  }
}

const [cmd, ...rest] = process.argv.slice(2);
const o = opts(rest);
if (cmd === 'run') await run(o);
else if (cmd === 'verify') await verify(o);
else { process.stderr.write('usage: ha-probe.mjs run|verify ... (see the top of the file)\n'); process.exit(2); }
