// What a scenario gets (its stack, a way to (re)start the engine, clients) and what it
// hands back: the load it held, the faults it injected, the invariants after, and the
// figures that show it (latencies, throughput, recovery times).
import type { HttpClient } from '../lib/http.js';
import { broken, countKind, type Check } from '../lib/invariants.js';
import type { Fixture } from './fixture.js';
import type { ChaosStack, EngineProc, Sims } from './stack.js';
import type { Summary } from './stats.js';

export interface RunCtx {
  stack: ChaosStack;
  sims: Sims;
  /** Seconds of load the scenario should hold (its phases split this). */
  durationS: number;
  /** Stops the running engine (if any) and starts one with these settings, ready. */
  startEngine(overrides?: Record<string, string>): Promise<EngineProc>;
  engine(): EngineProc;
  api: HttpClient;
  gateway: HttpClient;
  fixture: Fixture;
  say(msg: string): void;
}

export interface Result {
  scenario: string;
  ok: boolean;
  seconds: number;
  /** The load held: requests, rate, share answered as expected. */
  load: { requests: number; rps: number; expected_pct: number; clients: number };
  faults: { count: number; what: string };
  lost: number;
  oversold: number;
  double_charged: number;
  /** Other broken invariants (half-made orders, leaked holds, duplicated transitions, unsettled money). */
  other_broken: number;
  /** One line of the latencies that matter for this fault. */
  key_latencies: string;
  latencies: Record<string, Summary>;
  figures: Record<string, unknown>;
  failures: string[];
  checks_broken: string[];
}

export interface Scenario { name: string; summary: string; run(ctx: RunCtx): Promise<Result> }

/** Collects a scenario's findings; `finish` turns them into a Result. */
export class Outcome {
  readonly failures: string[] = [];
  readonly figures: Record<string, unknown> = {};
  readonly latencies: Record<string, Summary> = {};
  lost = 0;
  oversold = 0;
  doubleCharged = 0;
  private readonly checks: Check[] = [];
  private readonly started = Date.now();

  constructor(readonly scenario: string) {}

  /** A promise kept or broken: broken ones fail the scenario. */
  expect(cond: boolean, what: string): boolean {
    if (!cond) this.failures.push(what);
    return cond;
  }

  addChecks(checks: Check[]): void { this.checks.push(...checks); }

  finish(load: Result['load'], faults: Result['faults'], keyLatencies: string): Result {
    const lost = this.lost + countKind(this.checks, 'lost');
    const oversold = this.oversold + countKind(this.checks, 'oversold');
    const doubleCharged = this.doubleCharged + countKind(this.checks, 'double_charged');
    const other = (['half_made', 'leaked', 'duplicated', 'unsettled'] as const).reduce((s, k) => s + countKind(this.checks, k), 0);
    const checksBroken = broken(this.checks);
    const ok = this.failures.length === 0 && checksBroken.length === 0 && lost === 0 && oversold === 0 && doubleCharged === 0;
    return {
      scenario: this.scenario, ok, seconds: Math.round((Date.now() - this.started) / 100) / 10, load, faults,
      lost, oversold, double_charged: doubleCharged, other_broken: other, key_latencies: keyLatencies,
      latencies: this.latencies, figures: this.figures, failures: this.failures, checks_broken: checksBroken,
    };
  }
}

export const pct = (part: number, whole: number) => (whole === 0 ? 100 : Math.round((part / whole) * 1000) / 10);
