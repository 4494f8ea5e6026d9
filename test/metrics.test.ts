// /metrics by Prometheus' conventions, checked with Prometheus' own tool (promtool, from
// Debian's `prometheus` package: scripts/system-packages.sh installs it), the alert rules
// shipped in deploy/6-node/prometheus, and what the counters say after real traffic.
// Exact counts on a private cluster with databases of its own: no other test file sends
// it requests and no other cron touches its rows, so every delta is this file's alone.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parseEngineMetrics } from '../bench/enginewatch.js';
import { ROOT } from '../src/paths.js';
import { api, customer, item, order, useWorld } from './helpers/api.js';
import { isolatedShards, startReady, stop } from './helpers/engine.js';
import { until } from './helpers/live.js';
import { complete, fresh, pay, postEvent, statusBecomes } from './helpers/storefront.js';
import { ENGINE_URL, OWN_PORTS } from './setup/env.js';

const PROMTOOL = '/usr/bin/promtool';
const PROM_DIR = path.join(ROOT, 'deploy/6-node/prometheus');
const PORT = OWN_PORTS.metricsEngine;
const shards = await isolatedShards(`engine_metrics_${PORT}`);
const engine = await startReady(PORT, { PG_SHARDS: shards, WORKERS: '2' });
t.teardown(() => stop(engine));
// /readyz answers once one worker listens; the primary logs when both do.
await until('both workers ready', async () => engine.out(), (o) => o.includes('"msg":"engine ready"'), 30_000, 100);
useWorld({ engine: engine.url, shards });

const scrape = async (base = engine.url) => {
  const res = await fetch(`${base}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return res.text();
};

/** One sample's value by name and exact label set (order free); undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).sort().join(',');
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = (m[2] ? m[2].match(/[a-zA-Z_]+="(?:[^"\\]|\\.)*"/g) ?? [] : []).sort().join(',');
    if (got === want) return Number(m[3]);
  }
  return undefined;
}

const sampleNames = (text: string) => new Set(text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(l)![0]));

function promtool(args: string[], input?: string): { status: number | null; out: string } {
  const r = spawnSync(PROMTOOL, args, { input, encoding: 'utf8', cwd: PROM_DIR });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

/**
 * The metric names a PromQL expression reads: what is left once strings, label
 * matchers, grouping clauses, ranges, numbers, keywords and function calls are taken out.
 */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\boffset\s+\w+/g, ' ');
  const keywords = new Set(['and', 'or', 'unless', 'bool', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'inf', 'nan']);
  const names = new Set<string>();
  for (const m of stripped.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?/g)) {
    if (m[2] || keywords.has(m[1]!.toLowerCase())) continue;
    names.add(m[1]!);
  }
  return [...names];
}

/** The `expr:` of every rule in rules.yml (one line, or a folded block under it). */
function ruleExpressions(yaml: string): string[] {
  const lines = yaml.split('\n');
  const out: string[] = [];
  lines.forEach((line, i) => {
    const m = /^(\s*)expr:\s*(.*)$/.exec(line);
    if (!m) return;
    if (!/^[>|]/.test(m[2]!)) {
      out.push(m[2]!);
      return;
    }
    const block: string[] = [];
    for (let j = i + 1; j < lines.length && (lines[j]!.trim() === '' || lines[j]!.search(/\S/) > m[1]!.length); j++) block.push(lines[j]!.trim());
    out.push(block.join(' '));
  });
  return out;
}

t.test('promtool is installed (Debian package prometheus)', async (t) => {
  t.ok(existsSync(PROMTOOL), `${PROMTOOL} exists: bash scripts/system-packages.sh promtool installs it`);
});

t.test('the suite engine and this one expose metrics promtool accepts', async (t) => {
  for (const [who, base] of [['suite engine', ENGINE_URL], ['private engine', engine.url]] as const) {
    const text = await scrape(base);
    const r = promtool(['check', 'metrics'], text);
    t.equal(r.status, 0, `${who}: promtool check metrics is clean${r.out ? `: ${r.out}` : ''}`);
  }
});

t.test('conventions: bf_ names, base units, HELP and TYPE, no pid, stable worker slots', async (t) => {
  const text = await scrape();
  const types = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
  const helps = new Set([...text.matchAll(/^# HELP (\S+) \S/gm)].map((m) => m[1]!));
  t.same([...types.keys()].filter((n) => !helps.has(n)), [], 'every family has a HELP text');
  t.same([...types.keys()].filter((n) => !/^(bf_|process_|nodejs_)/.test(n)), [], 'every family is bf_ (or the default process_/nodejs_ ones)');
  t.same([...types.keys()].filter((n) => /_(ms|milliseconds|kb|mb)(_|$)/.test(n)), [], 'no family in milliseconds or kilobytes');
  t.same([...types].filter(([n, type]) => (type === 'counter') !== n.endsWith('_total')), [], 'counters end in _total, and only counters');
  t.notMatch(text, /pid="/, 'no series carries a pid');
  for (const worker of ['0', '1', 'cron', 'primary']) {
    t.ok((sample(text, 'process_cpu_seconds_total', { worker }) ?? -1) >= 0, `process metrics of worker="${worker}"`);
  }
  t.ok(sample(text, 'bf_event_loop_busy_seconds_total', { worker: '0' })! > 0, 'event-loop busy time per worker');
  t.equal(sample(text, 'bf_processes', { role: 'worker' }), 2, 'the primary counts its running workers');
});

t.test('counters with known labels exist at zero before their first event', async (t) => {
  const text = await scrape();
  const zeroed: [string, Record<string, string>][] = [
    ['bf_orders_refused_total', { reason: 'purchase_limit' }], ['bf_refunds_total', { reason: 'unclaimed', outcome: 'failed' }],
    ['bf_payments_total', { outcome: 'declined' }], ['bf_webhook_signature_failures_total', { source: 'gateway' }],
    ['bf_idempotency_replays_total', { route: 'checkout_cart' }], ['bf_breaker_opens_total', { dependency: 'provider' }],
    ['bf_admission_shed_total', { reason: 'http_inflight' }], ['bf_admission_shed_total', { reason: 'pg_queue_full' }],
    ['bf_holds_expired_total', { shard: '2', via: 'reclaim' }], ['bf_cron_runs_total', { cron_job: 'hold-expiry', shard: '1', outcome: 'failed' }],
    ['bf_process_restarts_total', { role: 'worker' }], ['bf_outbox_delivery_failures_total', { shard: '0' }],
    ['bf_http_requests_total', { route: 'create_payment', status: '503' }],
  ];
  for (const [name, labels] of zeroed) t.equal(sample(text, name, labels), 0, `${name}${JSON.stringify(labels)} is 0`);
  if (sample(text, 'bf_process_restarts_total', { role: 'worker' })) t.comment(`workers were respawned; the engine said:\n${engine.out().slice(-4000)}`);
  t.equal(sample(text, 'bf_breaker_state', { dependency: 'gateway', state: 'open' }), 0, 'no breaker open');
  t.equal(sample(text, 'bf_breaker_state', { dependency: 'gateway', state: 'closed' }), 3, 'the gateway breaker closed in both workers and the cron process');
});

t.test('an order, a refusal, a replay, a payment, a refund and a forged webhook each count once', async (t) => {
  const it = await item({ stock: 1, price_cents: 1250, fulfillment: 'shipment' });
  const [buyer, late] = await Promise.all([customer(), customer()]);
  const shard = it.id[3] as string;
  const before = await scrape();
  const delta = (text: string, name: string, labels: Record<string, string>) => (sample(text, name, labels) ?? 0) - (sample(before, name, labels) ?? 0);

  const made = await order(buyer.token, [{ item_id: it.id, quantity: 1 }], 'metrics-order-1');
  t.equal(made.status, 201, 'the order is created');
  const replay = await order(buyer.token, [{ item_id: it.id, quantity: 1 }], 'metrics-order-1');
  t.equal(replay.headers.get('idempotent-replayed'), 'true', 'the same key replays it');
  const refused = await order(late.token, [{ item_id: it.id, quantity: 1 }]);
  t.equal(refused.body?.error?.code, 'sold_out', 'the next buyer is refused: sold out');
  const o = made.body.orders[0];
  const p = await pay(buyer.token, o.id);
  t.ok((await complete(p.gateway_session_id, 'succeeded')).status < 300, 'the buyer pays at the gateway');
  t.ok(await statusBecomes(buyer.token, o.id, 'paid'), 'the webhook placed the order');
  const canceled = await api('POST', `/v1/orders/${o.id}/cancel`, { token: buyer.token, body: {} });
  t.equal(canceled.status, 200, 'the buyer cancels before shipment');
  const forged = await postEvent({ id: 'evt_forged', type: 'payment.succeeded', data: {} }, 't=1,v1=00');
  t.equal(forged.status, 401, 'a forged webhook is refused');

  const after = await scrape();
  const expected: [string, Record<string, string>, number][] = [
    ['bf_orders_created_total', { shard }, 1],
    ['bf_orders_refused_total', { reason: 'sold_out' }, 1],
    ['bf_idempotency_replays_total', { route: 'create_order' }, 1],
    ['bf_http_requests_total', { route: 'create_order', status: '201' }, 2],
    ['bf_http_requests_total', { route: 'create_order', status: '409' }, 1],
    ['bf_payments_total', { outcome: 'opened' }, 1],
    ['bf_payments_total', { outcome: 'captured' }, 1],
    ['bf_refunds_total', { reason: 'canceled', outcome: 'succeeded' }, 1],
    ['bf_refunds_total', { reason: 'canceled', outcome: 'failed' }, 0],
    ['bf_webhook_signature_failures_total', { source: 'gateway' }, 1],
    ['bf_http_requests_total', { route: 'gateway_webhook', status: '401' }, 1],
  ];
  for (const [name, labels, n] of expected) t.equal(delta(after, name, labels), n, `${name}${JSON.stringify(labels)} +${n}`);
  t.equal(delta(after, 'bf_http_request_duration_seconds_count', { route: 'create_order', status_class: '4xx' }), 1, 'the refusal is in the latency histogram');
  t.ok(delta(after, 'bf_pg_round_trips_total', { shard, lane: 'write' }) > 0, 'the checkout\'s round trips are counted on its shard and lane');
  t.equal(promtool(['check', 'metrics'], after).status, 0, 'still clean for promtool with every family in use');
});

t.test('bench/enginewatch reads the engine\'s figures', async (t) => {
  const m = parseEngineMetrics(await scrape());
  t.same([...m.shards.keys()].sort(), [0, 1, 2], 'usage totals per shard');
  t.ok([...m.shards.values()].some((s) => s.round_trips > 0 && s.checkouts > 0), 'round trips and checkouts counted');
  t.same([...m.busy.keys()].sort(), ['0', '1'], 'event-loop busy time of each worker (not the cron process or the primary)');
  t.equal(m.delay.length, 2, 'a loop delay per worker');
});

t.test('the alert rules and the scrape config pass promtool, and the rules fire on made-up series', async (t) => {
  const rules = promtool(['check', 'rules', 'rules.yml']);
  t.equal(rules.status, 0, rules.out);
  t.match(rules.out, /SUCCESS: \d+ rules found/);
  const unit = promtool(['test', 'rules', 'rules.test.yml']);
  t.equal(unit.status, 0, `promtool test rules rules.test.yml: ${unit.out}`);
  const config = promtool(['check', 'config', 'prometheus.yml']);
  t.equal(config.status, 0, config.out);
});

t.test('every metric the alert rules read is exported', async (t) => {
  const exprs = ruleExpressions(readFileSync(path.join(PROM_DIR, 'rules.yml'), 'utf8'));
  t.ok(exprs.length >= 20, `${exprs.length} rule expressions`);
  t.same(metricNames('sum by (le, route) (rate(x_bucket{route=~"a|b"}[5m])) > 0.5 and max by (shard) (y) == 0'), ['x_bucket', 'y'], 'the name parser itself');
  // `up` is Prometheus' own series of every target; the rest must come from the engine.
  const wanted = [...new Set(exprs.flatMap(metricNames))].filter((n) => n !== 'up').sort();
  // The cron samples the shards and records successes as it goes: wait for both.
  const { value: text } = await until('the sampled and cron figures', () => scrape(),
    (s) => sample(s, 'bf_outbox_pending', { shard: '2' }) !== undefined && sample(s, 'bf_cron_last_success_timestamp_seconds', { cron_job: 'retention', shard: '2' }) !== undefined, 20_000, 250);
  const exported = sampleNames(text);
  t.same(wanted.filter((n) => !exported.has(n)), [], `all ${wanted.length} metrics the rules read are exported: ${wanted.join(', ')}`);
});

t.test('a worker answering /metrics merges every process at the moment of the scrape', async (t) => {
  const it = await item({ stock: 100 });
  const before = await scrape();
  const reads = 20;
  // New connections, so SO_REUSEPORT spreads the reads and the scrapes over both workers.
  for (let i = 0; i < reads; i++) t.equal((await fresh('GET', `${engine.url}/v1/items/${it.id}`)).status, 200);
  const scrapes = await Promise.all(Array.from({ length: 8 }, () => fresh('GET', `${engine.url}/metrics`)));
  const counted = scrapes.map((s) => (sample(String(s.body), 'bf_http_requests_total', { route: 'get_item', status: '200' }) ?? 0)
    - (sample(before, 'bf_http_requests_total', { route: 'get_item', status: '200' }) ?? 0));
  t.comment(`scrapes answered by workers ${[...new Set(scrapes.map((s) => s.worker))].join(', ')}`);
  t.same(counted, Array(8).fill(reads), `every scrape, whichever worker answers, counts all ${reads} reads at once`);
});
