// A log-linear latency histogram (HDR-style: 64 sub-buckets per power of two, so
// every recorded value is kept to within 1.6%), in microseconds. Mergeable and
// serialisable, so per-kind and per-second views cost one small array each.

const SUB_BITS = 6;
const SUB = 1 << SUB_BITS; // 64
const BUCKETS = SUB * 2 + SUB * 26; // up to 2^32 us (~71 min), far beyond any timeout

function indexOf(us: number): number {
  if (us < 2 * SUB) return us;
  const e = 31 - Math.clz32(us) - SUB_BITS; // us >> e lands in [SUB, 2*SUB)
  return Math.min(BUCKETS - 1, SUB * (e + 1) + ((us >>> e) - SUB));
}

/** The middle of a bucket, in microseconds. */
function valueOf(index: number): number {
  if (index < 2 * SUB) return index;
  const e = Math.floor(index / SUB) - 1;
  const m = (index % SUB) + SUB;
  return (m + 0.5) * 2 ** e;
}

export interface LatencySummary { count: number; mean_ms: number; p50_ms: number; p95_ms: number; p99_ms: number; max_ms: number }

export class Hist {
  readonly counts = new Float64Array(BUCKETS);
  count = 0;
  sumUs = 0;
  maxUs = 0;

  record(ms: number): void {
    const us = Math.max(0, Math.min(0xffffffff, Math.round(ms * 1000)));
    this.counts[indexOf(us)]! += 1;
    this.count++;
    this.sumUs += us;
    if (us > this.maxUs) this.maxUs = us;
  }

  add(other: Hist): void {
    for (let i = 0; i < BUCKETS; i++) this.counts[i]! += other.counts[i]!;
    this.count += other.count;
    this.sumUs += other.sumUs;
    this.maxUs = Math.max(this.maxUs, other.maxUs);
  }

  /** q in 0..1; 0 when empty. The maximum is exact, the rest within a bucket. */
  quantileMs(q: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(valueOf(i), this.maxUs) / 1000;
    }
    return this.maxUs / 1000;
  }

  summary(): LatencySummary {
    const r = (v: number) => Math.round(v * 100) / 100;
    return {
      count: this.count, mean_ms: r(this.count ? this.sumUs / this.count / 1000 : 0),
      p50_ms: r(this.quantileMs(0.5)), p95_ms: r(this.quantileMs(0.95)), p99_ms: r(this.quantileMs(0.99)), max_ms: r(this.maxUs / 1000),
    };
  }
}
