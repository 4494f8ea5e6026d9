// The HA layer's files (deploy/6-node/ha), without root: render.mjs turns the
// templates and placement.json into every host's files, each shard on two different db
// hosts, nothing left to fill in; the PG_SHARDS line it writes is one the engine
// accepts (both hosts of each shard, followed by their primary) within the connection
// budget; the HA alert rules pass promtool and fire on made-up series.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { assertBudget, loadConfig } from '../src/config.js';
import { parseShardUrl, splitShardList } from '../src/shard/hosts.js';
import { ROOT } from '../src/paths.js';

const HA = path.join(ROOT, 'deploy', '6-node', 'ha');
const PROM = path.join(ROOT, 'deploy', '6-node', 'prometheus');
const PROMTOOL = '/usr/bin/promtool';
const placement = JSON.parse(readFileSync(path.join(HA, 'placement.json'), 'utf8'));
const topology = JSON.parse(readFileSync(path.join(ROOT, 'deploy', '6-node', 'topology.json'), 'utf8'));
const addressOf = (name: string) => topology.hosts.find((h: { name: string }) => h.name === name).address as string;

const tmp = mkdtempSync(path.join(os.tmpdir(), 'bf-ha-files-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
const secrets = path.join(tmp, 'secrets.env');
writeFileSync(secrets, ['PG_PASSWORD', 'PG_REPLICATION_PASSWORD', 'PG_REWIND_PASSWORD', 'PATRONI_API_PASSWORD', 'PGBACKREST_CIPHER_PASS']
  .map((k, i) => `${k}=secret${i}abc`).join('\n'));
const render = (...args: string[]) => spawnSync('node', [path.join(HA, 'render.mjs'), ...args], { encoding: 'utf8' });
const out = path.join(tmp, 'out');
const read = (rel: string) => readFileSync(path.join(out, rel), 'utf8');

t.test('render.mjs: every host gets its files, filled in', async (t) => {
  const r = render('--out', out, '--secrets', secrets);
  t.equal(r.status, 0, r.stderr);
  for (const s of placement.shards) {
    t.not(s.nodes[0], s.nodes[1], `shard ${s.shard} on two hosts`);
    for (const host of s.nodes) {
      const yml = read(`${host}/etc/patroni/shard${s.shard}.yml`);
      t.match(yml, new RegExp(`^scope: bf-shard${s.shard}\\b`, 'm'), `${host} shard${s.shard}.yml names its shard`);
      t.match(yml, new RegExp(`^  listen: ${addressOf(host).replace(/\./g, '\\.')}:${s.pg_port}$`, 'm'), `${host} listens on its address, port ${s.pg_port}`);
      t.match(yml, /^    synchronous_mode: true$/m, 'synchronous mode');
      t.match(yml, /^  mode: "required"$/m, 'the watchdog is required by default');
      t.notOk(/CHANGE_ME_/.test(yml.split('\n').filter((l) => !/^\s*#/.test(l)).join('\n')), 'nothing left to fill in');
    }
  }
  // Each db host holds two shards, on different ports, and its etcd member.
  for (const db of ['db1', 'db2', 'db3']) {
    const ymls = readdirSync(path.join(out, db, 'etc/patroni')).filter((f) => /^shard\d\.yml$/.test(f));
    t.equal(ymls.length, 2, `${db} runs two shards' instances (${ymls.join(', ')})`);
    const devices = ymls.map((f) => /device: (\S+)/.exec(read(`${db}/etc/patroni/${f}`))![1]);
    t.not(devices[0], devices[1], `${db}: one watchdog device per instance`);
    t.match(read(`${db}/etc/default/etcd`), new RegExp(`^ETCD_NAME=${db}$`, 'm'));
    const pgbr = read(`${db}/etc/pgbackrest/pgbackrest.conf`);
    t.equal(pgbr.match(/^tls-server-auth=/gm)?.length, 1, `${db}: one tls-server-auth line (pgBackRest keeps only the last of several)`);
    const drill = path.join(out, db, 'usr/local/lib/bf-ha/restore-drill.sh');
    t.equal(readFileSync(drill, 'utf8'), readFileSync(path.join(HA, 'pgbackrest', 'restore-drill.sh'), 'utf8'), `${db}: the restore drill, as written`);
    t.equal(statSync(drill).mode & 0o777, 0o755, `${db}: the restore drill is executable`);
  }
  t.notOk(existsSync(path.join(out, placement.backup.repo_host, 'usr/local/lib/bf-ha/restore-drill.sh')), 'the repository host restores nothing itself');
  const hba = read('db1/etc/patroni/pg_hba.conf');
  for (const db of ['db1', 'db2', 'db3']) {
    t.match(hba, new RegExp(`^host +engine +engine +${addressOf(db).replace(/\./g, '\\.')}/32 +scram-sha-256`, 'm'), `the drill on ${db} may read the live shard as engine`);
  }
  const repo = read(`${placement.backup.repo_host}/etc/pgbackrest/pgbackrest.conf`);
  for (const s of placement.shards) t.match(repo, new RegExp(`^\\[bf-shard${s.shard}\\]$`, 'm'), `the repository knows shard ${s.shard}`);
  t.ok(existsSync(path.join(out, placement.backup.repo_host, 'etc/systemd/system/bf-pgbackrest-backup-full.timer')), 'the backup timers go to the repository host');
});

t.test('render.mjs refuses a secret left unfilled', async (t) => {
  const bad = path.join(tmp, 'bad.env');
  writeFileSync(bad, readFileSync(path.join(HA, 'secrets.env.example'), 'utf8'));
  const r = render('--out', path.join(tmp, 'bad'), '--secrets', bad);
  t.equal(r.status, 1);
  t.match(r.stderr, /PG_PASSWORD is not filled in/);
});

t.test('the PG_SHARDS it writes is one the engine accepts, within the budget', async (t) => {
  const line = read('engine.env.PG_SHARDS').trim();
  const urls = splitShardList(line.replace(/^PG_SHARDS=/, ''));
  t.equal(urls.length, placement.shards.length, 'one URL per shard');
  urls.forEach((u, i) => {
    const s = placement.shards[i];
    const target = parseShardUrl(u);
    t.ok(target.follows, `shard ${i} follows its primary`);
    t.same(target.hosts.map((h) => `${h.host}:${h.port}`), s.nodes.map((n: string) => `${addressOf(n)}:${s.pg_port}`), `shard ${i}: both hosts, placement order`);
  });
  const cfg = loadConfig({ PG_SHARDS: line.replace(/^PG_SHARDS=/, ''), APP_SERVERS: '3', WORKERS: '8', PG_POOL_SIZE: '8', CRON_POOL_SIZE: '4', PG_RESERVED_CONNECTIONS: '10', PG_MAX_CONNECTIONS: '250' });
  t.equal(assertBudget(cfg).perDatabase, 214, 'the fleet still plans 214 of 250 connections per instance');
});

t.test('the HA alert rules pass promtool and fire on made-up series', async (t) => {
  t.ok(existsSync(PROMTOOL), `${PROMTOOL} exists: bash scripts/system-packages.sh promtool installs it`);
  const run = (args: string[]) => spawnSync(PROMTOOL, args, { cwd: PROM, encoding: 'utf8' });
  const check = run(['check', 'rules', 'rules-ha.yml']);
  t.equal(check.status, 0, check.stdout + check.stderr);
  const unit = run(['test', 'rules', 'rules-ha.test.yml']);
  t.equal(unit.status, 0, unit.stdout + unit.stderr);
  const config = run(['check', 'config', 'prometheus.yml']);
  t.equal(config.status, 0, config.stdout + config.stderr);
  t.match(config.stdout, /rules-ha\.yml/, 'prometheus.yml loads the HA rules');
});
