// Where the load goes: either an engine that already runs (--url), or the bench's
// own: the local stack (reused when up), the simulators, and an engine cluster on
// the bench port, plus any variant cluster a scenario asks for (same shards, Redis
// and simulators, other settings). Everything started here is stopped by stop(),
// also on Ctrl-C.
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_PG_SHARDS } from '../src/config.js';
import { DIST_DIR } from '../src/paths.js';
import { prepareStack } from '../tools/dev/prepare.js';
import { portAnswers, request } from '../tools/lib/http.js';
import { alive, spawnSim, stopProcess, type SpawnedSim } from '../tools/lib/spawn.js';
import { waitForUrl } from '../tools/lib/wait.js';
import type { Flags } from './flags.js';
import { say } from './say.js';

/** An engine cluster the bench started beside its own: where to send load, whose CPU to count. */
export interface Engine { url: string; pid: number | null; stop(): Promise<void> }

export interface Target {
  engineUrl: string;
  gatewayUrl: string | null;
  pgShards: string[];
  own: boolean;
  workers: number | null;
  /** The engine's primary process when the bench started it (its workers are its children). */
  enginePid: number | null;
  /**
   * Starts another cluster of the own engine on `port` with environment overrides
   * (e.g. CACHE_ENABLED=false), ready when it resolves. Null with --url: the bench
   * cannot configure an engine it did not start.
   */
  variant: ((label: string, port: number, overrides: Record<string, string>) => Promise<Engine>) | null;
  stop(): Promise<void>;
}

const ENGINE_READY_MS = 90_000;
const STOP_GRACE_MS = 15_000;

async function gatewayAnswers(url: string): Promise<boolean> {
  return (await request(url, 'GET', '/healthz', { timeoutMs: 1500 })).status === 200;
}

async function external(flags: Flags): Promise<Target> {
  const engineUrl = flags.url!;
  await waitForUrl(`${engineUrl}/healthz`, 10_000);
  const guess = flags.gateway ?? process.env.GATEWAY_URL ?? 'http://127.0.0.1:8090';
  const gatewayUrl = (await gatewayAnswers(guess)) ? guess : null;
  if (!gatewayUrl) say(`gateway simulator not reachable at ${guess}: payments (if any) will not be completed`);
  const pgShards = (process.env.PG_SHARDS ?? DEFAULT_PG_SHARDS).split(',').map((s) => s.trim()).filter(Boolean);
  return { engineUrl, gatewayUrl, pgShards, own: false, workers: null, enginePid: null, variant: null, stop: async () => undefined };
}

async function refuseTakenPort(port: number, hint: string): Promise<void> {
  // uWS listens with SO_REUSEPORT: a second server on a taken port would silently split the traffic.
  if (await portAnswers(port)) throw new Error(`something already answers on 127.0.0.1:${port}: stop it, ${hint}`);
}

/**
 * Starts one engine cluster and waits for /readyz; one that never gets ready is
 * stopped. `started` learns of the child at once, so a Ctrl-C meanwhile stops it too.
 */
async function startEngine(flags: Flags, outDir: string, env: NodeJS.ProcessEnv, port: number, label: string, started: (c: ChildProcess) => void): Promise<ChildProcess> {
  const main = label === 'engine';
  const name = main ? 'engine' : `${label} engine`;
  const logFile = path.join(outDir, main ? 'engine.log' : `engine-${label}.log`);
  const args = flags.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${path.join(outDir, 'cpu-prof')}`] : [];
  say(`starting the ${name}: ${flags.workers} workers on 127.0.0.1:${port} (log: ${logFile})`);
  const log = openSync(logFile, 'a');
  const child = spawn(process.execPath, [...args, path.join(DIST_DIR, 'cluster.js')], { env: { ...env, PORT: String(port) }, stdio: ['ignore', log, log] });
  started(child);
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`${name} exited early (code ${code}); see ${path.basename(logFile)}`))));
  exited.catch(() => undefined);
  try {
    await Promise.race([waitForUrl(`http://127.0.0.1:${port}/readyz`, ENGINE_READY_MS), exited]);
  } catch (err) {
    await stopProcess(child, STOP_GRACE_MS);
    throw err;
  }
  return child;
}

async function own(flags: Flags, outDir: string): Promise<Target> {
  await refuseTakenPort(flags.port, 'pick another --port, or drive it with --url');
  say('bringing up the local stack (postgres x3, redis) if not up');
  const stackEnv = await prepareStack();
  const sims: SpawnedSim[] = [];
  const engines: ChildProcess[] = []; // the main cluster first, then variants
  const track = (c: ChildProcess) => { engines.push(c); };
  const stop = async () => {
    await Promise.all(engines.map((e) => stopProcess(e, STOP_GRACE_MS)));
    await Promise.all(sims.map((s) => s.stop()));
  };
  // If this process dies without stop() (a crash), its engines must not outlive it on the bench ports.
  process.once('exit', () => {
    for (const e of engines) if (alive(e)) e.kill('SIGKILL');
    for (const s of sims) if (alive(s.proc)) s.proc.kill('SIGKILL');
  });
  try {
    const simEnv = { ...stripUndefined(stackEnv), SIM_QUIET: '1' };
    sims.push(await spawnSim('gateway', simEnv), await spawnSim('provider', simEnv));
    const [gateway, provider] = sims as [SpawnedSim, SpawnedSim];
    const env: NodeJS.ProcessEnv = {
      ...stackEnv, WORKERS: String(flags.workers), LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn', GATEWAY_URL: gateway.url, PROVIDER_URL: provider.url,
      // The fixture registers its customers from one address (127.0.0.1).
      REGISTER_MAX_ADDRESS: '1000000',
      // 300 customers at the production scrypt cost (2^17: ~128 MiB and a third of a second
      // each on this box) would make the fixture, not the load, the long part of a run;
      // the bench measures orders and reads, not password hashing.
      PASSWORD_SCRYPT_N: '16384',
    };
    const engine = await startEngine(flags, outDir, env, flags.port, 'engine', track);
    const variant = async (label: string, port: number, overrides: Record<string, string>): Promise<Engine> => {
      await refuseTakenPort(port, `or pick another --port (the ${label} engine takes the port after it)`);
      const child = await startEngine(flags, outDir, { ...env, ...overrides }, port, label, track);
      return { url: `http://127.0.0.1:${port}`, pid: child.pid ?? null, stop: () => stopProcess(child, STOP_GRACE_MS) };
    };
    return {
      engineUrl: `http://127.0.0.1:${flags.port}`, gatewayUrl: gateway.url, pgShards: String(stackEnv.PG_SHARDS).split(','),
      own: true, workers: flags.workers, enginePid: engine.pid ?? null, variant, stop,
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
