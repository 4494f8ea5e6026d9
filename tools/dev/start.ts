// `npm start`: the whole local stack and the engine in the foreground.
// Postgres and Redis stay up after Ctrl-C so the next start is instant;
// `npm run stack -- stop` stops them.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../../src/config.js';
import { DIST_DIR } from '../../src/paths.js';
import { prepareStack } from './prepare.js';
import { StackError } from './stack.js';

const say = (msg: string) => process.stdout.write(`start: ${msg}\n`);

/** Simulators are started when their build exists (they are separate processes). */
function startSimulators(env: NodeJS.ProcessEnv): ChildProcess[] {
  const sims = ['gateway', 'provider'].map((n) => path.join(DIST_DIR, 'sim', `${n}.js`)).filter(existsSync);
  return sims.map((file) => spawn(process.execPath, [file], { env, stdio: ['ignore', 'inherit', 'inherit'] }));
}

async function main(): Promise<void> {
  let env: NodeJS.ProcessEnv;
  try {
    env = await prepareStack();
  } catch (err) {
    process.stderr.write(`start: ${err instanceof StackError ? err.message : String((err as Error).stack ?? err)}\n`);
    process.exit(1);
  }
  const cfg = loadConfig(env);
  say(`postgres shards: ${cfg.pgShards.join(' ')}`);
  say(`redis: ${cfg.redisUrls.join(' ')}`);
  const sims = startSimulators(env);
  const engine = spawn(process.execPath, [path.join(DIST_DIR, 'cluster.js')], { env, stdio: 'inherit' });
  say(`engine on http://${cfg.host}:${cfg.port} (admin: ${cfg.adminEmail})`);
  const stop = (sig: NodeJS.Signals) => {
    engine.kill(sig);
    for (const s of sims) s.kill('SIGTERM');
  };
  process.on('SIGINT', () => stop('SIGTERM'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  engine.on('exit', (code) => {
    for (const s of sims) s.kill('SIGTERM');
    process.exit(code ?? 0);
  });
}

await main();
