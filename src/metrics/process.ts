// Per-process figures, labelled with the process's stable `worker` ("0".."WORKERS-1",
// "cron", "primary"): prom-client's default process and Node.js metrics (CPU, memory,
// heap, GC, event-loop lag percentiles, reset at each scrape) and the event loop's busy
// time, whose rate() is its utilization.
import { performance } from 'node:perf_hooks';
import client from 'prom-client';
import { collected, perProcess } from './registry.js';

// Gauges named like counters (promtool rejects a `_total` gauge); each repeats the sum of
// the family of the same name without `_total`, which stays.
const MISNAMED = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

let started = false;

export function startProcessMetrics(worker: string): void {
  if (started) return;
  started = true;
  perProcess.setDefaultLabels({ worker });
  client.collectDefaultMetrics({ register: perProcess });
  for (const name of MISNAMED) perProcess.removeSingleMetric(name);
  collected(perProcess, 'bf_event_loop_busy_seconds_total',
    'Time the event loop spent running callbacks rather than waiting for I/O; rate() is its utilization (1 = never ' +
    'idle)', 'counter',
    () => [{ labels: {}, value: performance.eventLoopUtilization().active / 1000 }]);
}
