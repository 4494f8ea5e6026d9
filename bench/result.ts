// The machine-readable result of one run (result.json), as the smoke test reads it.
import os from 'node:os';
import type { InvariantReport } from '../tools/lib/invariants.js';
import type { ScenarioResult } from './context.js';
import type { ProfileSummary } from './cpuprof.js';
import type { Flags } from './flags.js';
import type { Summary } from './report/summary.js';

export interface Machine { cpus: number; cpu_model: string; mem_gb: number; node: string; platform: string; loadavg_before: number[] }

export interface BenchResult {
  schema: 'bf-bench/1';
  ok: boolean;
  exit_code: number;
  started_at: string;
  finished_at: string;
  machine: Machine;
  engine: { url: string; own: boolean; workers: number | null };
  flags: Flags;
  fixture: { items: number; categories: number; customers: number; items_per_shard: Record<string, number> };
  payments: { available: boolean; reason: string };
  scenarios: Record<string, ScenarioResult>;
  summary: Summary;
  invariants: InvariantReport | null;
  /** Every broken invariant, from the SQL checks and from the scenarios themselves. */
  violations: string[];
  /** Scenarios or steps that could not run. */
  failures: string[];
  /** With --cpu-prof: where each engine process spent its CPU. */
  cpu_profiles?: ProfileSummary[];
}

export function machine(): Machine {
  const cpus = os.cpus();
  return {
    cpus: os.availableParallelism(), cpu_model: cpus[0]?.model.trim() ?? 'unknown', mem_gb: Math.round(os.totalmem() / 2 ** 30),
    node: process.version, platform: `${os.platform()} ${os.release()}`, loadavg_before: os.loadavg().map((v) => Math.round(v * 100) / 100),
  };
}
