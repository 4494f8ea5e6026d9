// The ledger's proof: per shard and currency the entries sum to zero, and no finished
// order keeps money in escrow.
import type { Core } from '../deps.js';
import { encodeRow } from '../router/ids.js';
import { scatter } from '../router/scatter.js';
import { SQL } from './sql.js';

export async function ledgerReport(deps: Core) {
  const shards = await scatter(deps.dir.shards(), async (s) => {
    const q = deps.shards.get(s);
    const [sums, left] = await Promise.all([q.query(SQL.ledgerSums), q.query(SQL.escrowLeft)]);
    return {
      shard: s,
      currencies: sums.rows.map((r) => ({ currency: r.currency as string, sum_cents: Number(r.sum),
        entries: r.entries as number })),
      escrow_left: left.rows.map((r) => ({ order_id: encodeRow('order', s, r.id as number), status: r.status,
        escrow_cents: Number(r.escrow) })),
    };
  });
  const balanced = shards.every((s) => s.currencies.every((c) => c.sum_cents === 0) && s.escrow_left.length === 0);
  return { balanced, shards };
}
