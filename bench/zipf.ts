// Seeded randomness for the load: a small fast PRNG and a Zipf sampler over ranks,
// so a run is reproducible and popular items are popular the same way every time.

/** mulberry32: 32-bit state, good enough spread for picking items; returns [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Rank r (0-based) is drawn with probability proportional to 1 / (r + 1)^s. */
export class Zipf {
  private readonly cdf: Float64Array;

  constructor(readonly n: number, readonly s: number, private readonly random: () => number) {
    if (n < 1) throw new Error('Zipf needs at least one rank');
    this.cdf = new Float64Array(n);
    let sum = 0;
    for (let r = 0; r < n; r++) {
      sum += 1 / (r + 1) ** s;
      this.cdf[r] = sum;
    }
    for (let r = 0; r < n; r++) this.cdf[r]! /= sum;
  }

  /** The share of all draws that rank r receives. */
  share(r: number): number {
    return this.cdf[r]! - (r === 0 ? 0 : this.cdf[r - 1]!);
  }

  next(): number {
    const u = this.random();
    let lo = 0;
    let hi = this.n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** Fisher-Yates with the given randomness; returns a new array. */
export function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
