// The category -> shard directory. Category ids are allocated so that by default
// `id mod N` is the shard that created them; the versioned override map lets an
// operator move a category later without changing how anything else routes.
import { EngineError } from '../errors.js';
import { fnv1a } from './ids.js';

export class Directory {
  constructor(
    readonly shardCount: number,
    readonly overrides: ReadonlyMap<number, number>,
    readonly version: number,
  ) {}

  shardOfCategory(categoryId: number): number {
    return this.overrides.get(categoryId) ?? categoryId % this.shardCount;
  }

  /** Users are not category data: they live where a stable hash of their id puts them. */
  shardOfUserKey(key: string): number { return fnv1a(key) % this.shardCount; }

  shards(): number[] { return Array.from({ length: this.shardCount }, (_, i) => i); }
}

export function parseCategoryId(raw: unknown): number {
  const s = typeof raw === 'number' ? String(raw) : raw;
  if (typeof s !== 'string' || !/^[1-9][0-9]{0,14}$/.test(s)) throw new EngineError('invalid_id', 'No such category');
  return Number(s);
}
