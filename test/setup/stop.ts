import { sleep } from '../../tools/lib/wait.js';
import { recordedPids } from './procs.js';

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

/** Stops what a previous run (or this one) recorded and waits until it is gone. */
export async function stopRecorded(): Promise<void> {
  const pids = Object.values(recordedPids());
  for (const pid of pids) {
    try { process.kill(pid, 'SIGTERM'); } catch { /* already gone */ }
  }
  const deadline = Date.now() + 15_000;
  while (pids.some(alive) && Date.now() < deadline) await sleep(50);
  for (const pid of pids.filter(alive)) process.kill(pid, 'SIGKILL');
}
