// Clients that start uploads and never finish them, under a normal load: hundreds of
// raw sockets send a request's headers and part of its body, then hang up (most), stay
// silent, or drip a byte at a time. Every such request held an admission slot; the
// engine must give each one back (an abort at once, a stall at BODY_TIMEOUT_MS with a
// 408), so that once the attack stops the in-flight gauge is back to its baseline and
// the normal load is served as before: no lasting 503s. During the attack 503
// `overloaded` is the only refusal allowed (a limit holding under a burst).
import { unfinishedUpload, type HttpClient, type UploadOutcome } from '../../lib/http.js';
import { sleep } from '../../lib/wait.js';
import { pick, type Customer } from '../fixture.js';
import { checkInvariants } from '../invariants.js';
import { Outcome, pct, type RunCtx, type Scenario } from '../scenario.js';
import { Recorder, runClients } from '../stats.js';

const LIGHT_CLIENTS = 8;
const ATTACKERS = 160;
const BODY_TIMEOUT_MS = 2000;
/** A stalled upload must be answered (or closed) within its deadline plus this. */
const STALL_SLACK_MS = 2500;
const LIMITS = { MAX_INFLIGHT: '64', BODY_TIMEOUT_MS: String(BODY_TIMEOUT_MS) };

type Phase = 'light' | 'attack' | 'recovery';
type Abuse = 'abort' | 'stall' | 'drip';

export const abortedUploads: Scenario = {
  name: 'aborted-uploads',
  summary: `${ATTACKERS} sockets abort, stall or drip uploads mid-body under a normal load (${JSON.stringify(LIMITS)}): slots come back, no lasting 503s`,
  run,
};

async function run(ctx: RunCtx) {
  const out = new Outcome('aborted-uploads');
  await ctx.startEngine(LIMITS);
  const items = await ctx.fixture.items([0, 1, 2], 5, 10_000_000);
  const customers = await ctx.fixture.customers(16);
  const port = Number(new URL(ctx.api.base).port);
  const baseline = await inflight(ctx.api);
  out.expect(Number.isFinite(baseline), '/metrics did not answer before the attack');

  const rec = new Recorder();
  let phase: Phase = 'light';
  const peaks = { inflight: 0 };
  const sampling = { on: true };
  const sampler = (async () => {
    while (sampling.on) {
      peaks.inflight = Math.max(peaks.inflight, (await inflight(ctx.api)) || 0);
      await sleep(250);
    }
  })();

  const step = async (client: number) => {
    const c: Customer = customers[client % customers.length]!;
    const at = phase;
    const r = Math.random() < 0.5
      ? await ctx.api.call('POST', '/v1/orders', { token: c.token, body: { items: [{ item_id: pick(items).id, quantity: 1 }] } })
      : await ctx.api.call('GET', '/v1/orders?limit=5', { token: c.token });
    const label = r.status === 503 && r.body?.error?.code === 'overloaded' ? 'shed' : r.status >= 200 && r.status < 300 ? 'ok' : 'wrong';
    rec.record(`${label}/${at}`, r, label === 'ok');
  };

  const lightS = Math.max(3, Math.floor(ctx.durationS / 4));
  const attackS = Math.max(3, ctx.durationS - 2 * lightS);
  await runClients(LIGHT_CLIENTS, lightS * 1000, 1_000_000, step);
  phase = 'attack';
  ctx.say(`attack: ${ATTACKERS} sockets aborting, stalling and dripping uploads for ${attackS} s`);
  const abuses = new Map<string, { n: number; ms: number[] }>();
  const attack = runClients(ATTACKERS, attackS * 1000, 10_000_000, async () => {
    const kind: Abuse = Math.random() < 0.7 ? 'abort' : Math.random() < 0.7 ? 'stall' : 'drip';
    const r = await abuse(port, kind, pick(customers).token);
    const key = `${kind}:${r.outcome}`;
    const a = abuses.get(key) ?? { n: 0, ms: [] };
    a.n++;
    if (a.ms.length < 10_000) a.ms.push(r.ms);
    abuses.set(key, a);
  });
  await Promise.all([attack, runClients(LIGHT_CLIENTS, attackS * 1000, 1_000_000, step)]);
  phase = 'recovery';
  const settled = await settles(ctx.api, baseline, 10_000);
  await runClients(LIGHT_CLIENTS, lightS * 1000, 1_000_000, step);
  sampling.on = false;
  await sampler;
  out.addChecks(await checkInvariants(ctx.stack));

  const s = (l: string, secs?: number) => rec.summary((x) => x === l, secs);
  const attackOk = s('ok/attack', attackS);
  const attackShed = s('shed/attack', attackS);
  const wrong = rec.summary((x) => x.startsWith('wrong/'));
  const recovery = rec.summary((x) => x.endsWith('/recovery'), lightS);
  const stalled = [...abuses.entries()].filter(([k]) => !k.startsWith('abort:'));
  const unanswered = stalled.filter(([k]) => !/:(408|503)$/.test(k)).reduce((n, [, v]) => n + v.n, 0);
  const slowest = Math.max(0, ...stalled.flatMap(([k, v]) => (k.endsWith(':408') ? v.ms : [])));
  const aborts = [...abuses.entries()].filter(([k]) => k.startsWith('abort:')).reduce((n, [, v]) => n + v.n, 0);
  out.expect(aborts > 0 && stalled.length > 0, 'the attack sent no aborted or no stalled uploads');
  out.expect(settled === baseline, `in flight ${settled} after the attack, baseline ${baseline}: slots leaked`);
  out.expect(unanswered === 0, `${unanswered} stalled uploads were not answered 408 (or 503 past the limit) within ${BODY_TIMEOUT_MS + STALL_SLACK_MS} ms`);
  out.expect(slowest <= BODY_TIMEOUT_MS + STALL_SLACK_MS, `a stalled upload was answered 408 after ${Math.round(slowest)} ms (BODY_TIMEOUT_MS ${BODY_TIMEOUT_MS})`);
  out.expect(wrong.n === 0, `${wrong.n} normal requests answered other than 2xx or 503 overloaded (${JSON.stringify(wrong.statuses)})`);
  out.expect(recovery.n > 0 && recovery.ok === recovery.n, `after the attack: ${recovery.n - recovery.ok} of ${recovery.n} normal requests failed (${JSON.stringify(recovery.statuses)})`);
  out.expect(attackOk.n > 0, 'no normal request was served during the attack');

  const abuseFigures = Object.fromEntries([...abuses.entries()].map(([k, v]) => [k, v.n]));
  Object.assign(out.latencies, { light_baseline: s('ok/light', lightS), attack_served: attackOk, attack_shed: attackShed, recovery });
  Object.assign(out.figures, { limits: LIMITS, baseline_inflight: baseline, inflight_after: settled, peaks, abuses: abuseFigures, slowest_408_ms: Math.round(slowest) });
  const abused = [...abuses.values()].reduce((n, v) => n + v.n, 0);
  const normal = rec.summary().n;
  // Expected: served before and after the attack; served or shed (503 overloaded) during it.
  const expected = s('ok/light').n + attackOk.n + attackShed.n + recovery.ok;
  return out.finish(
    { requests: normal, rps: Math.round(normal / (2 * lightS + attackS)), expected_pct: pct(expected, normal), clients: LIGHT_CLIENTS },
    { count: abused, what: `${abused} broken uploads from ${ATTACKERS} sockets in ${attackS} s; ${aborts} aborted` },
    `attack: served p99 ${attackOk.p99_ms} ms, shed ${pct(attackShed.n, attackShed.n + attackOk.n)}%; slowest 408 ${Math.round(slowest)} ms; recovery p99 ${recovery.p99_ms} ms`,
  );
}

/** The fleet's in-flight gauge from /metrics, this scrape's own slot included (NaN when it does not answer). */
async function inflight(api: HttpClient): Promise<number> {
  const m = await api.call('GET', '/metrics', { timeoutMs: 2000 });
  if (m.status !== 200 || typeof m.body !== 'string') return NaN;
  return [...m.body.matchAll(/^bf_http_inflight_requests(?:\{[^}]*\})? (\d+)/gm)].reduce((n, x) => n + Number(x[1]), 0);
}

/** Polls the gauge until it reads `want`; the last reading. */
async function settles(api: HttpClient, want: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let v = await inflight(api);
  while (v !== want && Date.now() < deadline) {
    await sleep(250);
    v = await inflight(api);
  }
  return v;
}

/**
 * One broken upload on a raw socket: headers announcing 200 bytes and a few of them,
 * then a hang-up after 10-100 ms (abort), silence (stall) or a byte every 300 ms
 * (drip). Returns what the engine answered ('closed' when it closed without an answer,
 * 'none' when it did neither in time) and when.
 */
async function abuse(port: number, kind: Abuse, token: string): Promise<{ outcome: UploadOutcome | 'aborted'; ms: number }> {
  const path = Math.random() < 0.5 ? '/v1/orders' : '/v1/users';
  const head = `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{"items":[`;
  if (kind !== 'abort') return unfinishedUpload(port, head, { waitMs: BODY_TIMEOUT_MS + STALL_SLACK_MS, dripMs: kind === 'drip' ? 300 : 0 });
  // An abort: the client hangs up after 10-100 ms unless the engine answered first.
  const r = await unfinishedUpload(port, head, { waitMs: 10 + Math.random() * 90 });
  return r.outcome === 'none' ? { ...r, outcome: 'aborted' } : r;
}
