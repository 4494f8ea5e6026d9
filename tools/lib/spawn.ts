// Starts a simulator as its own process (the way the engine meets it in dev,
// tests and bench) and waits for its "listening" line. Used by tests and dev
// tooling; the simulators themselves never import this.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

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

/** Walks up from this module to the directory holding package.json. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('package.json not found above src/sim');
    dir = up;
  }
  return dir;
}

/** The compiled entry under `root` (this checkout, or a release); its place under dist/ depends on tsconfig's rootDir. */
export function simEntry(name: SimName, root = repoRoot()): string {
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
      resolve({ port, url: `http://127.0.0.1:${port}`, proc, logs, stop: () => stopProc(proc) });
    });
  });
}

/** SIGTERM, then SIGKILL if it lingers; resolves when the process is gone. */
function stopProc(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => proc.kill('SIGKILL'), 3_000);
    proc.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    proc.kill('SIGTERM');
  });
}
