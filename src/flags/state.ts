// What one process applies: the flags it last read from Postgres, over the defaults.
// Reads are a Map lookup, cheap enough for every request. Each process builds one
// (src/engine.ts) and its domains read it as deps.flags; a tool's keeps the defaults.
import { log } from '../log.js';
import { FLAG_NAMES, FLAGS, isFlagName, type FlagName } from './registry.js';

export interface FlagRow { name: string; enabled: boolean; updated_at: Date; updated_by: string }

export class FlagState {
  private readonly values = new Map<FlagName, boolean>();

  /** Whether a flag is on in this process right now. */
  enabled(name: FlagName): boolean {
    return this.values.get(name) ?? FLAGS[name].default;
  }

  /** A full read of the table: names without a row fall back to their default. */
  applyAll(rows: FlagRow[]): void {
    const stored = new Map(rows.filter((r) => isFlagName(r.name)).map((r) => [r.name as FlagName, r.enabled]));
    for (const name of FLAG_NAMES) this.set(name, stored.get(name));
  }

  /** One row this process just wrote: applied at once, before the others hear of it. */
  applyOne(row: FlagRow): void {
    if (isFlagName(row.name)) this.set(row.name, row.enabled);
  }

  private set(name: FlagName, on: boolean | undefined): void {
    const before = this.enabled(name);
    if (on === undefined) this.values.delete(name);
    else this.values.set(name, on);
    if (this.enabled(name) !== before) log.info('feature flag switched', { flag: name, enabled: this.enabled(name) });
  }
}
