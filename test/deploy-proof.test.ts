// The whole six-host deployment of deploy/6-node, proven on network namespaces
// (deploy-local.sh): the release (`npm run release`) unpacked on every app server,
// smoke load, rolling restart, one shard cut off is isolated and heals. Needs root; without it the script exits 77 and this test fails rather than
// passing (`npm run test:local` leaves this file out and says so).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ROOT } from '../src/paths.js';
import { failIfSkipped, runProof } from './helpers/proof.js';
import { DEPLOY_DIR } from '../tools/ops/topology.js';

const PROOF_LIMIT_MS = 270_000;

// The proof runs for a minute or two (longer while other suites load the machine).
t.setTimeout(PROOF_LIMIT_MS + 30_000);

t.test('six hosts on network namespaces: smoke load, one shard cut off is isolated, and heals', async (t) => {
  const run = await runProof(t, path.join(DEPLOY_DIR, 'deploy-local.sh'), ['--quick'], PROOF_LIMIT_MS);
  const { code, out, tail } = run;
  if (failIfSkipped(t, 'deploy-local.sh', run)) return;
  for (const line of out.split('\n').filter((l) => /^deploy:local (hosts|timings|smoke|rolling|fault|heal|RESULT) /.test(l))) t.comment(line);
  t.equal(code, 0, `deploy-local.sh exits 0 (took ${run.seconds} s)${code === 0 ? '' : `\n${tail}`}`);
  t.match(out, /^deploy:local RESULT PASS smoke_ok=yes rolling_restart=\w+ fault_isolated=yes healed=yes$/m, 'the summary shows the fault isolated and healed');
  t.match(out, /fault {4}link: db2 \(shard 1\) cut: (\d+)\/\1 requests to its categories answered 503 unavailable/, 'a network partition: every request to the cut shard got 503');
  t.match(out, /fault {4}stop: db2 \(shard 1\) cut: (\d+)\/\1 requests to its categories answered 503 unavailable/, 'a crash: likewise');
  t.match(out, /other shards (\d+)\/\1 succeeded/, 'the other shards kept answering');
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const release = `${pkg.name}-${pkg.version}`.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const servers = [...out.matchAll(new RegExp(`^deploy:local +(app\\d) http://\\S+ ready \\(.*, as nobody, in \\.stack/deploy/(app\\d)/opt/${release}\\)$`, 'gm'))];
  t.same(servers.map((m) => m[1]), ['app1', 'app2', 'app3'], 'every engine ran from the release unpacked on its own server');
  t.ok(servers.every((m) => m[1] === m[2]), 'each from its own copy');
  t.match(out, /cleanup: done/, 'and it cleaned up');
  const leftovers = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => /^bf-(app|db)\d/.test(l));
  t.same(leftovers, [], 'no namespace left behind');
});
