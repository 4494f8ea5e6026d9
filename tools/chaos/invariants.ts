// The chaos runner's use of the one checker (tools/lib/invariants.ts): every rule on
// every shard of its own databases, unscoped (every row is the run's own, so the checks
// are strict), and, once the faults are over, the settled rules together with the
// gateway's books against ours, polled until they pass or the time is up.
import type { HttpClient } from '../lib/http.js';
import { checkInvariants as checkShards, type Check } from '../lib/invariants.js';
import { sleep } from '../lib/wait.js';
import { checkGatewayAgrees } from './gateway-ledger.js';
import type { ChaosStack } from './stack.js';

/** What must hold after any fault, while clients may still be writing. */
export const checkInvariants = (stack: ChaosStack): Promise<Check[]> => checkShards(stack.shardUrls, { phase: 'always' });

/** Polls the settled checks (with a gateway: also that its books and ours agree) until they pass or the time is up; returns the last result. */
export async function waitSettled(stack: ChaosStack, timeoutMs: number, gateway?: HttpClient): Promise<{ checks: Check[]; ms: number }> {
  const started = Date.now();
  const once = async () => [...(await checkShards(stack.shardUrls, { phase: 'settled' })), ...(gateway ? await checkGatewayAgrees(stack, gateway, true) : [])];
  let checks = await once();
  while (checks.some((c) => c.bad > 0) && Date.now() - started < timeoutMs) {
    await sleep(500);
    checks = await once();
  }
  return { checks, ms: Date.now() - started };
}
