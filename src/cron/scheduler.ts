// Periodic jobs for the cron process. Each job runs at most once at a time per
// process, with a bounded interval; jobs must be idempotent and fenced in SQL,
// because leadership (redlock) is only an efficiency lock.
import { log } from '../log.js';
import { cronDuration, cronLastSuccess, cronRuns } from '../metrics/index.js';

export interface Job { name: string; everyMs: number; run(): Promise<unknown> }

export class Scheduler {
  private timers: NodeJS.Timeout[] = [];
  private running = new Set<string>();
  private stopped = false;

  constructor(private readonly jobs: Job[]) {}

  start(): void {
    for (const job of this.jobs) {
      const t = setInterval(() => void this.tick(job), job.everyMs);
      this.timers.push(t);
      void this.tick(job);
    }
  }

  async tick(job: Job): Promise<void> {
    if (this.stopped || this.running.has(job.name)) return;
    this.running.add(job.name);
    try {
      const result = await job.run();
      if (result) log.debug('cron job ran', { job: job.name, result });
    } catch (err) {
      log.warn('cron job failed', { job: job.name, err });
    } finally {
      this.running.delete(job.name);
    }
  }

  /** Stops scheduling and waits for running jobs to finish their batch. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    const deadline = Date.now() + timeoutMs;
    while (this.running.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }
}

/** One job's run on one shard, counted by outcome; a run that did the work is timed too. */
export async function timed<R extends { ran: boolean }>(job: string, shard: number, run: () => Promise<R>): Promise<R> {
  const labels = { cron_job: job, shard: String(shard) };
  const started = performance.now();
  try {
    const r = await run();
    cronRuns.inc({ ...labels, outcome: r.ran ? 'ok' : 'skipped' });
    if (r.ran) {
      cronDuration.observe(labels, (performance.now() - started) / 1000);
      cronLastSuccess.set(labels, Date.now() / 1000);
    }
    return r;
  } catch (err) {
    cronRuns.inc({ ...labels, outcome: 'failed' });
    cronDuration.observe(labels, (performance.now() - started) / 1000);
    throw err;
  }
}
