// Double-entry transfers. A transfer is a set of legs that sums to zero; the legs
// are written in the caller's transaction, beside the state change they account for.
import { randomUUID } from 'node:crypto';
import { invariant } from '../errors.js';
import type { Queryable } from '../shard/pools.js';
import { SQL } from './sql.js';

export type Account = 'customer' | 'escrow' | 'merchant' | 'provider_payable';
export type TransferKind = 'capture' | 'release' | 'refund';

export interface Transfer { orderLocal: number; paymentLocal: number; currency: string; kind: TransferKind; legs: [Account, number][] }

export async function postTransfer(q: Queryable, t: Transfer): Promise<void> {
  const legs = t.legs.filter(([, amount]) => amount !== 0);
  invariant(legs.reduce((s, [, a]) => s + a, 0) === 0, 'a ledger transfer balances');
  if (legs.length === 0) return;
  await q.query(SQL.ledgerEntry, [randomUUID(), t.orderLocal, t.paymentLocal, legs.map((l) => l[0]), legs.map((l) => l[1]), t.currency, t.kind]);
}

/** Customer money captured by the gateway now sits in escrow for the order. */
export const captureLegs = (amount: number): [Account, number][] => [['customer', -amount], ['escrow', amount]];

/** Escrow back to the customer. */
export const refundLegs = (amount: number): [Account, number][] => [['escrow', -amount], ['customer', amount]];

/** Escrow released: the provider's share is payable to it, the rest is the merchant's. */
export const releaseLegs = (amount: number, providerShare: number): [Account, number][] =>
  [['escrow', -amount], ['provider_payable', providerShare], ['merchant', amount - providerShare]];
