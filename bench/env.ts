// Where the load goes: either an engine that already runs (--url), or the bench's
// own: the local stack (reused when up), the simulators, and an engine cluster on
// the bench port. Everything started here is stopped by stop(), also on Ctrl-C.
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_PG_SHARDS } from '../src/config.js';
import { prepareStack } from '../src/dev/prepare.js';
import { DIST_DIR } from '../src/paths.js';
import { spawnSim, type SpawnedSim } from '../src/sim/spawn.js';
import type { Flags } from './flags.js';
import { waitFor } from './http.js';
import { say } from './say.js';

export interface Target {
  engineUrl: string;
  gatewayUrl: string | null;
  pgShards: string[];
  own: boolean;
  workers: number | null;
  /** The engine's primary process when the bench started it (its workers are its children). */
  enginePid: number | null;
  stop(): Promise<void>;
}

const ENGINE_READY_MS = 90_000;
const STOP_GRACE_MS = 15_000;

async function gatewayAnswers(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1500) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

async function external(flags: Flags): Promise<Target> {
  const engineUrl = flags.url!;
  await waitFor(`${engineUrl}/healthz`, 10_000);
  const guess = flags.gateway ?? process.env.GATEWAY_URL ?? 'http://127.0.0.1:8090';
  const gatewayUrl = (await gatewayAnswers(guess)) ? guess : null;
  if (!gatewayUrl) say(`gateway simulator not reachable at ${guess}: payments (if any) will not be completed`);
  const pgShards = (process.env.PG_SHARDS ?? DEFAULT_PG_SHARDS).split(',').map((s) => s.trim()).filter(Boolean);
  return { engineUrl, gatewayUrl, pgShards, own: false, workers: null, enginePid: null, stop: async () => undefined };
}

function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => { clearTimeout(kill); resolve(); });
    child.kill('SIGTERM');
  });
}

async function portAnswers(port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return true;
  } catch {
    return false;
  }
}

async function own(flags: Flags, outDir: string): Promise<Target> {
  if (await portAnswers(flags.port)) {
    throw new Error(`something already answers on 127.0.0.1:${flags.port}: stop it, pick another --port, or drive it with --url`);
  }
  say('bringing up the local stack (postgres x3, redis) if not up');
  const stackEnv = await prepareStack();
  const sims: SpawnedSim[] = [];
  let engine: ChildProcess | null = null;
  const stop = async () => {
    if (engine) await stopChild(engine, STOP_GRACE_MS);
    await Promise.all(sims.map((s) => s.stop()));
  };
  // If this process dies without stop() (a crash), its engine must not outlive it on the bench port.
  process.once('exit', () => {
    if (engine && engine.exitCode === null && engine.signalCode === null) engine.kill('SIGKILL');
    for (const s of sims) if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGKILL');
  });
  try {
    const simEnv = { ...stripUndefined(stackEnv), SIM_QUIET: '1' };
    sims.push(await spawnSim('gateway', simEnv), await spawnSim('provider', simEnv));
    const [gateway, provider] = sims as [SpawnedSim, SpawnedSim];
    const env: NodeJS.ProcessEnv = {
      ...stackEnv, PORT: String(flags.port), WORKERS: String(flags.workers), LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
      GATEWAY_URL: gateway.url, PROVIDER_URL: provider.url,
    };
    const log = openSync(path.join(outDir, 'engine.log'), 'a');
    const args = flags.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${path.join(outDir, 'cpu-prof')}`] : [];
    say(`starting the engine: ${flags.workers} workers on 127.0.0.1:${flags.port} (log: ${path.join(outDir, 'engine.log')})`);
    engine = spawn(process.execPath, [...args, path.join(DIST_DIR, 'cluster.js')], { env, stdio: ['ignore', log, log] });
    const exited = new Promise<never>((_, reject) => engine!.once('exit', (code) => reject(new Error(`engine exited early (code ${code}); see engine.log`))));
    await Promise.race([waitFor(`http://127.0.0.1:${flags.port}/readyz`, ENGINE_READY_MS), exited]);
    exited.catch(() => undefined);
    return {
      engineUrl: `http://127.0.0.1:${flags.port}`, gatewayUrl: gateway.url, pgShards: String(stackEnv.PG_SHARDS).split(','),
      own: true, workers: flags.workers, enginePid: engine.pid ?? null, stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

function stripUndefined(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

export function openTarget(flags: Flags, outDir: string): Promise<Target> {
  return flags.url ? external(flags) : own(flags, outDir);
}
