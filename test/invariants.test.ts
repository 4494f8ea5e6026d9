// The one invariant checker (tools/lib/invariants.ts) that the bench, the chaos runner
// and the tests share: it passes on real orders, finds a row broken on purpose, and
// keeps a caller's rows apart from everyone else's (the bench's scoping on a shared stack).
import t from 'tap';
import { checkInvariants, judge, RULE_NAMES, scopeOf } from '../tools/lib/invariants.js';
import { customer, invariantsHold, item, localId, onShard, order, shardOf, world } from './helpers/api.js';

const shards = () => world.shards.split(',');

t.test('one list: what the bench and the chaos runner each checked before', async (t) => {
  for (const name of ['stock never negative', 'available + held + sold = stocked', 'held = sum of active holds', 'every order has lines',
    'order total = sum of its lines', 'each transition recorded once', 'ledger sums to zero per currency', 'one kept capture per order']) {
    t.ok(RULE_NAMES.always.includes(name), `always: ${name}`);
  }
  for (const name of ['unclaimed money refunded', 'no escrow release left half-way']) t.ok(RULE_NAMES.settled.includes(name), `settled: ${name}`);
});

t.test('orders just made keep every promise', async (t) => {
  const it = await item({ stock: 5 });
  const c = await customer();
  t.equal((await order(c.token, [{ item_id: it.id, quantity: 2 }])).status, 201);
  await invariantsHold(t, { items: [it.id], customers: [c.id] });
});

t.test('a unit held with no hold behind it is found, as the caller\'s or as foreign', async (t) => {
  const it = await item({ stock: 5 });
  const shard = shardOf(it.id);
  await onShard(shard, 'UPDATE items SET held = held + 1, available = available - 1 WHERE id = $1', [localId(it.id)]);
  try {
    const mine = await checkInvariants(shards(), { phase: 'always', scope: scopeOf({ items: [it.id] }) });
    const held = mine.find((c) => c.shard === shard && c.name === 'held = sum of active holds')!;
    t.ok(held.bad >= 1, 'the broken item is the caller\'s');
    t.ok(held.sample.some((r) => Number((r as { id: unknown }).id) === localId(it.id)), 'and named in the sample');
    const report = judge(mine, false);
    t.equal(report.ok, false, 'the verdict fails');
    t.match(report.violations.join('\n'), /held = sum of active holds/);

    const others = await checkInvariants(shards(), { phase: 'always', scope: scopeOf({}) });
    const foreign = others.find((c) => c.shard === shard && c.name === 'held = sum of active holds')!;
    t.equal(foreign.bad, 0, 'someone else\'s broken row is not the caller\'s');
    t.ok(foreign.foreign >= 1, 'it is counted as foreign');
    t.notOk(judge(others, false).violations.some((v) => v.includes('held = sum of active holds')), 'and does not fail a scoped verdict');
    t.ok(judge(others, true).violations.some((v) => v.includes('held = sum of active holds')), 'but does fail a strict one');

    const unscoped = await checkInvariants(shards(), { phase: 'always' });
    t.ok(unscoped.find((c) => c.shard === shard && c.name === 'held = sum of active holds')!.bad >= 1, 'unscoped, every row is the caller\'s');
  } finally {
    await onShard(shard, 'UPDATE items SET held = held - 1, available = available + 1 WHERE id = $1', [localId(it.id)]);
  }
});
