// The live stream's protocol, one WebSocket at a time (http/routes/stream.ts mounts it
// on the worker's uWS app at GET /v1/stream and answers the upgrade).
//
//   ?token=<token> on the upgrade, or a first message {"op":"auth","token":"..."}
//   {"op":"subscribe","topics":["items/<id>","orders/<id>"]}
//     -> {"op":"subscribed","topics":[accepted...],"refused":[...]}
//        then one event per accepted topic with its current state (so a client never
//        has to race a GET against the first change)
//   {"op":"event","topic":"items/<id>","type":"item.available","data":{"id","available"}}
//   {"op":"event","topic":"orders/<id>","type":"order.status","data":{"id","status"}}
// Also (docs/API.md has the whole protocol): {"op":"unsubscribe","topics":[...]} -> "unsubscribed";
// a good auth message is answered {"op":"authenticated","user_id","role"}; a bad one,
// or a bad message, with {"op":"error","error":{type,code,message}} (the HTTP error
// shape), and a bad token closes the socket (4401).
// Items are public; an order only to its owner (checked in Postgres, on the shard its
// id names) or an admin. Text frames carry JSON; ?format=msgpack switches the socket
// to binary msgpack frames both ways.
// Bounds: STREAM_MAX_TOPICS per socket, STREAM_MAX_MESSAGE_BYTES per client message
// (uWS closes past it), STREAM_MAX_BACKPRESSURE_BYTES buffered per socket (a consumer
// that slow is closed and reconnects to fresh snapshots), STREAM_MAX_SOCKETS per
// worker, 100 topics per message, 8 messages in flight per socket (handled one at a
// time). Database work is admitted like HTTP requests (http/admission.ts): a message
// that reads takes up to 8 slots and checks its topics 8 at a time; past the stream's
// share of MAX_INFLIGHT it is answered {"op":"error"} `overloaded` and nothing is read.
// A topic the id codec rules out (malformed, another kind, a shard past the count) is
// refused without a read and without a slot.
import type { Principal } from '../accounts/principal.js';
import { unpack } from '../cache/codec.js';
import type { CachedItem } from '../catalog/model.js';
import type { WorkerDeps } from '../deps.js';
import { EngineError } from '../errors.js';
import type { Admission } from '../http/admission.js';
import { errorReply } from '../http/reply.js';
import { compileBody, object } from '../http/schemas.js';
import type { WebSocket } from '../http/uws.js';
import { getOrderRow } from '../orders/read.js';
import { decodeRow, type RowId } from '../router/ids.js';
import { encodeFrame, wireTopic, type EventFrame, type Format } from './hub.js';
import type { Live } from './live.js';

export interface StreamEnv {
  deps: WorkerDeps;
  live: Live<CachedItem>;
  /** The worker's slots: a message's reads are admitted like HTTP requests. */
  admission: Admission;
  authenticate(token: string): Promise<Principal | null>;
}

/** One socket's state (uWS keeps it as the socket's user data). */
export interface Conn {
  requestId: string;
  format: Format;
  principal: Principal | null;
  /** The session the principal came from, re-read before order topics are granted. */
  token: string | null;
  /** The user this socket is filed under in UserSockets. */
  listedAs: string | null;
  topics: Set<string>;
  queue: Promise<void>;
  pending: number;
  closed: boolean;
}

const TOPICS_PER_MESSAGE_MAX = 100;
const PENDING_MAX = 8;
/** Topic checks one message runs at once, each holding one admission slot. */
const CHECKS_PER_MESSAGE_MAX = 8;
const TOPIC_RE = /^(items|orders)\/([a-z]{2}_[0-9a-z]{2,12})$/;

const topicList = { type: 'array', minItems: 1, maxItems: TOPICS_PER_MESSAGE_MAX,
  items: { type: 'string', minLength: 1, maxLength: 80 } };
const validators: Record<string, (v: unknown) => void> = {
  auth: compileBody(object({ op: { const: 'auth' }, token: { type: 'string', minLength: 1, maxLength: 200 } },
    ['op', 'token'])),
  subscribe: compileBody(object({ op: { const: 'subscribe' }, topics: topicList }, ['op', 'topics'])),
  unsubscribe: compileBody(object({ op: { const: 'unsubscribe' }, topics: topicList }, ['op', 'topics'])),
};

/** The open sockets of each signed-in user, so a session that ends elsewhere ends here too. */
class UserSockets {
  private readonly byUser = new Map<string, Set<WebSocket<Conn>>>();

  /** Files the socket under its current user (moving it from an earlier one). */
  add(ws: WebSocket<Conn>): void {
    this.remove(ws);
    const conn = ws.getUserData();
    const uuid = conn.principal?.uuid;
    if (!uuid) return;
    const set = this.byUser.get(uuid) ?? new Set();
    set.add(ws);
    this.byUser.set(uuid, set);
    conn.listedAs = uuid;
  }

  remove(ws: WebSocket<Conn>): void {
    const conn = ws.getUserData();
    const set = conn.listedAs ? this.byUser.get(conn.listedAs) : undefined;
    if (set) {
      set.delete(ws);
      if (set.size === 0) this.byUser.delete(conn.listedAs!);
    }
    conn.listedAs = null;
  }

  of(uuid: string): WebSocket<Conn>[] { return [...(this.byUser.get(uuid) ?? [])]; }
}

/** One worker's stream: its open sockets, and what each message on them does. */
export class Stream {
  private readonly users = new UserSockets();
  private sockets = 0;

  constructor(private readonly env: StreamEnv) {
    env.deps.authCache.onRevoked((uuid) => {
      for (const ws of this.users.of(uuid)) {
        const conn = ws.getUserData();
        conn.queue = conn.queue.then(() => endIfRevoked(env, this.users, ws, conn)).catch(() => undefined);
      }
    });
  }

  /** Whether one more socket fits (STREAM_MAX_SOCKETS per worker). */
  hasRoom(): boolean { return this.sockets < this.env.deps.cfg.streamMaxSockets; }

  /** The state of a socket about to open, signed in (`principal`, `token`) or not. */
  connection(requestId: string, format: Format, principal: Principal | null, token: string | null): Conn {
    return { requestId, format, principal, token, listedAs: null, topics: new Set(), queue: Promise.resolve(),
      pending: 0, closed: false };
  }

  open(ws: WebSocket<Conn>): void {
    this.sockets++;
    this.users.add(ws);
  }

  message(ws: WebSocket<Conn>, message: ArrayBuffer, isBinary: boolean): void {
    onMessage(this.env, this.users, ws, message, isBinary);
  }

  close(ws: WebSocket<Conn>): void {
    this.sockets--;
    this.users.remove(ws);
    const conn = ws.getUserData();
    conn.closed = true;
    for (const t of conn.topics) this.env.live.hub.listen(t, -1);
  }
}

function onMessage(env: StreamEnv, users: UserSockets, ws: WebSocket<Conn>, message: ArrayBuffer,
  isBinary: boolean): void {
  const conn = ws.getUserData();
  let msg: unknown;
  try {
    // The buffer is only valid during this call: decode now.
    msg = isBinary ? unpack(Buffer.from(message)) : JSON.parse(Buffer.from(message).toString('utf8'));
  } catch {
    fail(ws, conn, new EngineError('invalid_json',
      isBinary ? 'Message is not valid msgpack' : 'Message is not valid JSON'));
    return;
  }
  if (conn.pending >= PENDING_MAX) {
    ws.end(1008, 'too many messages in flight');
    return;
  }
  conn.pending++;
  conn.queue = conn.queue
    .then(() => handle(env, users, ws, conn, msg))
    .catch((err: unknown) => fail(ws, conn, err))
    .finally(() => { conn.pending--; });
}

async function handle(env: StreamEnv, users: UserSockets, ws: WebSocket<Conn>, conn: Conn,
  msg: unknown): Promise<void> {
  const op = typeof msg === 'object' && msg !== null ? (msg as { op?: unknown }).op : undefined;
  const validate = typeof op === 'string' ? validators[op] : undefined;
  if (!validate) throw new EngineError('validation_failed', 'Field \'op\' must be auth, subscribe or unsubscribe',
    { details: { field: 'op' } });
  validate(msg);
  if (op === 'auth') return auth(env, users, ws, conn, (msg as { token: string }).token);
  const topics = [...new Set((msg as { topics: string[] }).topics)];
  if (op === 'subscribe') return subscribe(env, ws, conn, topics);
  for (const t of topics) drop(env, ws, conn, t);
  reply(ws, conn, { op: 'unsubscribed', topics });
}

function drop(env: StreamEnv, ws: WebSocket<Conn>, conn: Conn, topic: string): void {
  if (!conn.topics.delete(topic)) return;
  env.live.hub.listen(topic, -1);
  if (!conn.closed) ws.unsubscribe(wireTopic(conn.format, topic));
}

async function auth(env: StreamEnv, users: UserSockets, ws: WebSocket<Conn>, conn: Conn, token: string): Promise<void> {
  const principal = await env.admission.run('stream', 1, () => env.authenticate(token));
  if (!principal) {
    fail(ws, conn, new EngineError('unauthenticated'));
    if (!conn.closed) ws.end(4401, 'unauthenticated');
    return;
  }
  if (conn.closed) return;
  conn.principal = principal;
  conn.token = token;
  users.add(ws);
  reply(ws, conn, { op: 'authenticated', user_id: principal.id, role: principal.role });
}

/**
 * A session can end (logout, expiry, deleted account) while its socket stays open:
 * it is read again before order topics are granted. Ended: the socket is anonymous
 * from now on. Unreadable (shard down): refused this time, asked again next time.
 */
async function recheck(env: StreamEnv, conn: Conn): Promise<void> {
  try {
    conn.principal = await env.authenticate(conn.token!);
    if (!conn.principal) conn.token = null;
  } catch {
    conn.principal = null;
  }
}

/**
 * The user logged out, changed the password or was deleted, in any process: if this
 * socket's session is among those that ended, it becomes anonymous at once and gives
 * up its order topics, told by {"op":"unsubscribed","topics":[...],"reason":"session_ended"}.
 */
async function endIfRevoked(env: StreamEnv, users: UserSockets, ws: WebSocket<Conn>, conn: Conn): Promise<void> {
  if (!conn.principal || !conn.token || conn.closed) return;
  await recheck(env, conn);
  if (conn.principal || conn.closed) return;
  users.remove(ws);
  const dropped = [...conn.topics].filter((t) => t.startsWith('orders/'));
  for (const t of dropped) drop(env, ws, conn, t);
  reply(ws, conn, { op: 'unsubscribed', topics: dropped, reason: 'session_ended' });
}

interface Topic { name: string; kind: 'items' | 'orders'; id: string; row: RowId }

/** What the id codec says of a topic without a read: null when nothing can be behind it. */
function parseTopic(name: string, shardCount: number): Topic | null {
  const m = TOPIC_RE.exec(name);
  if (!m) return null;
  const kind = m[1] as Topic['kind'];
  try {
    return { name, kind, id: m[2]!, row: decodeRow(kind === 'items' ? 'item' : 'order', m[2], shardCount) };
  } catch {
    return null;
  }
}

/** What a topic shows right now (sent in the subscribing tick); null refuses it. */
interface Snapshot {
  frame(ws: WebSocket<Conn>): EventFrame | null;
  /** A read that must follow the subscription (an order's status), run within the message's slots. */
  after?: (ws: WebSocket<Conn>) => () => Promise<void>;
}

async function subscribe(env: StreamEnv, ws: WebSocket<Conn>, conn: Conn, topics: string[]): Promise<void> {
  const parsed = topics.map((t) => parseTopic(t, env.deps.shards.count));
  // Orders need a session; without one they are refused with no read either.
  const reads = parsed.filter((p) => p && (p.kind === 'items' || conn.token)).length;
  if (reads === 0) {
    grant(env, ws, conn, topics, topics.map(() => null));
    return;
  }
  const units = Math.min(reads, CHECKS_PER_MESSAGE_MAX, env.admission.streamBudget());
  await env.admission.run('stream', units, async () => {
    if (conn.token && parsed.some((p) => p?.kind === 'orders')) await recheck(env, conn);
    const checks = await mapBounded(parsed, units,
      (p) => (p ? check(env, conn, p).catch(() => null) : Promise.resolve(null)));
    if (conn.closed) return;
    const after = grant(env, ws, conn, topics, checks);
    await mapBounded(after, units, (read) => read());
  });
}

/** Subscribes what passed its check and sends the snapshots; returns the reads that must follow. */
function grant(env: StreamEnv, ws: WebSocket<Conn>, conn: Conn, topics: string[],
  checks: (Snapshot | null)[]): (() => Promise<void>)[] {
  const max = env.deps.cfg.streamMaxTopics;
  const accepted: string[] = [];
  const refused: string[] = [];
  const snapshots: Snapshot[] = [];
  topics.forEach((topic, i) => {
    const snapshot = checks[i];
    if (!snapshot || (!conn.topics.has(topic) && conn.topics.size >= max)) {
      refused.push(topic);
      return;
    }
    accepted.push(topic);
    snapshots.push(snapshot);
    if (conn.topics.has(topic)) return;
    conn.topics.add(topic);
    env.live.hub.listen(topic, 1);
    ws.subscribe(wireTopic(conn.format, topic));
  });
  // Snapshots are taken after subscribing, in the same tick as they are sent: an event
  // this worker publishes later is newer than what the snapshot shows.
  const after: (() => Promise<void>)[] = [];
  ws.cork(() => {
    reply(ws, conn, { op: 'subscribed', topics: accepted, refused });
    for (const s of snapshots) {
      const frame = s.frame(ws);
      if (frame) reply(ws, conn, frame);
      if (s.after) after.push(s.after(ws));
    }
  });
  return after;
}

async function check(env: StreamEnv, conn: Conn, topic: Topic): Promise<Snapshot | null> {
  const { deps, live } = env;
  const { name, id } = topic;
  if (topic.kind === 'items') {
    const state = await live.cache.items.read(topic.row.shard, topic.row.local);
    if (!state.item) return null;
    const read = state.item.available;
    return {
      frame: () => {
        const last = live.hub.lastItem(id);
        const available = last && last.version >= state.version && last.available >= 0 ? last.available : read;
        return { op: 'event', topic: name, type: 'item.available', data: { id, available } };
      },
    };
  }
  if (!conn.principal) return null;
  const owner = conn.principal;
  await getOrderRow(deps, owner, id); // 404 (refused) unless the owner or an admin
  // Read again after subscribing (the ownership read may predate a change), unless an
  // event for this order reached this worker meanwhile: it is at least as new.
  return {
    frame: () => null,
    after: (ws) => {
      const seen = live.hub.orderEventCount(id);
      return () => getOrderRow(deps, owner, id).then(({ row }) => {
        if (conn.closed || live.hub.orderEventCount(id) !== seen) return;
        reply(ws, conn, { op: 'event', topic: name, type: 'order.status', data: { id, status: row.status } });
      }, () => undefined);
    },
  };
}

/** fn over xs with at most `limit` calls running; results in order. */
async function mapBounded<T, R>(xs: T[], limit: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(xs.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, xs.length) }, async () => {
    while (next < xs.length) {
      const i = next++;
      out[i] = await fn(xs[i]!);
    }
  }));
  return out;
}

function reply(ws: WebSocket<Conn>, conn: Conn, frame: unknown): void {
  if (conn.closed) return;
  ws.cork(() => { ws.send(encodeFrame(conn.format, frame), conn.format === 'msgpack'); });
}

/** An error frame in the HTTP error shape; the socket stays open. */
function fail(ws: WebSocket<Conn>, conn: Conn, err: unknown): void {
  const { body } = errorReply(err, conn.requestId);
  reply(ws, conn, { op: 'error', ...(body as object) });
}
