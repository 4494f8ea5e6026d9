// One HTTP worker: the uWS app on the shared port (SO_REUSEPORT), drained on shutdown.
import { performance } from 'node:perf_hooks';
import type { Config } from './config.js';
import { openWorker } from './engine.js';
import { Admission } from './http/admission.js';
import { buildApp } from './http/app.js';
import { Replies } from './http/reply.js';
import { loadUws, uws, UwsUnavailable, UWS_UNAVAILABLE_EXIT, type TemplatedApp,
  type us_listen_socket } from './http/uws.js';
import { log, setLogContext } from './log.js';
import { exportAdmission, exportEngine } from './metrics/engine.js';
import { answerCollects } from './metrics/fleet.js';
import { zeroCounters } from './metrics/index.js';
import { startProcessMetrics } from './metrics/process.js';

export async function runWorker(cfg: Config): Promise<void> {
  setLogContext({ role: 'worker', pid: process.pid });
  nativeUwsOrExit();
  const engine = openWorker(cfg);
  const admission = new Admission(cfg.maxInflight);
  const replies = new Replies();
  const { app, close: closeApp } = buildApp({ deps: engine.deps, redis: engine.redis, live: engine.live, admission, replies });
  engine.live.attach(app);
  // The primary gives each worker slot a stable index; a respawn takes over its slot.
  startProcessMetrics(process.env.ENGINE_WORKER_INDEX ?? '0');
  exportEngine(engine, 'worker');
  exportAdmission(admission, cfg.maxInflight);
  zeroCounters(engine.deps.shards.count);
  answerCollects();
  const socket = await listen(app, cfg.host, cfg.port);
  process.send?.({ type: 'listening', port: cfg.port });

  let stopping = false;
  const drain = async () => {
    if (stopping) return;
    stopping = true;
    replies.closeConnections();
    uws().us_listen_socket_close(socket);
    await quiesce(admission, Date.now() + cfg.shutdownGraceMs);
    log.info('worker drained', { inflight: admission.inflight() });
    closeApp();
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

async function quiesce(admission: Admission, deadlineMs: number): Promise<void> {
  const started = performance.now();
  const quietMs = () => Math.min(admission.idleMs(), performance.now() - started);
  while (quietMs() < QUIET_MS && Date.now() < deadlineMs) await new Promise((r) => setTimeout(r, 10));
}

function listen(app: TemplatedApp, host: string, port: number): Promise<us_listen_socket> {
  return new Promise((resolve, reject) => {
    app.listen(host, port,
      (socket) => (socket ? resolve(socket) : reject(new Error(`cannot listen on ${host}:${port}`))));
  });
}
