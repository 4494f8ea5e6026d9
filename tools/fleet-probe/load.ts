// Fleet probe phase load: steady traffic through a stand-in load balancer while app
// servers are restarted one by one (the rolling restart of deploy-local.sh).
import { existsSync, readFileSync } from 'node:fs';
import { sleep } from '../lib/wait.js';
import { pct, r0, hostOf, type State, loadState, result, Flags } from './common.js';
import { report, runOp, type Sample } from './smoke.js';

/** The balancer's view: every engine not listed (by host:port) in the rotation file. */
export function inRotation(s: State, file: string): string[] {
  const out = existsSync(file) ? readFileSync(file, 'utf8').split('\n').map((l) => l.trim()).filter(Boolean) : [];
  return s.engines.filter((e) => !out.includes(hostOf(e)));
}

export async function load(a: Flags): Promise<boolean> {
  const s = loadState(a.req('state'));
  const rotationFile = a.req('rotation-file');
  const stopFile = a.req('stop-file');
  const maxMs = a.int('max-ms', 180_000);
  const started = Date.now();
  let live = inRotation(s, rotationFile);
  const refresh = setInterval(() => { live = inRotation(s, rotationFile); }, 50);
  const samples: Sample[] = [];
  let next = 0;
  const running = () => !existsSync(stopFile) && Date.now() - started < maxMs;
  await Promise.all(Array.from({ length: a.int('concurrency', 6) }, async () => {
    while (running()) {
      const i = next++;
      const engine = live[i % Math.max(1, live.length)];
      if (!engine) { await sleep(50); continue; }
      samples.push(await runOp(s, i, i % 3 === 0 ? 'create_order' : 'get_item', engine));
    }
  }));
  clearInterval(refresh);
  const { failed } = report(samples, Date.now() - started);
  const ms = samples.map((x) => x.ms);
  result('load', {
    ok: failed.length === 0 && samples.length > 0, requests: samples.length, failed: failed.length,
    p99_ms: r0(pct(ms, 99)), max_ms: r0(pct(ms, 100)),
    per_engine: Object.fromEntries(s.engines.map((e) => [hostOf(e), samples.filter((x) => x.engine === e).length])),
  });
  return failed.length === 0 && samples.length > 0;
}
