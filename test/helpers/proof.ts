// Runs a root-only proof script (deploy/6-node/deploy-local.sh) to its
// end, bounded: past the limit it is sent SIGTERM, on which the scripts clean up their
// namespaces, bridges and processes. Exit 77 means the machine could not run it.
import { spawn } from 'node:child_process';
import type { Test } from 'tap';
import { ROOT } from '../../src/paths.js';

export const EX_SKIP = 77;

export interface ProofRun { code: number | null; out: string; tail: string; seconds: number }

export async function runProof(t: Test, script: string, args: string[], limitMs: number): Promise<ProofRun> {
  const started = Date.now();
  const child = spawn('bash', [script, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
  const guard = setTimeout(() => child.kill('SIGTERM'), limitMs);
  t.teardown(() => { clearTimeout(guard); if (child.exitCode === null) child.kill('SIGTERM'); });
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  clearTimeout(guard);
  return { code, out, tail: out.split('\n').slice(-60).join('\n'), seconds: Math.round((Date.now() - started) / 1000) };
}

/** A proof that could not run proves nothing: a failure naming why, not a pass. */
export function failIfSkipped(t: Test, name: string, run: ProofRun): boolean {
  if (run.code !== EX_SKIP) return false;
  t.fail(`${name} could not run on this machine (exit 77), so nothing was proven:\n${run.out.split('\n').filter((l) => /SKIPPED/.test(l)).join('\n')}`);
  return true;
}
