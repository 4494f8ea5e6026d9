// Gateway simulator, driven as a separate process over real HTTP. A local
// node:http server stands in for the merchant's webhook endpoint.
import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { signWebhook, verifySignature } from '../src/sim/webhooks.js';
import { spawnSim, type SpawnedSim } from '../tools/lib/spawn.js';
import { sleep } from '../tools/lib/wait.js';
import { simApi } from './helpers/api.js';

const API_KEY = 'gw_key_for_tests';
const SECRET = 'whsec_for_tests';

interface Delivery {
  event: { id: string; type: string; created: number; data: Record<string, unknown> };
  raw: string;
  signature: string;
  contentType: string;
}

/** The merchant's webhook endpoint: records deliveries, can fail on demand. */
class Receiver {
  readonly deliveries: Delivery[] = [];
  /** merchant_ref -> how many more attempts to answer 500. */
  readonly failFor = new Map<string, number>();
  readonly server: Server;
  constructor() {
    this.server = createServer((req, res) => {
      let raw = '';
      req.on('data', (d: Buffer) => (raw += d.toString()));
      req.on('end', () => {
        const delivery: Delivery = {
          event: JSON.parse(raw) as Delivery['event'],
          raw,
          signature: String(req.headers['gateway-signature']),
          contentType: String(req.headers['content-type']),
        };
        const ref = String(delivery.event.data.merchant_ref);
        const left = this.failFor.get(ref) ?? 0;
        if (left > 0) {
          this.failFor.set(ref, left - 1);
          res.writeHead(500).end();
          return;
        }
        this.deliveries.push(delivery);
        res.writeHead(200).end('{}');
      });
    });
  }
  url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hooks`;
  }
  forRef(ref: string): Delivery[] {
    return this.deliveries.filter((d) => d.event.data.merchant_ref === ref);
  }
}

async function waitFor<T>(what: string, probe: () => T | undefined | false, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function waitForAsync(what: string, probe: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

let gw: SpawnedSim;
const receiver = new Receiver();
let refSeq = 0;

const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => simApi(gw.url, API_KEY, method, path, body, headers);

function sessionBody(over: Record<string, unknown> = {}) {
  return {
    merchant_ref: `order_${++refSeq}`,
    amount_cents: 1234,
    currency: 'USD',
    method: 'card',
    webhook_url: receiver.url(),
    ...over,
  };
}

async function createSession(over: Record<string, unknown> = {}) {
  const res = await call('POST', '/v1/sessions', sessionBody(over));
  if (res.status !== 201) throw new Error(`create failed: ${res.status} ${res.text}`);
  return res.json as Record<string, any>;
}

const complete = (id: string, outcome: string) => call('POST', `/v1/sessions/${id}/complete`, { outcome }, { Authorization: '' });
const stats = async () => (await call('GET', '/_sim/stats')).json as Record<string, number>;
const setKnobs = (k: Record<string, unknown>) => call('PUT', '/_sim/knobs', k);

t.before(async () => {
  await new Promise<void>((r) => receiver.server.listen(0, '127.0.0.1', r));
  gw = await spawnSim('gateway', {
    GATEWAY_API_KEY: API_KEY,
    GATEWAY_WEBHOOK_SECRET: SECRET,
    GATEWAY_WEBHOOK_RETRIES: '4',
    GATEWAY_WEBHOOK_BACKOFF_MS: '30',
  });
});
t.afterEach(async () => {
  await call('POST', '/_sim/reset');
});
t.teardown(async () => {
  await gw?.stop();
  receiver.server.close();
});

t.test('starts, logs JSON lines and answers healthz', async (t) => {
  const listening = gw.logs.find((l) => l.msg === 'listening');
  t.ok(listening, 'listening line logged');
  t.equal(listening!.port, gw.port);
  t.match(listening!, { level: 'info', t: /^\d{4}-\d\d-\d\dT/ });
  t.equal((await call('GET', '/healthz')).status, 200);
});

t.test('merchant API requires the API key', async (t) => {
  for (const auth of ['', 'Bearer wrong', `Basic ${API_KEY}`]) {
    const res = await call('POST', '/v1/sessions', sessionBody(), { Authorization: auth });
    t.equal(res.status, 401, `auth "${auth}" refused`);
    t.equal(res.json.error.code, 'unauthorized');
  }
  t.equal((await call('GET', '/v1/sessions/gws_x', undefined, { Authorization: '' })).status, 401);
});

t.test('invalid session requests are refused and create nothing', async (t) => {
  const before = (await stats()).sessions;
  const cases: Record<string, unknown>[] = [
    { currency: 'usd' },
    { amount_cents: 0 },
    { amount_cents: 12.5 },
    { method: 'cash' },
    { webhook_url: 'ftp://x' },
    { merchant_ref: '' },
    { expires_at: '2001-01-01T00:00:00Z' },
    { surprise: true },
  ];
  for (const over of cases) {
    const res = await call('POST', '/v1/sessions', sessionBody(over));
    t.equal(res.status, 400, `refused ${JSON.stringify(over)}`);
    t.type(res.json.error.message, 'string');
  }
  t.equal((await call('POST', '/v1/sessions', undefined, { 'Content-Type': 'application/json' })).status, 400, 'empty body');
  t.equal((await stats()).sessions, before);
  t.equal((await call('GET', '/v1/sessions/gws_nope')).status, 404);
});

t.test('card and QR sessions carry the right payment instructions', async (t) => {
  const card = await createSession();
  t.match(card, { id: /^gws_/, status: 'pending', escrow: 'none', refunded_cents: 0, amount_cents: 1234, currency: 'USD', method: 'card' });
  t.equal(card.redirect_url, `${gw.url}/checkout/${card.id}`);
  t.notOk('qr_payload' in card && card.qr_payload, 'no QR payload on card');
  t.notOk('webhook_url' in card, 'webhook url not echoed');
  t.ok(Date.parse(card.expires_at) > Date.now() + 800_000, 'default TTL ~900 s');

  const qr = await createSession({ method: 'qr', amount_cents: 500, currency: 'EUR' });
  t.equal(qr.qr_payload, `GWQR|${qr.id}|500|EUR`);
  t.notOk(qr.redirect_url, 'no redirect on QR');
  const polled = await call('GET', `/v1/sessions/${qr.id}`);
  t.same(polled.json, qr, 'status poll returns the session');
});

t.test('Idempotency-Key replays the same session', async (t) => {
  const body = sessionBody();
  const key = { 'Idempotency-Key': `idem-${refSeq}` };
  const before = (await stats()).sessions;
  const first = await call('POST', '/v1/sessions', body, key);
  const again = await call('POST', '/v1/sessions', body, key);
  t.equal(first.status, 201);
  t.equal(again.status, 200);
  t.equal(again.json.id, first.json.id);
  t.equal((await stats()).sessions, before + 1);
  const changed = await call('POST', '/v1/sessions', { ...body, amount_cents: 999 }, key);
  t.equal(changed.status, 422, 'same key, different amount');
});

t.test('checkout page pays and sends a signed payment.succeeded webhook', async (t) => {
  const s = await createSession({ merchant_ref: `<b>ref_${++refSeq}</b>` });
  const page = await fetch(s.redirect_url);
  const html = await page.text();
  t.equal(page.status, 200);
  t.match(page.headers.get('content-type'), /text\/html/);
  t.match(html, /<button[^>]*>Pay<\/button>/);
  t.match(html, /<button[^>]*>Decline<\/button>/);
  t.match(html, '12.34 USD');
  t.match(html, '&#60;b&#62;ref_', 'merchant_ref HTML-escaped');
  t.notMatch(html, '<b>ref_');

  const post = await fetch(`${s.redirect_url}/pay`, { method: 'POST', redirect: 'manual' });
  t.equal(post.status, 303);
  t.equal(post.headers.get('location'), `/checkout/${s.id}`);
  const after = await (await fetch(s.redirect_url)).text();
  t.match(after, 'Payment succeeded');
  t.notMatch(after, />Pay<\/button>/, 'no buttons once paid');

  const [d] = await waitFor('succeeded webhook', () => receiver.forRef(s.merchant_ref).length === 1 && receiver.forRef(s.merchant_ref));
  t.equal(d!.contentType, 'application/json');
  t.match(d!.event, {
    id: /^evt_/,
    type: 'payment.succeeded',
    data: { session_id: s.id, merchant_ref: s.merchant_ref, status: 'succeeded', escrow: 'held', amount_cents: 1234, currency: 'USD' },
  });
  t.ok(Math.abs(d!.event.created - Date.now() / 1000) < 10, 'created is unix seconds');
  // Check the signature independently of the simulator's own helper.
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(d!.signature);
  t.ok(m, 'signature header shape');
  const mac = createHmac('sha256', SECRET).update(`${m![1]}.${d!.raw}`).digest('hex');
  t.equal(m![2], mac, 'HMAC over t.body with the webhook secret');
  t.ok(verifySignature(SECRET, d!.signature, d!.raw));
  t.notOk(verifySignature(SECRET, d!.signature, d!.raw + ' '), 'tampered body fails');
  t.notOk(verifySignature('other', d!.signature, d!.raw), 'wrong secret fails');
  const old = signWebhook(SECRET, Math.floor(Date.now() / 1000) - 600, d!.raw);
  t.notOk(verifySignature(SECRET, old, d!.raw), 'stale timestamp fails');

  const declined = await createSession();
  await fetch(`${declined.redirect_url}/decline`, { method: 'POST', redirect: 'manual' });
  t.equal((await call('GET', `/v1/sessions/${declined.id}`)).json.status, 'declined');
  t.match(await (await fetch(declined.redirect_url)).text(), 'Payment declined');
});

t.test('a session is captured at most once, even under concurrent completes', async (t) => {
  const s = await createSession({ method: 'qr' });
  const before = await stats();
  const results = await Promise.all(Array.from({ length: 10 }, () => complete(s.id, 'succeeded')));
  t.equal(results.filter((r) => r.status === 200).length, 1, 'one completion wins');
  for (const r of results.filter((r) => r.status !== 200)) {
    t.equal(r.status, 409);
    t.match(r.json.error, { code: 'session_not_pending', status: 'succeeded' });
  }
  const declineAfter = await complete(s.id, 'declined');
  t.equal(declineAfter.status, 409);
  const after = await stats();
  t.equal(after.captures, before.captures + 1, 'one capture');
  t.equal(after.declines, before.declines);
  t.match((await call('GET', `/v1/sessions/${s.id}`)).json, { status: 'succeeded', escrow: 'held' });
  t.equal((await complete(s.id, 'maybe')).status, 400, 'bad outcome');
});

t.test('release and refund are idempotent and emit one webhook each', async (t) => {
  const s = await createSession();
  t.equal((await call('POST', `/v1/sessions/${s.id}/release`)).status, 409, 'nothing held while pending');
  t.equal((await call('POST', `/v1/sessions/${s.id}/refund`)).status, 409, 'nothing to refund while pending');
  await complete(s.id, 'succeeded');
  const before = await stats();

  const rel1 = await call('POST', `/v1/sessions/${s.id}/release`);
  const rel2 = await call('POST', `/v1/sessions/${s.id}/release`);
  t.equal(rel1.status, 200);
  t.match(rel1.json, { status: 'succeeded', escrow: 'released' });
  t.same(rel2.json, rel1.json, 'second release replays');

  const ref1 = await call('POST', `/v1/sessions/${s.id}/refund`, { reason: 'activation failed' });
  const ref2 = await call('POST', `/v1/sessions/${s.id}/refund`);
  t.match(ref1.json, { status: 'refunded', escrow: 'refunded', refunded_cents: 1234 });
  t.same(ref2.json, ref1.json, 'second refund replays');
  t.equal((await call('POST', `/v1/sessions/${s.id}/release`)).status, 409, 'refunded cannot be released');

  const after = await stats();
  t.equal(after.releases, before.releases + 1);
  t.equal(after.refunds, before.refunds + 1, 'refund twice refunds once');
  const types = await waitFor('3 webhooks', () => {
    const d = receiver.forRef(s.merchant_ref);
    return d.length >= 3 && d.map((x) => x.event.type).sort();
  });
  await sleep(150); // room for a wrong extra webhook
  t.same(receiver.forRef(s.merchant_ref).map((x) => x.event.type).sort(), types);
  t.same(types, ['payment.refunded', 'payment.released', 'payment.succeeded']);

  const declined = await createSession();
  await complete(declined.id, 'declined');
  t.equal((await call('POST', `/v1/sessions/${declined.id}/refund`)).status, 409, 'declined not refundable');
});

t.test('pending sessions expire on time, lazily and by timer', async (t) => {
  const soon = () => new Date(Date.now() + 600).toISOString();
  const byTimer = await createSession({ expires_at: soon() });
  const lazily = await createSession({ expires_at: soon() });
  const d = await waitFor('expired webhook', () => receiver.forRef(byTimer.merchant_ref)[0], 3000);
  t.match(d.event, { type: 'payment.expired', data: { status: 'expired', escrow: 'none' } });
  const polled = await call('GET', `/v1/sessions/${lazily.id}`);
  t.equal(polled.json.status, 'expired');
  const late = await complete(lazily.id, 'succeeded');
  t.equal(late.status, 409);
  t.equal(late.json.error.status, 'expired');

  const abandoned = await createSession();
  const forced = await call('POST', `/_sim/sessions/${abandoned.id}/expire`);
  t.equal(forced.json.status, 'expired', 'test control expires at once');
});

t.test('failed deliveries are retried with the same event id', async (t) => {
  const s = await createSession();
  receiver.failFor.set(s.merchant_ref, 2);
  const before = await stats();
  await complete(s.id, 'succeeded');
  const [d] = await waitFor('retried webhook', () => receiver.forRef(s.merchant_ref).length > 0 && receiver.forRef(s.merchant_ref));
  t.equal(d!.event.type, 'payment.succeeded');
  // The gateway counts the delivery once it has read our response: let it.
  await waitForAsync('sent counted', async () => (await stats()).webhooks_pending === 0);
  const after = await stats();
  t.equal(after.webhooks_failed, before.webhooks_failed + 2, 'two failed attempts');
  t.equal(after.webhooks_sent, before.webhooks_sent + 1);
  t.ok(gw.logs.filter((l) => l.msg === 'webhook_retry' && l.event_id === d!.event.id).length === 2, 'retries logged under one id');

  const dead = await createSession({ webhook_url: 'http://127.0.0.1:1/closed' });
  await complete(dead.id, 'succeeded');
  const abandoned = await waitFor('abandon', () => gw.logs.find((l) => l.msg === 'webhook_abandoned'), 5000);
  t.equal(abandoned.attempts, 5, '1 attempt + GATEWAY_WEBHOOK_RETRIES=4 retries');
});

t.test('duplicate and lost webhook knobs', async (t) => {
  t.equal((await setKnobs({ duplicate_webhooks: 2 })).status, 200);
  const dup = await createSession();
  await complete(dup.id, 'succeeded');
  const copies = await waitFor('3 copies', () => receiver.forRef(dup.merchant_ref).length === 3 && receiver.forRef(dup.merchant_ref));
  t.equal(new Set(copies.map((c) => c.event.id)).size, 1, 'copies share one event id');

  await setKnobs({ duplicate_webhooks: 0, lost_webhooks: 1 });
  const lost = await createSession();
  const before = await stats();
  await complete(lost.id, 'succeeded');
  await sleep(300);
  t.equal(receiver.forRef(lost.merchant_ref).length, 0, 'never delivered');
  t.equal((await stats()).webhooks_dropped, before.webhooks_dropped + 1);
  t.equal((await call('GET', `/v1/sessions/${lost.id}`)).json.status, 'succeeded', 'polling still tells the truth');
});

t.test('out_of_order delays events so later ones can arrive first', async (t) => {
  await setKnobs({ out_of_order: 1 });
  const refs: string[] = [];
  for (let i = 0; i < 20; i++) {
    const s = await createSession();
    refs.push(s.merchant_ref);
    await complete(s.id, 'succeeded');
  }
  await waitFor('20 deliveries', () => refs.every((r) => receiver.forRef(r).length === 1), 5000);
  const arrival = receiver.deliveries.map((d) => String(d.event.data.merchant_ref)).filter((r) => refs.includes(r));
  t.notSame(arrival, refs, 'arrival order differs from emission order');
});

t.test('latency and error knobs affect only the merchant API', async (t) => {
  await setKnobs({ latency_ms: 250 });
  const t0 = Date.now();
  await call('GET', '/v1/sessions/gws_nope');
  t.ok(Date.now() - t0 >= 240, 'merchant call delayed');

  await setKnobs({ latency_ms: 0, error_rate: 1 });
  const down = await call('POST', '/v1/sessions', sessionBody());
  t.equal(down.status, 503);
  t.equal(down.json.error.code, 'unavailable');
  t.equal((await call('GET', '/healthz')).status, 200, 'health unaffected');

  const bad = await setKnobs({ error_rate: 2, latency_ms: 5 });
  t.equal(bad.status, 400, 'invalid knob refused');
  t.equal((await call('GET', '/_sim/knobs')).json.latency_ms, 0, 'partial bad patch changes nothing');
  t.equal((await setKnobs({ nonsense: 1 })).status, 400);

  const reset = await call('POST', '/_sim/reset');
  t.match(reset.json, { latency_ms: 0, error_rate: 0, duplicate_webhooks: 0, out_of_order: false, lost_webhooks: 0 });
  t.equal((await call('POST', '/v1/sessions', sessionBody())).status, 201, 'back up after reset');
  t.match(await stats(), {
    sessions: Number,
    captures: Number,
    declines: Number,
    refunds: Number,
    releases: Number,
    webhooks_sent: Number,
    webhooks_failed: Number,
    webhooks_dropped: Number,
  });
});
