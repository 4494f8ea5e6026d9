// Processes the suite starts once (engine cluster, simulators) and stops at the end.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DIST_DIR, ROOT } from '../../src/paths.js';
import { TEST_PORT } from './env.js';

// Keyed by port so two suites (say, two checkouts) can run side by side.
export const PIDS_FILE = path.join(ROOT, '.stack', `test-pids-${TEST_PORT}.json`);
export const LOG_DIR = path.join(ROOT, '.stack', `test-logs-${TEST_PORT}`);

export function startDetached(name: string, file: string, env: NodeJS.ProcessEnv): number {
  mkdirSync(LOG_DIR, { recursive: true });
  const out = openSync(path.join(LOG_DIR, `${name}.log`), 'w');
  const child = spawn(process.execPath, [path.join(DIST_DIR, file)], { env, detached: true, stdio: ['ignore', out, out] });
  child.unref();
  return child.pid!;
}

export function recordPids(pids: Record<string, number>): void {
  writeFileSync(PIDS_FILE, JSON.stringify(pids));
}

export function recordedPids(): Record<string, number> {
  return existsSync(PIDS_FILE) ? (JSON.parse(readFileSync(PIDS_FILE, 'utf8')) as Record<string, number>) : {};
}
