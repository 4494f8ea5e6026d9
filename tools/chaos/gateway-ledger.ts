// The gateway's books against ours: every payment the engine recorded is fetched from
// the gateway simulator and the two must tell the same story. Some disagreements are
// never allowed (we record money movements only after the gateway confirmed them, and
// a payment is never both paid out to the merchant and refunded); others are only
// in flight until the webhooks and crons caught up, so they count once settled.
import type { HttpClient } from '../lib/http.js';
import type { Check, Kind } from '../lib/invariants.js';
import { pool } from '../lib/pool.js';
import { sleep } from '../lib/wait.js';
import type { ChaosStack } from './stack.js';

interface Row { id: number; session: string; status: string; escrow: string }
interface Session { status: string; escrow: string; released_at?: string }

interface Rule { name: string; kind: Kind; settledOnly: boolean; bad(p: Row, s: Session): boolean }

const CAPTURED = new Set(['succeeded', 'refunded']);

const RULES: Rule[] = [
  { name: 'gateway: never both released and refunded', kind: 'lost', settledOnly: false, bad: (_p, s) => s.status === 'refunded' && !!s.released_at },
  { name: 'gateway: a capture we recorded happened there', kind: 'lost', settledOnly: false, bad: (p, s) => CAPTURED.has(p.status) && !CAPTURED.has(s.status) },
  { name: 'gateway: a release we recorded happened there', kind: 'lost', settledOnly: false, bad: (p, s) => p.escrow === 'released' && s.escrow !== 'released' },
  { name: 'gateway: a refund we recorded happened there', kind: 'lost', settledOnly: false, bad: (p, s) => p.status === 'refunded' && s.status !== 'refunded' },
  { name: 'gateway: its captures are recorded here', kind: 'unsettled', settledOnly: true, bad: (p, s) => CAPTURED.has(s.status) && !CAPTURED.has(p.status) },
  { name: 'gateway: its releases are recorded here', kind: 'unsettled', settledOnly: true, bad: (p, s) => s.escrow === 'released' && p.escrow !== 'released' },
  { name: 'gateway: its refunds are recorded here', kind: 'unsettled', settledOnly: true, bad: (p, s) => s.status === 'refunded' && p.status !== 'refunded' },
];

const FETCH_CONCURRENCY = 16;
/** The key the chaos runner's gateway simulator is started with (its default). */
const GATEWAY_API_KEY = 'gw_test_key';
const SAMPLE = 5;

/** One check per rule per shard; `settled` adds the rules that only hold once nothing is in flight. */
export async function checkGatewayAgrees(stack: ChaosStack, gateway: HttpClient, settled: boolean): Promise<Check[]> {
  const rules = RULES.filter((r) => settled || !r.settledOnly);
  const perShard = await Promise.all(stack.shardUrls.map(async (_, shard) => {
    const rows = (await stack.sql(shard, `SELECT id::int, gateway_session_id AS session, status, escrow FROM payments
                                         WHERE gateway_session_id IS NOT NULL ORDER BY id`)) as Row[];
    const sessions = await fetchSessions(gateway, rows.map((r) => r.session));
    return rules.map((r): Check => {
      const bad = rows.filter((p) => {
        const s = sessions.get(p.session);
        return s ? r.bad(p, s) : false;
      });
      return check(shard, r.name, r.kind, bad.map((p) => ({ ...p, gateway: sessions.get(p.session) })));
    }).concat(missing(shard, rows, sessions));
  }));
  return perShard.flat();
}

/** A session the engine recorded that the gateway does not know is money we cannot account for. */
function missing(shard: number, rows: Row[], sessions: Map<string, Session>): Check[] {
  return [check(shard, 'gateway: every recorded session exists there', 'lost', rows.filter((p) => !sessions.has(p.session)))];
}

/** Every row here is the run's own: none is foreign. */
function check(shard: number, name: string, kind: Kind, bad: unknown[]): Check {
  return { shard, name, kind, ok: bad.length === 0, bad: bad.length, foreign: 0, sample: bad.slice(0, SAMPLE) };
}

async function fetchSessions(gateway: HttpClient, ids: string[]): Promise<Map<string, Session>> {
  const sessions = await pool(ids, FETCH_CONCURRENCY, (id) => fetchSession(gateway, id));
  return new Map(ids.flatMap((id, i) => (sessions[i] ? [[id, sessions[i]] as const] : [])));
}

/** The session, null when the gateway does not know it; a failing gateway is asked again a few times. */
async function fetchSession(gateway: HttpClient, id: string): Promise<Session | null> {
  for (let attempt = 1; ; attempt++) {
    const res = await gateway.call<Session>('GET', `/v1/sessions/${encodeURIComponent(id)}`, { token: GATEWAY_API_KEY });
    if (res.status === 200) return res.body;
    if (res.status === 404) return null;
    if (attempt === 5) throw new Error(`gateway answered ${res.status} for session ${id}`);
    await sleep(200 * attempt);
  }
}
