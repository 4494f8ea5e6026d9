// Processes the tools, the bench and the tests start: a simulator as its own process
// (the way the engine meets it in dev, tests and bench), waited for until it logs
// "listening"; stopping a child; an engine primary's workers and cron found in /proc.
// Neither the engine nor the simulators import this.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ROOT } from './paths.js';

/** Log lines kept in memory per spawned simulator. */
const MAX_LOGS = 10_000;

export type SimName = 'gateway' | 'provider';

export interface SpawnedSim {
  port: number;
  url: string;
  proc: ChildProcess;
  /** JSON log lines printed so far, in order (the newest 10k-20k on long runs). */
  logs: Record<string, unknown>[];
  stop(): Promise<void>;
}

/** The compiled entry under `root` (this checkout, or a release); its place under dist/ depends on tsconfig's rootDir. */
export function simEntry(name: SimName, root = ROOT): string {
  const candidates = [join(root, 'dist', 'sim', `${name}.js`), join(root, 'dist', 'src', 'sim', `${name}.js`)];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`simulator not built (run npm run build): looked for ${candidates.join(', ')}`);
  return found;
}

/** Where a simulator runs from: a directory holding dist/ (a release), and the environment it starts with. */
export interface SimInstall { dir: string; env: NodeJS.ProcessEnv }

/**
 * Spawns `node <entry>` with the given env (port 0 = any free port unless
 * the env names one) and resolves once it logs {"msg":"listening"}. By default
 * from this checkout, with this process's environment.
 */
export function spawnSim(name: SimName, env: Record<string, string> = {}, timeoutMs = 10_000, install?: SimInstall): Promise<SpawnedSim> {
  const portVar = `${name.toUpperCase()}_PORT`;
  const proc = spawn(process.execPath, [simEntry(name, install?.dir)], {
    cwd: install?.dir,
    env: { ...(install?.env ?? process.env), [portVar]: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`${name} did not log "listening" within ${timeoutMs} ms`)), timeoutMs);
    function fail(err: Error): void {
      clearTimeout(timer);
      proc.kill('SIGKILL');
      reject(err);
    }
    proc.once('exit', (code) => fail(new Error(`${name} exited early (code ${code}): ${stderr}`)));
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return; // not ours to judge here; tests may assert on logs
      }
      logs.push(entry);
      // Bounded for long runs (bench): keep the newest MAX_LOGS lines.
      if (logs.length > 2 * MAX_LOGS) logs.splice(0, logs.length - MAX_LOGS);
      if (entry.msg !== 'listening') return;
      clearTimeout(timer);
      proc.removeAllListeners('exit');
      const port = Number(entry.port);
      resolve({ port, url: `http://127.0.0.1:${port}`, proc, logs, stop: () => stopProcess(proc) });
    });
  });
}

/** Whether a child process is still running. */
export const alive = (proc: ChildProcess): boolean => proc.exitCode === null && proc.signalCode === null;

/** SIGTERM, then SIGKILL if it lingers past `graceMs`; resolves when the process is gone. */
export function stopProcess(proc: ChildProcess, graceMs = 3_000): Promise<void> {
  if (!alive(proc)) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => proc.kill('SIGKILL'), graceMs);
    proc.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    proc.kill('SIGTERM');
  });
}

/** Pids of an engine primary's children with a role (`worker` or `cron`), from /proc. */
export function childrenWithRole(primaryPid: number, role: 'worker' | 'cron'): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== primaryPid) continue;
      const env = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      if (env.includes(`ENGINE_ROLE=${role}`)) pids.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}
