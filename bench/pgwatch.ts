// What Postgres itself sees during a scenario, sampled each second on every shard:
// commits per second, and client backends active, idle in a transaction, or waiting
// on a lock (a hot-row convoy shows up here first). One connection per shard.
import pg from 'pg';

export interface PgSample { t_s: number; shards: { commits_per_s: number; active: number; idle_in_tx: number; lock_waits: number; backends: number }[] }

const SAMPLE_SQL = `
  SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())::bigint AS commits,
         count(*) FILTER (WHERE state = 'active')::int AS active,
         count(*) FILTER (WHERE state LIKE 'idle in transaction%')::int AS idle_in_tx,
         count(*) FILTER (WHERE wait_event_type = 'Lock')::int AS lock_waits,
         count(*)::int AS backends
  FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()`;
const MAX_SAMPLES = 3600;

export class PgWatch {
  private clients: pg.Client[] = [];
  private timer: NodeJS.Timeout | null = null;
  private last: number[] = [];
  private lastAt = 0;
  private startedAt = 0;
  private busy = false;
  readonly samples: PgSample[] = [];

  constructor(private readonly shards: string[]) {}

  async start(): Promise<void> {
    this.clients = this.shards.map((url) => new pg.Client({ connectionString: url, statement_timeout: 2000, application_name: 'bench-pgwatch' }));
    await Promise.all(this.clients.map((c) => c.connect()));
    this.startedAt = performance.now();
    await this.sample(true);
    this.timer = setInterval(() => void this.sample(false), 1000);
  }

  private async sample(first: boolean): Promise<void> {
    if (this.busy) return; // a slow sample is skipped, never queued
    this.busy = true;
    try {
      const rows = await Promise.all(this.clients.map(async (c) => (await c.query(SAMPLE_SQL)).rows[0] as Record<string, number>));
      const now = performance.now();
      const dt = (now - this.lastAt) / 1000;
      if (!first && this.samples.length < MAX_SAMPLES) {
        this.samples.push({
          t_s: Math.round((now - this.startedAt) / 10) / 100,
          shards: rows.map((r, i) => ({
            commits_per_s: Math.round((Number(r.commits) - this.last[i]!) / Math.max(dt, 0.001)),
            active: r.active!, idle_in_tx: r.idle_in_tx!, lock_waits: r.lock_waits!, backends: r.backends!,
          })),
        });
      }
      this.last = rows.map((r) => Number(r.commits));
      this.lastAt = now;
    } catch {
      // A sample lost under load is a gap in the chart, not a failed run.
    } finally {
      this.busy = false;
    }
  }

  async stop(): Promise<PgSample[]> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await Promise.allSettled(this.clients.map((c) => c.end()));
    return this.samples;
  }
}

/** Per shard over the samples: mean commits/s and the peak of lock waiters. */
export function pgPeaks(samples: PgSample[]): { shard: number; mean_commits_per_s: number; max_lock_waits: number; max_active: number }[] {
  if (!samples.length) return [];
  return samples[0]!.shards.map((_, i) => ({
    shard: i,
    mean_commits_per_s: Math.round(samples.reduce((s, x) => s + x.shards[i]!.commits_per_s, 0) / samples.length),
    max_lock_waits: Math.max(...samples.map((x) => x.shards[i]!.lock_waits)),
    max_active: Math.max(...samples.map((x) => x.shards[i]!.active)),
  }));
}
