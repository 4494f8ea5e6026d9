// One HTTP worker: the uWS app on the shared port (SO_REUSEPORT), drained on shutdown.
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { Config } from './config.js';
import { counterSamples } from './cache/counters.js';
import { createEngine } from './engine.js';
import { idleMs, inflightCount, streamInflightCount } from './http/admission.js';
import { buildApp } from './http/app.js';
import { setGauge, startMetricsShipping } from './http/metrics.js';
import { closeConnectionsAfterReply } from './http/reply.js';
import { loadUws, uws, UwsUnavailable, UWS_UNAVAILABLE_EXIT, type TemplatedApp, type us_listen_socket } from './http/uws.js';
import { log, setLogContext } from './log.js';

export async function runWorker(cfg: Config): Promise<void> {
  setLogContext({ role: 'worker', pid: process.pid });
  nativeUwsOrExit();
  const engine = createEngine(cfg, 'worker');
  const { app } = buildApp({ deps: engine.deps, redis: engine.redis, live: engine.live });
  engine.live?.attach(app);
  const socket = await listen(app, cfg.host, cfg.port);
  process.send?.({ type: 'listening', port: cfg.port });
  const loop = loopStats();
  startMetricsShipping(() => {
    for (const s of engine.deps.pools.stats()) {
      const l = `{shard="${s.shard}",lane="${s.lane}",pid="${process.pid}"}`;
      setGauge(`pg_pool_total${l}`, s.total);
      setGauge(`pg_pool_idle${l}`, s.idle);
      setGauge(`pg_pool_waiting${l}`, s.waiting);
    }
    for (const set of engine.deps.pools.all()) {
      for (const shard of set.list) {
        const l = `{shard="${shard.index}",lane="${set.lane}",pid="${process.pid}"}`;
        for (const [k, v] of Object.entries(shard.usage)) setGauge(`pg_${k}_total${l}`, Math.round(v));
      }
    }
    const { utilization, delayP99Ms } = loop();
    setGauge(`event_loop_utilization{pid="${process.pid}"}`, utilization);
    setGauge(`event_loop_delay_p99_ms{pid="${process.pid}"}`, delayP99Ms);
    setGauge(`http_inflight{pid="${process.pid}"}`, inflightCount());
    setGauge(`stream_inflight{pid="${process.pid}"}`, streamInflightCount());
    for (const [name, v] of counterSamples(`pid="${process.pid}"`)) setGauge(name, v);
  });

  let stopping = false;
  const drain = async () => {
    if (stopping) return;
    stopping = true;
    closeConnectionsAfterReply();
    uws().us_listen_socket_close(socket);
    await quiesce(Date.now() + cfg.shutdownGraceMs);
    log.info('worker drained', { inflight: inflightCount() });
    await engine.close();
    process.exit(0);
  };
  // Ctrl-C reaches the whole process group; the primary orders the drain.
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', () => void drain());
  process.on('message', (msg: { type?: string }) => { if (msg?.type === 'shutdown') void drain(); });
}

/** The primary checked before forking; a worker that still finds none exits so that the primary stops. */
function nativeUwsOrExit(): void {
  try {
    loadUws();
  } catch (err) {
    if (!(err instanceof UwsUnavailable)) throw err;
    log.error('no native uWS build', { reason: err.message });
    process.exit(UWS_UNAVAILABLE_EXIT);
  }
}

// One idle instant is not a drained worker: a request already sitting in an accepted
// connection's buffer is dispatched a loop turn later, and exit would cut it off
// (or it would find the pools closed). Wait for a quiet spell, bounded by the grace.
const QUIET_MS = 100;

async function quiesce(deadlineMs: number): Promise<void> {
  const started = performance.now();
  const quietMs = () => Math.min(idleMs(), performance.now() - started);
  while (quietMs() < QUIET_MS && Date.now() < deadlineMs) await new Promise((r) => setTimeout(r, 10));
}

/**
 * How busy this worker's event loop was since the last call: the share of time it
 * ran (1 = never idle) and the p99 of how late its timers fired (what every waiting
 * request pays once per await).
 */
function loopStats(): () => { utilization: number; delayP99Ms: number } {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  let last = performance.eventLoopUtilization();
  return () => {
    const now = performance.eventLoopUtilization();
    const utilization = Math.round(performance.eventLoopUtilization(now, last).utilization * 1000) / 1000;
    last = now;
    const delayP99Ms = Math.round(delay.percentile(99) / 1e5) / 10;
    delay.reset();
    return { utilization, delayP99Ms };
  };
}

function listen(app: TemplatedApp, host: string, port: number): Promise<us_listen_socket> {
  return new Promise((resolve, reject) => {
    app.listen(host, port, (socket) => (socket ? resolve(socket) : reject(new Error(`cannot listen on ${host}:${port}`))));
  });
}
