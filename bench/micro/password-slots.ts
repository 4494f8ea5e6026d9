// What a burst of logins does to a new database connection in the same process: the
// figure behind PASSWORD_HASH_CONCURRENCY (src/accounts/hash-slots.ts). While bursts of
// password hashes run at the production cost (2^17), the SCRAM key derivation every new
// Postgres connection makes on libuv's pool (PBKDF2, 4096 rounds, as pg does) is timed
// over and over, once with hashes bounded as the engine does (2 at once, the rest
// waiting in the process) and once unbounded (every hash queued on libuv's 4 threads),
// in alternate rounds so a busy machine slows both alike. The engine's connect timeout
// (PG_CONNECT_TIMEOUT_MS) is 3 s. Run: `npm run build && node dist/bench/micro/password-slots.js`.
import { webcrypto } from 'node:crypto';
import { hashSlots } from '../../src/accounts/hash-slots.js';
import { hashPassword } from '../../src/accounts/password.js';

const N = 2 ** 17;
const BURST = 16;
const ROUND_MS = 6000;
const ROUNDS = 2;
const WAYS = { bounded: { concurrency: 2, queueMax: 1_000 }, unbounded: { concurrency: 1_000, queueMax: 1_000 } };

async function scramKeyDerivation(): Promise<number> {
  const started = performance.now();
  const key = await webcrypto.subtle.importKey('raw', new TextEncoder().encode('db-password'), 'PBKDF2', false, ['deriveBits']);
  await webcrypto.subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt: new Uint8Array(16), iterations: 4096 }, key, 256);
  return performance.now() - started;
}

/** One round: bursts of hashes for ROUND_MS, a key derivation every 50 ms meanwhile. */
async function round(): Promise<{ derivations: number[]; hashes: number }> {
  let hashes = 0;
  let stop = false;
  const storm = (async () => {
    while (!stop) await Promise.all(Array.from({ length: BURST }, () => hashPassword('burst-password', N).then(() => { hashes++; })));
  })();
  const derivations: number[] = [];
  const end = performance.now() + ROUND_MS;
  while (performance.now() < end) {
    derivations.push(await scramKeyDerivation());
    await new Promise((r) => setTimeout(r, 50));
  }
  stop = true;
  await storm;
  return { derivations, hashes };
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]!;

const seen: Record<keyof typeof WAYS, { derivations: number[]; hashes: number; ms: number }> = {
  bounded: { derivations: [], hashes: 0, ms: 0 }, unbounded: { derivations: [], hashes: 0, ms: 0 },
};
console.log(`pg's SCRAM key derivation (PBKDF2 4096) beside bursts of ${BURST} password hashes at N=2^17, ${ROUNDS} alternate rounds of ${ROUND_MS / 1000} s`);
for (let r = 0; r < ROUNDS; r++) {
  for (const way of Object.keys(WAYS) as (keyof typeof WAYS)[]) {
    hashSlots.configure(WAYS[way]);
    const started = performance.now();
    const got = await round();
    seen[way].derivations.push(...got.derivations);
    seen[way].hashes += got.hashes;
    seen[way].ms += performance.now() - started;
  }
}
for (const [way, s] of Object.entries(seen)) {
  const d = s.derivations;
  console.log(`${way.padEnd(10)} derivation p50 ${pct(d, 50).toFixed(0)} ms, p99 ${pct(d, 99).toFixed(0)} ms, max ${pct(d, 100).toFixed(0)} ms ` +
    `(${d.length} samples, ${d.filter((x) => x > 3000).length} past 3 s); ${(s.hashes / (s.ms / 1000)).toFixed(1)} hashes/s`);
}
// p99, not p50: a stalled derivation holds the sampler, so the slow ones are few by count.
const ratio = pct(seen.unbounded.derivations, 99) / pct(seen.bounded.derivations, 99);
console.log(`unbounded / bounded, derivation p99: ${ratio.toFixed(0)}x; hashes/s bounded / unbounded: ` +
  `${((seen.bounded.hashes / seen.bounded.ms) / (seen.unbounded.hashes / seen.unbounded.ms)).toFixed(2)}`);
