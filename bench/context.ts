// What every scenario gets: the flags, where the engine is, the fixture, and a place
// for its files. And what every scenario returns, so the report treats them alike.
import type { Fixture } from './fixture.js';
import type { Flags } from './flags.js';
import type { InstanceSummary, KindStats, Tick } from './load.js';
import type { PaymentsSupport } from './payments.js';
import type { PgSample } from './pgwatch.js';
import type { Target } from './env.js';

export interface RunCtx {
  flags: Flags;
  target: Target;
  fx: Fixture;
  adminToken: string;
  outDir: string;
  payments: PaymentsSupport;
  /** Items a scenario created beyond the fixture (the flash sale's hot item), by id. */
  touched: string[];
  /**
   * Changes a scenario made outside the run (a global feature flag switched) and must
   * take back even when the run is interrupted: run.ts calls what is left in here on
   * Ctrl-C or the watchdog. The scenario removes its entry once it took it back itself.
   */
  undo: Set<() => Promise<void>>;
}

export interface ScenarioResult {
  name: string;
  started_at: string;
  duration_s: number;
  connections: number;
  /** Per request kind (item, search, status, order, payment, hot, other...). */
  kinds: Record<string, KindStats>;
  /** Kinds merged: reads and writes (black-friday), holds (flash-sale). */
  groups: Record<string, KindStats>;
  /** autocannon's own view per instance (its HDR histograms), errors and timeouts. */
  instances: InstanceSummary[];
  timeline: Tick[];
  /** Postgres each second on every shard: commits/s, active, idle in transaction, lock waits. */
  pg: PgSample[];
  /** Scenario-specific facts (payments, the hot item check, pgbench...). */
  extra: Record<string, unknown>;
  /** Broken invariants found by the scenario itself (an oversold hot item). */
  violations: string[];
}
