// The cron process: one per app server, forked by the primary. Runs the periodic
// jobs every domain registers here.
import type { Config } from '../config.js';
import { openCron, type CronProcess } from '../engine.js';
import { log, setLogContext } from '../log.js';
import { exportEngine } from '../metrics/engine.js';
import { answerCollects } from '../metrics/fleet.js';
import { zeroCounters } from '../metrics/index.js';
import { startProcessMetrics } from '../metrics/process.js';
import { Scheduler, type Job } from './scheduler.js';
import { allJobs } from './jobs.js';
import { Leader } from './leader.js';

export function cronJobs(engine: CronProcess): Job[] {
  const leader = new Leader(engine.redis);
  return allJobs(engine.deps, leader);
}

export async function runCron(cfg: Config): Promise<void> {
  setLogContext({ role: 'cron', pid: process.pid });
  const engine = openCron(cfg);
  const jobs = cronJobs(engine);
  startProcessMetrics('cron');
  exportEngine(engine, 'cron');
  zeroCounters(engine.deps.shards.count, { jobs: jobs.map((j) => j.name) });
  answerCollects();
  const scheduler = new Scheduler(jobs);
  scheduler.start();
  log.info('cron started');
  const stop = async () => {
    await scheduler.stop(cfg.shutdownGraceMs);
    await engine.close();
    process.exit(0);
  };
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', () => void stop());
  process.on('message', (msg: { type?: string }) => { if (msg?.type === 'shutdown') void stop(); });
}
