// Double-entry transfers. A transfer is a set of legs that sums to zero; the legs
// are written in the caller's transaction, beside the state change they account for.
// The paid path writes its legs inside its one-statement functions (sql/009): the
// capture (customer -> escrow, the payment's amount) in apply_gateway_event, the
// release (legs from releaseLegs below) in complete_paid_order.
import { randomUUID } from 'node:crypto';
import { invariant } from '../errors.js';
import type { Queryable } from '../shard/pools.js';
import { SQL } from './sql.js';

export type Account = 'customer' | 'escrow' | 'merchant' | 'provider_payable';
export type TransferKind = 'capture' | 'release' | 'refund';

export interface Transfer { orderLocal: number; paymentLocal: number; currency: string; kind: TransferKind;
  legs: [Account, number][] }

/** A transfer's legs as the two arrays a statement takes; legs of 0 are left out. */
export function legArrays(legs: [Account, number][]): { accounts: Account[]; amounts: number[] } {
  const moved = legs.filter(([, amount]) => amount !== 0);
  invariant(moved.reduce((s, [, a]) => s + a, 0) === 0, 'a ledger transfer balances');
  return { accounts: moved.map((l) => l[0]), amounts: moved.map((l) => l[1]) };
}

export async function postTransfer(q: Queryable, t: Transfer): Promise<void> {
  const { accounts, amounts } = legArrays(t.legs);
  if (accounts.length === 0) return;
  await q.query(SQL.ledgerEntry, [randomUUID(), t.orderLocal, t.paymentLocal, accounts, amounts, t.currency, t.kind]);
}

/** Escrow back to the customer. */
export const refundLegs = (amount: number): [Account, number][] => [['escrow', -amount], ['customer', amount]];

/** Escrow released: the provider's share is payable to it, the rest is the merchant's. */
export const releaseLegs = (amount: number, providerShare: number): [Account, number][] =>
  [['escrow', -amount], ['provider_payable', providerShare], ['merchant', amount - providerShare]];
