// deploy/6-node: the connection budget of a topology is judged by the engine's own
// formula and a topology that breaks it is refused with the numbers, and the files
// beside it agree with it. (The six-host proof on network namespaces, which needs
// root, is test/deploy-proof.test.ts.)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { connectionBudget, loadConfig } from '../src/config.js';
import { ROOT } from '../src/paths.js';
import { TOOLS_DIST_DIR } from '../tools/lib/paths.js';
import { checkDeploy } from '../tools/ops/deploy-check.js';
import { DEFAULT_TOPOLOGY, DEPLOY_DIR, judgeBudget, loadTopology, topologyEnv } from '../tools/ops/topology.js';

const EX_CONFIG = 78;

/** A copy of topology.json, changed by `edit`, in a fresh directory (no files beside it). */
function topologyWith(edit: (t: any) => void): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'bf-topology-'));
  const raw = JSON.parse(readFileSync(DEFAULT_TOPOLOGY, 'utf8'));
  edit(raw);
  const file = path.join(dir, 'topology.json');
  writeFileSync(file, JSON.stringify(raw));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return file;
}

function deployCheck(...args: string[]) {
  return spawnSync(process.execPath, [path.join(TOOLS_DIST_DIR, 'ops', 'deploy-check.js'), ...args], { encoding: 'utf8', cwd: ROOT });
}

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

t.test('a rendered env file with a placeholder left, or shards out of order, is refused', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'bf-env-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const template = readFileSync(path.join(DEPLOY_DIR, 'engine.env.example'), 'utf8');
  const filled = template.replace(/CHANGE_ME_[A-Z_]+/g, (m) => (m.endsWith('URL') ? 'http://10.231.0.11:8090' : m === 'CHANGE_ME_ADMIN_EMAIL' ? 'ops@example.com' : 'secret123456'));
  const write = (name: string, text: string) => { writeFileSync(path.join(dir, name), text); return path.join(dir, name); };
  t.equal(checkDeploy(DEFAULT_TOPOLOGY, write('ok.env', filled)).refused, false, 'fully rendered: accepted');
  const hole = checkDeploy(DEFAULT_TOPOLOGY, write('hole.env', filled.replace('ADMIN_PASSWORD=secret123456', 'ADMIN_PASSWORD=CHANGE_ME_ADMIN_PASSWORD')));
  t.ok(hole.findings.some((f) => f.level === 'fail' && /still in ADMIN_PASSWORD/.test(f.what)));
  const swapped = filled.replace(/10\.231\.0\.21(:5432)/, 'SWAP$1').replace(/10\.231\.0\.22(:5432)/, '10.231.0.21$1').replace('SWAP', '10.231.0.22');
  const order = checkDeploy(DEFAULT_TOPOLOGY, write('order.env', swapped));
  t.ok(order.findings.some((f) => f.level === 'fail' && /PG_SHARDS lists .* topology order is/.test(f.what)), 'shards in another order: refused');
  const noDeadline = checkDeploy(DEFAULT_TOPOLOGY, write('nodeadline.env', filled.replace(/\?query_timeout=6000/g, '')));
  t.ok(noDeadline.findings.some((f) => f.level === 'fail' && /query_timeout/.test(f.what)), 'no client-side query deadline: refused');
});
