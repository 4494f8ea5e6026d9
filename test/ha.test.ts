// The database tier's high availability (deploy/6-node/ha), proven on network
// namespaces by prove-local.sh: one shard as a Patroni cluster of a primary and a
// synchronous standby with a three-member etcd and pgBackRest; the primary's
// postmaster killed under writes, the old primary rejoining, a planned switchover, the
// standby's server cut off, the primary's server lost, and a point-in-time restore.
// Needs root (and installs patroni, etcd and pgbackrest with apt-get when missing);
// without it the script exits 77 and this test fails rather than passing
// (`npm run test:local` leaves this file out when not root, and says so).
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import t from 'tap';
import { ROOT } from '../src/paths.js';
import { failIfSkipped, runProof } from './helpers/proof.js';

const PROOF_LIMIT_MS = 540_000;
const SCRIPT = path.join(ROOT, 'deploy', '6-node', 'ha', 'prove-local.sh');

// Three minutes on the 2-core development machine; longer while other suites load it
// (and the first run may install packages).
t.setTimeout(PROOF_LIMIT_MS + 30_000);

t.test('one shard with a synchronous standby: crash, rejoin, switchover, lost servers, point-in-time restore', async (t) => {
  const run = await runProof(t, SCRIPT, [], PROOF_LIMIT_MS);
  const { code, out, tail } = run;
  if (failIfSkipped(t, 'prove-local.sh', run)) return;
  for (const line of out.split('\n').filter((l) => /^ha:local (setup|crash|rejoin|switch|standby|server|writes|probes|restore|metrics|total|RESULT) /.test(l))) t.comment(line);
  t.equal(code, 0, `prove-local.sh exits 0 (took ${run.seconds} s)${code === 0 ? '' : `\n${tail}`}`);
  t.match(out, /^ha:local RESULT PASS acked_lost=0 two_writable_rounds=0 restore_ok=yes failover_s=\d+\.\d switchover_failed_writes=\d+$/m,
    'the summary: nothing acknowledged lost, never two writable nodes, the restore checked');

  const writes = /^ha:local writes +(\d+) acknowledged, (\d+) failed \(\d+ of them committed anyway\), (\d+) acknowledged rows lost$/m.exec(out);
  t.ok(writes && Number(writes[1]) > 500, `the client wrote under every fault (${writes?.[1]} rows acknowledged)`);
  t.equal(writes?.[3], '0', 'every acknowledged row is on the final primary');

  const crash = /^ha:local crash +kill -9 of (db\d)'s postmaster: (db\d) accepted writes after (\d+\.\d) s/m.exec(out);
  t.ok(crash && crash[1] !== crash[2], `after the kill -9 another node took writes (${crash?.[2]}, ${crash?.[3]} s)`);
  t.match(out, /^ha:local rejoin +db\d back as synchronous standby after \d+\.\d s/m, 'the old primary rejoined as the synchronous standby');
  t.match(out, /^ha:local switch +patronictl switchover db\d -> db\d: writes on db\d after \d+\.\d s; \d+ writes failed/m, 'the planned switchover, its failed writes counted');
  t.match(out, /^ha:local server +db\d lost .*accepted writes after \d+\.\d s; .*back as synchronous standby/m, 'a lost server: failover, and the server rejoined');

  const probes = /^ha:local probes +(\d+) rounds .*at most (\d) writable node per round, (\d+) rounds with two/m.exec(out);
  t.ok(probes && Number(probes[1]) > 100, `both nodes probed throughout (${probes?.[1]} rounds)`);
  t.equal(probes?.[2], '1', 'at most one writable node in any round');
  t.equal(probes?.[3], '0', 'no round with two writable nodes');

  const restore = /^ha:local restore +PITR to the target: (\d+) rows acknowledged before it, (\d+) missing; (\d+) sent after it, (\d+) present/m.exec(out);
  t.ok(restore && Number(restore[1]) > 0 && Number(restore[3]) > 0, 'the restore target had rows on both sides of it');
  t.equal(restore?.[2], '0', 'every row acknowledged before the target is in the restored copy');
  t.equal(restore?.[4], '0', 'no row sent after the target is');
  t.match(out, /^ha:local metrics +bf-ha-metrics\.sh output for the alerts: yes$/m, 'the figures the HA alerts read are produced');

  t.match(out, /cleanup: done/, 'and it cleaned up');
  const leftovers = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => /^bfha-/.test(l));
  t.same(leftovers, [], 'no namespace left behind');
});
