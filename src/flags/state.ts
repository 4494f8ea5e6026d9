// What this process applies: the flags it last read from Postgres, over the defaults.
// Reads are a Map lookup, cheap enough for every request.
import { log } from '../log.js';
import { FLAG_NAMES, FLAGS, isFlagName, type FlagName } from './registry.js';

export interface FlagRow { name: string; enabled: boolean; updated_at: Date; updated_by: string }

const values = new Map<FlagName, boolean>();

/** Whether a flag is on in this process right now. */
export function enabled(name: FlagName): boolean {
  return values.get(name) ?? FLAGS[name].default;
}

function set(name: FlagName, on: boolean | undefined): void {
  const before = enabled(name);
  if (on === undefined) values.delete(name);
  else values.set(name, on);
  if (enabled(name) !== before) log.info('feature flag switched', { flag: name, enabled: enabled(name) });
}

/** A full read of the table: names without a row fall back to their default. */
export function applyAll(rows: FlagRow[]): void {
  const stored = new Map(rows.filter((r) => isFlagName(r.name)).map((r) => [r.name as FlagName, r.enabled]));
  for (const name of FLAG_NAMES) set(name, stored.get(name));
}

/** One row this process just wrote: applied at once, before the others hear of it. */
export function applyOne(row: FlagRow): void {
  if (isFlagName(row.name)) set(row.name, row.enabled);
}

/** Tests and tools: back to the defaults. */
export function resetFlags(): void { values.clear(); }
