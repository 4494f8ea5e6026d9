// scrypt from node:crypto, run on the libuv pool so hashing never blocks the loop, and
// at most a few at a time (hash-slots.ts) so it never fills that pool either.
// The cost N is configured (PASSWORD_SCRYPT_N); every hash carries its own parameters
// (`scrypt$N$r$p$salt$key`), so hashes of an older, lower cost still verify, and a
// login replaces them (needsRehash).
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { hashSlots } from './hash-slots.js';

const R = 8, P = 1, KEYLEN = 32;
/** Stored parameters beyond these were not written by this engine: no match, no huge allocation. */
const N_MAX = 2 ** 20, R_MAX = 32, P_MAX = 16;

interface Params { n: number; r: number; p: number; salt: Buffer; key: Buffer }

/**
 * The memory OpenSSL requires scrypt to be allowed (its own check: p blocks of 128·r
 * bytes plus V of 128·r·(N+2)). Node's default maxmem (32 MiB) refuses N=2^17, r=8 (128 MiB).
 */
function maxmem(n: number, r: number, p: number): number {
  return 128 * r * (n + p + 2);
}

function scrypt(pw: string, salt: Buffer, keylen: number, opts: ScryptOptions): Promise<Buffer> {
  return hashSlots.run(() => new Promise((resolve, reject) => scryptCb(pw, salt, keylen, opts,
    (err, key) => (err ? reject(err) : resolve(key)))));
}

const isPow2 = (n: number) => Number.isInteger(n) && n > 1 && (n & (n - 1)) === 0;

function parse(stored: string): Params | null {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return null;
  const [n, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  if (!isPow2(n) || n > N_MAX || !Number.isInteger(r) || r < 1 || r > R_MAX || !Number.isInteger(p) || p < 1
    || p > P_MAX) return null;
  return { n, r, p, salt: Buffer.from(parts[4]!, 'base64'), key: Buffer.from(parts[5]!, 'base64') };
}

export async function hashPassword(password: string, n: number): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, KEYLEN, { N: n, r: R, p: P, maxmem: maxmem(n, R, P) });
  return `scrypt$${n}$${R}$${P}$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const h = parse(stored);
  if (!h || h.key.length === 0) return false;
  const key = await scrypt(password, h.salt, h.key.length, { N: h.n, r: h.r, p: h.p, maxmem: maxmem(h.n, h.r, h.p) });
  return timingSafeEqual(key, h.key);
}

/** True when a stored hash is cheaper than the configured cost; a costlier one is never downgraded. */
export function needsRehash(stored: string, n: number): boolean {
  const h = parse(stored);
  return h !== null && (h.n < n || h.r < R || h.key.length < KEYLEN);
}

/** A hash per cost, made on first use, for burnPasswordCheck. */
const dummies = new Map<number, Promise<string>>();

/** Spent on unknown emails too, so response time does not reveal which emails exist. */
export async function burnPasswordCheck(password: string, n: number): Promise<void> {
  let dummy = dummies.get(n);
  if (!dummy) {
    dummy = hashPassword('dummy-password-for-timing', n);
    dummies.set(n, dummy);
    dummy.catch(() => dummies.delete(n)); // the next call tries again
  }
  await verifyPassword(password, await dummy);
}
