// Runtime feature flags: `deps.flags.enabled(name)` anywhere in the process (state.ts);
// admins switch them through the API (src/http/routes/flags.ts) and every process
// applies the switch within about a second (sync.ts, told by hooks.flagSwitched),
// without a restart.
import type { Core } from '../deps.js';
import { EngineError } from '../errors.js';
import { FLAG_NAMES, FLAGS, isFlagName, type FlagName } from './registry.js';
import { HOME_SHARD, SQL } from './sql.js';
import type { FlagRow } from './state.js';

export { FLAG_NAMES, type FlagName };

export interface FlagView {
  name: FlagName; enabled: boolean; default: boolean; description: string;
  /** What this process applies right now (equal to `enabled` once the switch reached it). */
  applied: boolean; updated_at: string | null; updated_by: string | null;
}

function nameOf(raw: string): FlagName {
  if (!isFlagName(raw)) throw new EngineError('not_found', `No such flag: ${raw.slice(0, 64)}`,
    { details: { known: FLAG_NAMES } });
  return raw;
}

function view(deps: Core, name: FlagName, row: FlagRow | undefined): FlagView {
  const def = FLAGS[name];
  return {
    name, enabled: row ? row.enabled : def.default, default: def.default, description: def.description,
    applied: deps.flags.enabled(name),
    updated_at: row ? row.updated_at.toISOString() : null, updated_by: row?.updated_by ?? null,
  };
}

/** The stored value (Postgres decides), with what this process applies. */
export async function getFlag(deps: Core, raw: string): Promise<FlagView> {
  const name = nameOf(raw);
  const row = (await deps.shards.get(HOME_SHARD).query<FlagRow>(SQL.one, [name])).rows[0];
  return view(deps, name, row);
}

export async function listFlags(deps: Core): Promise<FlagView[]> {
  const rows = (await deps.shards.get(HOME_SHARD).query<FlagRow>(SQL.all)).rows;
  return FLAG_NAMES.map((n) => view(deps, n, rows.find((r) => r.name === n)));
}

/** Writes the flag (last write wins), applies it here at once and tells every process. */
export async function setFlag(deps: Core, raw: string, on: boolean, actor: string): Promise<FlagView> {
  const name = nameOf(raw);
  const row = (await deps.shards.get(HOME_SHARD).query<FlagRow>(SQL.set, [name, on, actor])).rows[0]!;
  deps.flags.applyOne(row);
  await deps.hooks.flagSwitched(name);
  return view(deps, name, row);
}
