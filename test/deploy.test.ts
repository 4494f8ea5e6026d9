// deploy/6-node: the connection budget of a topology is judged by the engine's own
// formula and a topology that breaks it is refused with the numbers, and the files
// beside it agree with it; with the HA layer's placement every shard's PG_SHARDS URL
// names its two hosts, primary first, on its own port. (The six-host proof on network
// namespaces, which needs root, is test/deploy-proof.test.ts.)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { connectionBudget, loadConfig } from '../src/config.js';
import { ROOT } from '../src/paths.js';
import { TOOLS_DIST_DIR } from '../tools/lib/paths.js';
import { checkDeploy } from '../tools/ops/deploy-check.js';
import { DEFAULT_TOPOLOGY, DEPLOY_DIR, HA_CONNECTIONS, haTotal, judgeBudget, loadTopology, topologyEnv } from '../tools/ops/topology.js';

const EX_CONFIG = 78;

const PLACEMENT = path.join(DEPLOY_DIR, 'ha', 'placement.json');

/**
 * A copy of topology.json, changed by `edit`, in a fresh directory (no files beside it
 * but the shipped placement, named by its absolute path).
 */
function topologyWith(edit: (t: any) => void): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'bf-topology-'));
  const raw = JSON.parse(readFileSync(DEFAULT_TOPOLOGY, 'utf8'));
  raw.postgres.placement = PLACEMENT;
  edit(raw);
  const file = path.join(dir, 'topology.json');
  writeFileSync(file, JSON.stringify(raw));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return file;
}

function deployCheck(...args: string[]) {
  return spawnSync(process.execPath, [path.join(TOOLS_DIST_DIR, 'ops', 'deploy-check.js'), ...args], { encoding: 'utf8', cwd: ROOT });
}

// Releases run through the /opt/bf-engine symlink: a CLI started by a path with a
// symlink in it must still know it is the entry point (node resolves symlinks for a
// module's URL, not for argv[1]), rather than exit 0 having done nothing.
t.test('an operator tool started through a symlinked release path runs', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'bf-link-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const link = path.join(dir, 'bf-engine');
  symlinkSync(path.dirname(path.dirname(TOOLS_DIST_DIR)), link);
  const r = spawnSync(process.execPath, [path.join(link, 'dist', 'tools', 'ops', 'deploy-check.js'), DEFAULT_TOPOLOGY], { encoding: 'utf8', cwd: dir });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^deploy:check: OK$/m, 'it checked the topology');
});

t.test('the shipped topology fits the budget, and every file beside it agrees with it', async (t) => {
  const report = checkDeploy(DEFAULT_TOPOLOGY);
  const notOk = report.findings.filter((f) => f.level === 'fail' || f.level === 'skip');
  t.same(notOk, [], 'no check failed or was skipped');
  t.equal(report.refused, false);
  t.equal(report.verdict?.budget.perDatabase, 3 * 8 * 8 + 3 * 4 + 10, '3 app servers x 8 workers x pool 8 + 3 cron x 4 + 10 reserved');
  t.equal(report.verdict?.budget.max, 250);
  t.equal(deployCheck().status, 0, 'npm run deploy:check exits 0');
});

t.test('the budget is the engine\'s formula, not a copy of it', async (t) => {
  const topo = loadTopology(DEFAULT_TOPOLOGY);
  for (const [workers, pool] of [[1, 1], [8, 8], [16, 5], [4, 20]] as const) {
    const env = { ...topologyEnv(topo), WORKERS: String(workers), PG_POOL_SIZE: String(pool) };
    t.same(judgeBudget(env).budget, connectionBudget(loadConfig(env)), `WORKERS=${workers} PG_POOL_SIZE=${pool}`);
  }
});

t.test('a topology whose fleet would exhaust a shard is refused with the numbers', async (t) => {
  const file = topologyWith((x) => { x.engine.pg_pool_size = 12; });
  const report = checkDeploy(file);
  t.equal(report.refused, true);
  t.equal(report.verdict?.budget.perDatabase, 310);
  const res = deployCheck(file);
  t.equal(res.status, EX_CONFIG, 'exit 78, like the engine itself');
  t.match(res.stdout, /REFUSED: connection budget exceeded: APP_SERVERS\(3\) x WORKERS\(8\) x PG_POOL_SIZE\(12: read 3 \+ write 6 \+ payment 3\) \+ APP_SERVERS\(3\) x CRON_POOL_SIZE\(4\) \+ PG_RESERVED_CONNECTIONS\(10\) = 310 > PG_MAX_CONNECTIONS\(250\)/);
  t.match(res.stdout, /PG_POOL_SIZE <= 9 at WORKERS=8/, 'and says what would fit');
});

t.test('adding a fourth app server is refused until the pools shrink', async (t) => {
  const add = (pool: number) => topologyWith((x) => {
    x.engine.pg_pool_size = pool;
    x.hosts.push({ name: 'app4', role: 'app', address: '10.231.0.14', redis_index: 3 });
  });
  const eight = checkDeploy(add(8));
  t.equal(eight.verdict?.budget.perDatabase, 4 * 8 * 8 + 4 * 4 + 10);
  t.equal(eight.refused, true, '4 x 8 x 8 + 16 + 10 = 282 > 250');
  t.equal(deployCheck(add(8)).status, EX_CONFIG);
  const seven = checkDeploy(add(7));
  t.equal(seven.verdict?.ok, true, '4 x 8 x 7 + 16 + 10 = 250 fits');
  t.equal(seven.refused, false);
});

t.test('a malformed topology is refused, naming what is wrong', async (t) => {
  const dupShard = checkDeploy(topologyWith((x) => { x.hosts.find((h: any) => h.name === 'db3').shard = 1; }));
  t.equal(dupShard.refused, true);
  t.match(dupShard.findings[0]!.what, /shard values must be 0\.\.2, each once/);
  const badWorkers = deployCheck(topologyWith((x) => { x.engine.workers_per_app_server = 500; }));
  t.equal(badWorkers.status, EX_CONFIG);
  t.match(badWorkers.stdout, /WORKERS=500 is invalid/, 'the engine\'s own validation names the variable');
});

const tmp = mkdtempSync(path.join(tmpdir(), 'bf-env-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
const write = (name: string, text: string) => { writeFileSync(path.join(tmp, name), text); return path.join(tmp, name); };
const template = readFileSync(path.join(DEPLOY_DIR, 'engine.env.example'), 'utf8');
const fill = (text: string) => text.replace(/CHANGE_ME_[A-Z_]+/g, (m) => (m.endsWith('URL') ? 'http://10.231.0.11:8090' : m === 'CHANGE_ME_ADMIN_EMAIL' ? 'ops@example.com' : 'secret123456'));
const filled = fill(template);
const shardsLine = /^PG_SHARDS=.*$/m;
/** The template's commented alternative: one host per shard (no HA layer). */
const singleHost = fill(template.replace(shardsLine, '').replace(/^#(PG_SHARDS=.*)$/m, '$1'));
const pgShards = (env: string) => shardsLine.exec(env)![0];
/** The filled env with its PG_SHARDS line changed by `edit`. */
const withShards = (edit: (line: string) => string) => filled.replace(shardsLine, (line) => edit(line));
const failures = (r: ReturnType<typeof checkDeploy>) => r.findings.filter((f) => f.level === 'fail').map((f) => f.what);

t.test('a rendered env file with a placeholder left, or no query deadline, is refused', async (t) => {
  t.equal(checkDeploy(DEFAULT_TOPOLOGY, write('ok.env', filled)).refused, false, 'fully rendered: accepted');
  const hole = checkDeploy(DEFAULT_TOPOLOGY, write('hole.env', filled.replace('ADMIN_PASSWORD=secret123456', 'ADMIN_PASSWORD=CHANGE_ME_ADMIN_PASSWORD')));
  t.ok(hole.findings.some((f) => f.level === 'fail' && /still in ADMIN_PASSWORD/.test(f.what)));
  const noDeadline = checkDeploy(DEFAULT_TOPOLOGY, write('nodeadline.env', filled.replace(/\?query_timeout=6000&/g, '?')));
  t.ok(noDeadline.findings.some((f) => f.level === 'fail' && /query_timeout/.test(f.what)), 'no client-side query deadline: refused');
});

t.test('the shipped topology takes the PG_SHARDS line ha/render.mjs writes', async (t) => {
  const secrets = write('secrets.env', ['PG_PASSWORD', 'PG_REPLICATION_PASSWORD', 'PG_REWIND_PASSWORD', 'PATRONI_API_PASSWORD', 'PGBACKREST_CIPHER_PASS']
    .map((k) => `${k}=secret123456`).join('\n'));
  const out = path.join(tmp, 'ha');
  const r = spawnSync(process.execPath, [path.join(DEPLOY_DIR, 'ha', 'render.mjs'), '--out', out, '--secrets', secrets], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  const rendered = readFileSync(path.join(out, 'engine.env.PG_SHARDS'), 'utf8').trim();
  t.equal(rendered, pgShards(filled), 'render.mjs and engine.env.example say the same');
  const report = checkDeploy(DEFAULT_TOPOLOGY, write('rendered.env', filled.replace(shardsLine, () => rendered)));
  t.same(failures(report), [], 'accepted');
  t.ok(report.findings.some((f) => f.level === 'ok' && /PG_SHARDS names each shard's two hosts in ha\/placement\.json order .*shard 0 10\.231\.0\.21:5432,10\.231\.0\.22:5432; shard 1 10\.231\.0\.22:5433,10\.231\.0\.23:5433; shard 2 10\.231\.0\.23:5434,10\.231\.0\.21:5434/.test(f.what)));
});

t.test('against the HA placement, a PG_SHARDS that does not name each shard\'s two hosts as placed is refused, naming the shard', async (t) => {
  const refused = (name: string, env: string) => {
    const report = checkDeploy(DEFAULT_TOPOLOGY, write(name, env));
    t.equal(report.refused, true, `${name}: refused`);
    return failures(report).filter((f) => /PG_SHARDS/.test(f)).join('\n');
  };
  const single = refused('single.env', singleHost);
  t.match(single, 'PG_SHARDS shard 0 is engine@10.231.0.21:5432/engine, expected engine@10.231.0.21:5432,10.231.0.22:5432/engine (db1 primary, db2 standby, port 5432): one host only; a shard with a standby names both');
  t.match(single, 'PG_SHARDS shard 2 is engine@10.231.0.23:5432/engine, expected engine@10.231.0.23:5434,10.231.0.21:5434/engine (db3 primary, db1 standby, port 5434): one host only');

  const port = refused('port.env', withShards((l) => l.replace('10.231.0.22:5433,10.231.0.23:5433', '10.231.0.22:5432,10.231.0.23:5432')));
  t.equal(port, 'env ' + path.join(tmp, 'port.env') + ': PG_SHARDS shard 1 is engine@10.231.0.22:5432,10.231.0.23:5432/engine, expected engine@10.231.0.22:5433,10.231.0.23:5433/engine (db2 primary, db3 standby, port 5433): wrong port; shard 1 listens on 5433', 'only shard 1 is named');

  const swapped = refused('swapped.env', withShards((l) => l.replace('10.231.0.21:5432,10.231.0.22:5432', '10.231.0.22:5432,10.231.0.21:5432')));
  t.match(swapped, 'PG_SHARDS shard 0 is engine@10.231.0.22:5432,10.231.0.21:5432/engine, expected engine@10.231.0.21:5432,10.231.0.22:5432/engine (db1 primary, db2 standby, port 5432): its hosts in the other order; the normal primary comes first');

  const urls = pgShards(filled).replace(/^PG_SHARDS=/, '').split(/,(?=postgres:\/\/)/);
  const reordered = refused('reordered.env', withShards(() => `PG_SHARDS=${[urls[1], urls[0], urls[2]].join(',')}`));
  t.match(reordered, 'PG_SHARDS shard 0 is engine@10.231.0.22:5433,10.231.0.23:5433/engine, expected engine@10.231.0.21:5432,10.231.0.22:5432/engine (db1 primary, db2 standby, port 5432): that is shard 1\'s; the URLs must be in shard order');
  t.match(reordered, 'PG_SHARDS shard 1 is engine@10.231.0.21:5432,10.231.0.22:5432/engine, expected engine@10.231.0.22:5433,10.231.0.23:5433/engine (db2 primary, db3 standby, port 5433): that is shard 0\'s');

  const noTarget = refused('notarget.env', withShards((l) => l.replace(/&target_session_attrs=read-write/g, '')));
  t.match(noTarget, 'PG_SHARDS shard 0 (engine@10.231.0.21:5432,10.231.0.22:5432/engine) has no target_session_attrs=read-write; expected engine@10.231.0.21:5432,10.231.0.22:5432/engine?query_timeout=<ms>&target_session_attrs=read-write');
  t.equal(noTarget.split('\n').length, 3, 'every shard is named');

  const two = refused('two.env', withShards(() => `PG_SHARDS=${urls.slice(0, 2).join(',')}`));
  t.match(two, 'PG_SHARDS names 2 shards, ha/placement.json places 3');

  const exitCode = deployCheck('--env', write('cli.env', withShards((l) => l.replace(/&target_session_attrs=read-write/, ''))));
  t.equal(exitCode.status, EX_CONFIG, 'the CLI exits 78');
  t.match(exitCode.stdout, /FAIL env .*: PG_SHARDS shard 0 \(.*\) has no target_session_attrs=read-write/);
});

t.test('a topology without a placement keeps one host per db on postgres.port', async (t) => {
  const file = topologyWith((x) => { delete x.postgres.placement; x.postgres.hba = path.join(DEPLOY_DIR, 'postgres', 'pg_hba.conf'); });
  const topo = loadTopology(file);
  t.same(topo.shards.map((s) => [s.shard, s.port, s.hosts.map((h) => h.name)]), [[0, 5432, ['db1']], [1, 5432, ['db2']], [2, 5432, ['db3']]]);
  const single = singleHost;
  t.same(failures(checkDeploy(file, write('single-old.env', single))), [], 'the single-host line is accepted');
  t.ok(checkDeploy(file).findings.some((f) => f.level === 'ok' && f.what === 'pg_hba.conf admits 10.231.0.11, 10.231.0.12, 10.231.0.13 over TCP (the app hosts: 10.231.0.11, 10.231.0.12, 10.231.0.13)'),
    'the single-primary pg_hba.conf is judged as before');
  const swapped = single.replace(/10\.231\.0\.21(:5432)/, 'SWAP$1').replace(/10\.231\.0\.22(:5432)/, '10.231.0.21$1').replace('SWAP', '10.231.0.22');
  t.ok(failures(checkDeploy(file, write('order-old.env', swapped))).some((f) => /PG_SHARDS lists .* topology order is/.test(f)), 'shards in another order: refused');
  t.ok(failures(checkDeploy(file, write('ha-old.env', filled))).some((f) => /PG_SHARDS lists .* topology order is/.test(f)), 'two hosts per shard: refused');
});

t.test('a placement that does not fit the topology is refused, naming what is wrong', async (t) => {
  const placed = (edit: (p: any) => void) => {
    const raw = JSON.parse(readFileSync(PLACEMENT, 'utf8'));
    edit(raw);
    const file = write(`placement-${Math.random().toString(36).slice(2)}.json`, JSON.stringify(raw));
    return checkDeploy(topologyWith((x) => { x.postgres.placement = file; }));
  };
  const cases: [string, (p: any) => void, RegExp][] = [
    ['one host', (p) => { p.shards[1].nodes = ['db2']; }, /placement shards\[1\]\.nodes must name two distinct db hosts, primary first \(got \["db2"\]\)/],
    ['the same host twice', (p) => { p.shards[1].nodes = ['db2', 'db2']; }, /shards\[1\]\.nodes must name two distinct db hosts/],
    ['an app host', (p) => { p.shards[2].nodes[1] = 'app1'; }, /placement shards\[2\]\.nodes: "app1" is not a db host of the topology \(db1, db2, db3\)/],
    ['two shards on one port', (p) => { p.shards[2].pg_port = 5433; }, /every shard needs a port of its own \(got 5432, 5433, 5433\)/],
    ['a shard twice', (p) => { p.shards[2].shard = 1; }, /the placement's shard values must be 0\.\.2, each once/],
    ['a shard missing', (p) => { p.shards.pop(); }, /has 2 shards, the topology 3 db hosts/],
    ['another primary', (p) => { p.shards[0].nodes = ['db2', 'db1']; }, /placement shard 0: its first node \(the normal primary\) is db2, but the topology gives shard 0 to db1/],
    ['postgres.port not shard 0\'s', (p) => { p.shards[0].pg_port = 6432; }, /postgres\.port is 5432, but shard 0's port in the placement is 6432/],
  ];
  for (const [what, edit, message] of cases) {
    const report = placed(edit);
    t.equal(report.refused, true, `${what}: refused`);
    t.match(report.findings[0]!.what, message, what);
  }
  const missing = checkDeploy(topologyWith((x) => { x.postgres.placement = path.join(tmp, 'no-such-placement.json'); }));
  t.match(missing.findings[0]!.what, /REFUSED: cannot read placement .*no-such-placement\.json/);
});

t.test('the HA pg_hba.conf lets the app hosts (and the db hosts, for the restore drill) in to engine and the db hosts for replication, nobody else', async (t) => {
  const hba = readFileSync(path.join(DEPLOY_DIR, 'ha', 'postgres', 'pg_hba.conf'), 'utf8');
  const judged = (name: string, text: string) => failures(checkDeploy(topologyWith((x) => { x.postgres.hba = write(name, text); }))).join('\n');
  t.equal(judged('hba-ok.conf', hba), '', 'the shipped file');
  t.match(judged('hba-app4.conf', hba.replace(/^(host\s+engine\s+engine\s+)10\.231\.0\.13\/32/m, '$110.231.0.14/32')),
    'pg_hba.conf admits 10.231.0.11, 10.231.0.12, 10.231.0.14, 10.231.0.21, 10.231.0.22, 10.231.0.23 to engine (the app hosts 10.231.0.11, 10.231.0.12, 10.231.0.13; the db hosts for the restore drill)');
  t.match(judged('hba-nodrill.conf', hba.replace(/^host\s+engine\s+engine\s+10\.231\.0\.23\/32.*$/m, '')),
    'pg_hba.conf admits 10.231.0.11, 10.231.0.12, 10.231.0.13, 10.231.0.21, 10.231.0.22 to engine', 'a db host that could not run the restore drill');
  t.match(judged('hba-repl.conf', hba.replace(/^host\s+replication\s+replicator\s+10\.231\.0\.23\/32.*$/m, '')),
    'pg_hba.conf admits 10.231.0.21, 10.231.0.22 for replication (the db hosts: 10.231.0.21, 10.231.0.22, 10.231.0.23)');
  t.match(judged('hba-stray.conf', hba.replace(/^(# Everything else)/m, 'host postgres rewind 10.231.0.99/32 scram-sha-256\n$1')),
    'pg_hba.conf admits nobody else over TCP; also rewind to postgres from 10.231.0.99');
});

t.test('the HA layer\'s connections are the ones ha/README.md counts, and must fit the reserves', async (t) => {
  const readme = readFileSync(path.join(DEPLOY_DIR, 'ha', 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### 9. Connection budget'), readme.indexOf('## Files'));
  const most = (where: RegExp) => section.split('\n').filter((l) => /^\| /.test(l) && where.test(l.split('|')[3] ?? ''))
    .reduce((n, l) => n + Number(/(\d+)\s*$/.exec(l.split('|')[2]!.trim())![1]), 0);
  t.equal(haTotal('superuser'), most(/superuser-only/), 'superuser-only, as the README sums them');
  t.equal(haTotal('walSenders'), most(/max_wal_senders/), 'WAL senders, as the README counts them');
  t.ok(HA_CONNECTIONS.reserved.some(([who]) => who === 'pg_rewind') && /\*\*pg_rewind\*\*.*: 1 while/.test(section), 'pg_rewind: one of the reserved');
  const report = checkDeploy(DEFAULT_TOPOLOGY);
  t.ok(report.findings.some((f) => f.level === 'ok' && f.what === 'HA layer per instance, superuser-only: Patroni 1 + pgBackRest 2 + bf-ha-metrics.sh 1 + an operator\'s psql 1 = 5 <= superuser_reserved_connections(5) (ha/README.md)'));
  const small = checkDeploy(topologyWith((x) => { x.postgres.superuser_reserved_connections = 3; x.postgres.max_connections_for_fleet = 252; }));
  t.ok(failures(small).includes('HA layer per instance, superuser-only: Patroni 1 + pgBackRest 2 + bf-ha-metrics.sh 1 + an operator\'s psql 1 = 5 <= superuser_reserved_connections(3) (ha/README.md)'),
    'a superuser reserve too small for the HA layer: refused');
});

t.test('deploy:check --env with a file that does not exist fails, naming it', async (t) => {
  const missing = path.join(tmp, 'no-such.env');
  const res = deployCheck('--env', missing);
  t.equal(res.status, 2, 'exit 2 (usage), not 0');
  t.equal(res.stderr, `deploy:check: --env ${missing} not found\n`);
  t.notMatch(res.stdout, /OK/);
  const report = checkDeploy(DEFAULT_TOPOLOGY, missing);
  t.equal(report.refused, true, 'checkDeploy refuses it too');
  t.ok(failures(report).includes(`env ${missing}: ${missing} not found`));
});
