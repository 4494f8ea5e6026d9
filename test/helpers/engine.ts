// Engine clusters a test starts for itself, next to the suite's shared one.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { DEFAULT_PG_SHARDS } from '../../src/config.js';
import { ROOT } from '../../src/paths.js';
import { request } from '../../tools/lib/http.js';
import { stopProcess } from '../../tools/lib/spawn.js';
import { sleep, waitForUrl } from '../../tools/lib/wait.js';
import { engineEnv } from '../setup/env.js';

/**
 * Where a cluster runs from: this checkout with the test's environment (the default), or
 * an installed release (`npm run release`) with an environment of its own.
 */
export interface Install { dir: string; env: NodeJS.ProcessEnv }
const CHECKOUT: Install = { dir: ROOT, env: process.env };

export interface Spawned { child: ChildProcess; url: string; out: () => string; exited: Promise<{ code: number | null; signal: string | null; atMs: number }> }

/** Small pools by default: these clusters share the test Postgres with the suite's engine. */
export const SMALL_POOLS = { PG_POOL_SIZE: '4', CRON_POOL_SIZE: '2' };

/** `node`: the Node binary to run the primary with (its workers are forked on the same one). */
export function startCluster(port: number, overrides: Record<string, string>, pools: Record<string, string> = SMALL_POOLS, install = CHECKOUT, node = process.execPath): Spawned {
  // A cluster on databases of its own shares the suite's Redis and gateway, so it gets
  // its own keys and channels there: its ids repeat the shared databases' ids.
  const own: Record<string, string> = overrides.PG_SHARDS ? { REDIS_NAMESPACE: `t${port}:`, GATEWAY_KEY_PREFIX: `t${port}:` } : {};
  const env = engineEnv(install.env, {
    PG_SHARDS: process.env.PG_SHARDS ?? DEFAULT_PG_SHARDS,
    REDIS_URLS: process.env.REDIS_URLS ?? 'redis://127.0.0.1:6391',
    PORT: String(port), LOG_LEVEL: 'info', ...pools, ...own, ...overrides,
  });
  const child = spawn(node, [path.join(install.dir, 'dist', 'src', 'cluster.js')], { cwd: install.dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (d: Buffer) => { out = (out + d.toString()).slice(-20_000); };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<{ code: number | null; signal: string | null; atMs: number }>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal, atMs: Date.now() }));
  });
  return { child, url: `http://127.0.0.1:${port}`, out: () => out, exited };
}

export async function startReady(port: number, overrides: Record<string, string> = {}, install = CHECKOUT): Promise<Spawned> {
  const s = startCluster(port, overrides, SMALL_POOLS, install);
  await waitForUrl(`${s.url}/readyz`, 30_000);
  return s;
}

/**
 * For a cluster that must refuse to start: its exit, or what it did instead (got
 * ready, or neither within the time), so a start that wrongly succeeds fails fast.
 */
export async function refusal(s: Spawned, timeoutMs = 30_000): Promise<{ code: number | null } | 'ready' | 'timeout'> {
  let done = false;
  const ready = (async () => {
    const deadline = Date.now() + timeoutMs;
    while (!done && Date.now() < deadline) {
      if ((await request(s.url, 'GET', '/healthz')).status === 200) return 'ready' as const;
      await sleep(200);
    }
    return 'timeout' as const;
  })();
  const result = await Promise.race([s.exited.then((e) => ({ code: e.code })), ready]);
  done = true;
  return result;
}

/** Stops a cluster the test started, whatever state the test left it in. */
export async function stop(s: Spawned): Promise<void> {
  await stopProcess(s.child, 8000);
}

/** Pids of the primary's children with a role, from /proc (shared with the chaos runner). */
export { childrenWithRole } from '../../tools/lib/spawn.js';

/** Three fresh databases (one per shard cluster) for a test that must own its data alone. */
export async function isolatedShards(name: string): Promise<string> {
  const pg = (await import('pg')).default;
  const urls = (process.env.PG_SHARDS ?? DEFAULT_PG_SHARDS).split(',');
  const out: string[] = [];
  for (const url of urls) {
    const admin = new pg.Client({ connectionString: url.replace(/\/[^/]+$/, '/postgres') });
    await admin.connect();
    try {
      await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await admin.query(`CREATE DATABASE "${name}"`);
    } finally {
      await admin.end();
    }
    out.push(url.replace(/\/[^/]+$/, `/${name}`));
  }
  return out.join(',');
}
