// The whole six-host deployment of deploy/6-node, proven on network namespaces
// (deploy-local.sh): the release (`npm run release`) unpacked on every app server, the
// database tier with a synchronous standby per shard (Patroni, etcd, pgBackRest), smoke
// load, and under a recorded load of checkouts and card payments: a primary killed, a db
// server's link cut, planned switchovers, a restore drill. Needs root (and installs
// patroni, etcd and pgbackrest with apt-get when missing); without it the script exits
// 77 and this test fails rather than passing (`npm run test:local` leaves this file out
// and says so).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ROOT } from '../src/paths.js';
import { failIfSkipped, runProof } from './helpers/proof.js';
import { DEPLOY_DIR } from '../tools/ops/topology.js';

const PROOF_LIMIT_MS = 600_000;

// Four to five minutes on the 2-core development machine; longer while other suites load it
// (and the first run may install packages).
t.setTimeout(PROOF_LIMIT_MS + 30_000);

const num = (out: string, re: RegExp): number[] => (re.exec(out) ?? []).slice(1).map(Number);

t.test('six hosts on network namespaces, a synchronous standby per shard: failovers under load lose nothing', async (t) => {
  const run = await runProof(t, path.join(DEPLOY_DIR, 'deploy-local.sh'), ['--quick'], PROOF_LIMIT_MS);
  const { code, out, tail } = run;
  if (failIfSkipped(t, 'deploy-local.sh', run)) return;
  for (const line of out.split('\n').filter((l) => /^deploy:local (hosts|timings|smoke|rolling|crash|cut|switch|writes|probes|restore|metrics|RESULT) /.test(l))) t.comment(line);
  t.equal(code, 0, `deploy-local.sh exits 0 (took ${run.seconds} s)${code === 0 ? '' : `\n${tail}`}`);
  t.match(out, /^deploy:local RESULT PASS smoke_ok=yes rolling_restart=\w+ acknowledged_kept=yes one_writable=yes isolated=yes restore_drill=yes metrics=yes$/m,
    'the summary: nothing acknowledged lost, one writable node per shard, the restore drill passed');

  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const release = `${pkg.name}-${pkg.version}`.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const servers = [...out.matchAll(new RegExp(`^deploy:local +(app\\d) http://\\S+ ready \\(.*, as nobody, in \\.stack/deploy/(app\\d)/opt/${release}\\)$`, 'gm'))];
  t.same(servers.map((m) => m[1]), ['app1', 'app2', 'app3'], 'every engine ran from the release unpacked on its own server');
  t.ok(servers.every((m) => m[1] === m[2]), 'each from its own copy');
  t.match(out, /^deploy:local +shard 0 :5432: .*Leader.*Sync Standby|^deploy:local +shard 0 :5432: .*Sync Standby.*Leader/m, 'shard 0 runs as a leader and a synchronous standby');

  const [acked, payments, lost, changed, paymentsLost, paymentsChanged, duplicated] =
    num(out, /^deploy:local writes +(\d+) orders and (\d+) payments acknowledged: (\d+) orders lost, (\d+) changed, (\d+) payments lost, (\d+) changed, (\d+) duplicated; invariants \(ledger, stock\) held$/m);
  t.ok(acked! > 100 && payments! > 10, `the load wrote through every fault (${acked} orders, ${payments} payments acknowledged)`);
  t.same([lost, changed, paymentsLost, paymentsChanged, duplicated], [0, 0, 0, 0, 0], 'every acknowledged order and payment is there, unchanged, once');

  const [crashMs] = num(out, /^deploy:local crash +shard 1's primary killed \(kill -9\): answered writes again after (\d+) ms/m);
  t.ok(crashMs! > 0, `after kill -9 of its primary, shard 1 answered writes again (${crashMs} ms)`);
  t.match(out, /^deploy:local crash .*, 0 on the other shards; old primary a synchronous standby/m, 'the other shards did not fail meanwhile');
  t.match(out, /^deploy:local cut +db1's link cut: shard 0 \(primary there\) answered writes again after \d+ ms.*shard 2 \(standby there\) wrote alone after \d+ ms/m,
    'a server cut off: its primary failed over, its standby\'s shard went on alone');
  const switches = [...out.matchAll(/^deploy:local switch +shard \d planned switchover: writes on the new primary after \d+ ms; \d+ got 503, \d+ 409 in progress, (\d+) other failures, (\d+) on the other shards$/gm)];
  t.ok(switches.length >= 1, 'planned switchovers put the shards back');
  t.ok(switches.every((m) => m[1] === '0' && m[2] === '0'), 'a planned switchover fails nothing beyond its 503 window');

  const [rounds, two] = num(out, /^deploy:local probes +(\d+) rounds of every node of every shard .*: (\d+) with two writable nodes of one shard$/m);
  t.ok(rounds! > 100, `every node probed throughout (${rounds} rounds)`);
  t.equal(two, 0, 'never two writable nodes of one shard');
  t.match(out, /^deploy:local restore +restore-drill shard 1 target '[^']+': PASS \(exit 0\); restored in \d+ s.*orders live<=cutoff [1-9]\d* restored \d+ missing 0 invented 0 differing 0.*; invariants on the copy: ok/m,
    'the restore drill: the restored shard holds the live one\'s orders up to the target and keeps its invariants');
  t.match(out, /^deploy:local metrics +bf-ha-metrics\.sh output for the alerts: yes$/m, 'the figures the HA alerts read are produced');

  t.match(out, /cleanup: done/, 'and it cleaned up');
  const leftovers = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => /^bf-(app|db)\d/.test(l));
  t.same(leftovers, [], 'no namespace left behind');
});
