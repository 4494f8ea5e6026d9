#!/usr/bin/env node
// Renders the HA layer's files for every host, the way deploy-local.sh renders the
// engine's: each template's CHANGE_ME_<KEY> tokens are replaced, and a token left
// outside a comment is refused. Inputs: topology.json (hosts, addresses),
// placement.json (which shard runs where, ports, etcd, the backup repository) and a
// secrets file (secrets.env.example filled in). Output: one tree per host under
// --out, laid out as the files go on that host (OUT/db1/etc/patroni/shard0.yml is
// /etc/patroni/shard0.yml on db1), plus OUT/engine.env.PG_SHARDS, the PG_SHARDS line
// of engine.env that follows each shard's primary.
//
// usage: node render.mjs --out DIR --secrets FILE [--topology FILE] [--placement FILE]
//          [--watchdog required|automatic|off] [--fs-root DIR] [--local-conf FILE]
//   --watchdog    Patroni's watchdog mode (default required: README.md "Fencing")
//   --fs-root     (local proofs) every absolute path the files name is moved under
//                 DIR/<host>, so six "hosts" can share one filesystem
//   --local-conf  (local proofs) a PostgreSQL file included after ha.conf
// Plain Node, no dependencies: it runs from a checkout or from the release.
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DEPLOY = path.dirname(HERE);

function args(argv) {
  const a = { topology: path.join(DEPLOY, 'topology.json'), placement: path.join(HERE, 'placement.json'), watchdog: 'required' };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const key = { '--out': 'out', '--secrets': 'secrets', '--topology': 'topology', '--placement': 'placement', '--watchdog': 'watchdog', '--fs-root': 'fsRoot', '--local-conf': 'localConf' }[k];
    if (!key || argv[i + 1] === undefined) die(`unknown or incomplete argument ${k} (see the top of render.mjs)`, 2);
    a[key] = argv[++i];
  }
  if (!a.out || !a.secrets) die('--out and --secrets are required', 2);
  if (!['required', 'automatic', 'off'].includes(a.watchdog)) die('--watchdog must be required, automatic or off', 2);
  return a;
}

function die(msg, code = 1) {
  process.stderr.write(`render: ${msg}\n`);
  process.exit(code);
}

/** KEY=value lines; comments and blank lines ignored. */
function readEnv(file) {
  const vars = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) vars[m[1]] = m[2];
  }
  return vars;
}

/** The hosts of topology.json and the placement, checked against each other. */
function load(a) {
  const topo = JSON.parse(readFileSync(a.topology, 'utf8'));
  const place = JSON.parse(readFileSync(a.placement, 'utf8'));
  const hosts = new Map(topo.hosts.map((h) => [h.name, h]));
  const need = (name, role, where) => {
    const h = hosts.get(name);
    if (!h || h.role !== role) die(`${where}: ${name} is not a ${role} host of ${a.topology}`);
    return h;
  };
  const dbs = topo.hosts.filter((h) => h.role === 'db');
  if (place.shards.length !== dbs.length) die(`placement.json has ${place.shards.length} shards, topology.json ${dbs.length} db hosts`);
  place.shards.forEach((s, i) => {
    if (s.shard !== i) die(`placement.json: shards must be listed in order (found shard ${s.shard} at ${i})`);
    if (s.nodes.length !== 2 || s.nodes[0] === s.nodes[1]) die(`shard ${i}: two distinct nodes expected`);
    s.nodes.forEach((n) => need(n, 'db', `shard ${i}`));
    if (dbs[i].name !== s.nodes[0]) die(`shard ${i}: its first node must be ${dbs[i].name}, the host topology.json gives the shard`);
  });
  const ports = place.shards.map((s) => s.pg_port);
  if (new Set(ports).size !== ports.length) die('placement.json: every shard needs a port of its own (two shards share a host)');
  place.etcd.members.forEach((n) => need(n, 'db', 'etcd'));
  if (place.etcd.members.length % 2 !== 1) die('etcd needs an odd number of members');
  need(place.backup.repo_host, 'app', 'backup.repo_host');
  return { topo, place, hosts, dbs };
}

/** Replaces CHANGE_ME_<KEY> tokens; a token left on a line that is not a comment is refused. */
function fill(text, values, what) {
  const out = text.replace(/CHANGE_ME_([A-Z][A-Z0-9_]*)/g, (tok, k) => (k in values ? String(values[k]) : tok));
  const left = out.split('\n').filter((l) => !/^\s*#/.test(l) && l.includes('CHANGE_ME_'));
  if (left.length) die(`${what}: CHANGE_ME_ tokens left: ${left.slice(0, 3).join(' | ')}`);
  return out;
}

// Absolute paths the HA files name; --fs-root moves them under DIR/<host>.
const MAPPED = ['/etc/patroni', '/etc/pgbackrest', '/var/lib/postgresql', '/var/run/postgresql', '/var/lib/etcd',
  '/var/lib/pgbackrest', '/var/spool/pgbackrest', '/var/log/pgbackrest', '/tmp/pgbackrest', '/usr/local/lib/bf-ha',
  '/var/lib/prometheus/node-exporter'];

function relocate(text, root) {
  if (!root) return text;
  let out = text;
  for (const p of MAPPED) out = out.replace(new RegExp(`(^|[^\\w/.-])${p.replace(/[/.]/g, '\\$&')}(?=[/\\s'"]|$)`, 'gm'), `$1${root}${p}`);
  return out;
}

function main() {
  const a = args(process.argv.slice(2));
  const { topo, place, hosts } = load(a);
  const secrets = readEnv(a.secrets);
  for (const k of ['PG_PASSWORD', 'PG_REPLICATION_PASSWORD', 'PG_REWIND_PASSWORD', 'PATRONI_API_PASSWORD', 'PGBACKREST_CIPHER_PASS']) {
    if (!secrets[k] || /CHANGE_ME_/.test(secrets[k])) die(`${a.secrets}: ${k} is not filled in`);
    if (!/^[A-Za-z0-9_.~-]+$/.test(secrets[k])) die(`${a.secrets}: ${k} must be URL- and YAML-safe ([A-Za-z0-9_.~-]), e.g. openssl rand -hex 24`);
  }
  const tmpl = (rel) => readFileSync(path.join(HERE, rel), 'utf8');
  const addr = (name) => hosts.get(name).address;
  const out = path.resolve(a.out);
  const written = [];
  const rootOf = (host) => (a.fsRoot ? path.join(path.resolve(a.fsRoot), host) : '');

  function put(host, file, text, mode = 0o644) {
    const dest = path.join(out, host, file);
    mkdirSync(path.dirname(dest), { recursive: true });
    writeFileSync(dest, relocate(text, rootOf(host)));
    chmodSync(dest, mode);
    written.push(`${host}/${file}`);
  }
  const copy = (host, file, src, mode) => put(host, file, readFileSync(src, 'utf8'), mode);

  const etcdHosts = place.etcd.members.map((n) => `${addr(n)}:${place.etcd.client_port}`).join(',');
  const etcdCluster = place.etcd.members.map((n) => `${n}=http://${addr(n)}:${place.etcd.peer_port}`).join(',');
  const repo = place.backup.repo_host;
  const common = {
    ...Object.fromEntries(Object.entries(secrets)),
    ETCD_HOSTS: etcdHosts, ETCD_INITIAL_CLUSTER: etcdCluster, ETCD_CLUSTER_TOKEN: place.etcd.cluster_token,
    ETCD_CLIENT_PORT: place.etcd.client_port, ETCD_PEER_PORT: place.etcd.peer_port, ETCD_METRICS_PORT: place.etcd.metrics_port,
    REPO_HOST: repo, REPO_ADDRESS: addr(repo), PGBACKREST_TLS_PORT: place.backup.tls_port, RETENTION_FULL: place.backup.retention_full,
  };

  // ---- db hosts: Patroni per shard, etcd, pgBackRest, units --------------------------
  for (const db of topo.hosts.filter((h) => h.role === 'db')) {
    const mine = place.shards.filter((s) => s.nodes.includes(db.name));
    const base = { ...common, HOST: db.name, ADDRESS: db.address };
    mine.forEach((s, slot) => {
      const v = { ...base, SHARD: s.shard, PG_PORT: s.pg_port, REST_PORT: s.rest_port,
        WATCHDOG_MODE: a.watchdog, WATCHDOG_DEVICE: `/dev/watchdog${slot}` };
      put(db.name, `etc/patroni/shard${s.shard}.yml`, fill(tmpl('patroni/patroni.yml'), v, `${db.name} shard${s.shard}.yml`), 0o600);
    });
    let base_conf = tmpl('postgres/bf-postgresql.conf');
    if (a.localConf) {
      copy(db.name, 'etc/patroni/local.conf', a.localConf);
      base_conf += "include '/etc/patroni/local.conf'       # a local proof's sizes (not for production)\n";
    }
    put(db.name, 'etc/patroni/bf-postgresql.conf', base_conf);
    copy(db.name, 'etc/patroni/bf-shard.conf', path.join(DEPLOY, 'postgres', 'postgresql.conf'));
    copy(db.name, 'etc/patroni/ha.conf', path.join(HERE, 'postgres', 'ha.conf'));
    copy(db.name, 'etc/patroni/pg_hba.conf', path.join(HERE, 'postgres', 'pg_hba.conf'), 0o600);
    copy(db.name, 'etc/patroni/provision.sql', path.join(DEPLOY, 'postgres', 'provision.sql'));
    copy(db.name, 'etc/patroni/post-bootstrap.sh', path.join(HERE, 'patroni', 'post-bootstrap.sh'), 0o755);
    put(db.name, 'etc/patroni/bootstrap.env', `# read by post-bootstrap.sh: the engine role's password (engine.env PG_SHARDS)\nENGINE_PG_PASSWORD=${secrets.PG_PASSWORD}\n`, 0o600);
    if (place.etcd.members.includes(db.name)) put(db.name, 'etc/default/etcd', fill(tmpl('etcd/etcd.env'), base, `${db.name} etcd`));
    let pgbr = fill(tmpl('pgbackrest/pgbackrest-db.conf'), base, `${db.name} pgbackrest.conf`);
    for (const s of mine) pgbr += fill(tmpl('pgbackrest/pgbackrest-db-stanza.conf'), { ...base, SHARD: s.shard, PG_PORT: s.pg_port }, 'stanza');
    // The repository host may start backups of the shards that run here, and no others
    // (one line: pgBackRest keeps only the last of several lines for one client).
    pgbr = pgbr.replace(/^(tls-server-key-file=.*)$/m, `$1\ntls-server-auth=${repo}=${mine.map((s) => `bf-shard${s.shard}`).join(',')}`);
    put(db.name, 'etc/pgbackrest/pgbackrest.conf', pgbr, 0o640);
    for (const unit of ['bf-patroni@.service', 'bf-pgbackrest-server.service', 'bf-ha-metrics.service', 'bf-ha-metrics.timer']) {
      copy(db.name, `etc/systemd/system/${unit}`, path.join(HERE, 'systemd', unit));
    }
    copy(db.name, 'etc/systemd/system/etcd.service.d/bf-ha.conf', path.join(HERE, 'systemd', 'etcd.service.d-bf-ha.conf'));
    copy(db.name, 'usr/local/lib/bf-ha/bf-ha-metrics.sh', path.join(HERE, 'monitoring', 'bf-ha-metrics.sh'), 0o755);
    // The restore drill runs on a db host (one that does not hold the shard it restores).
    copy(db.name, 'usr/local/lib/bf-ha/restore-drill.sh', path.join(HERE, 'pgbackrest', 'restore-drill.sh'), 0o755);
  }

  // ---- the repository host -------------------------------------------------------
  {
    const v = { ...common, HOST: repo, ADDRESS: addr(repo),
      TLS_SERVER_AUTH: topo.hosts.filter((h) => h.role === 'db').map((h) => `tls-server-auth=${h.name}=*`).join('\n') };
    let conf = fill(tmpl('pgbackrest/pgbackrest-repo.conf'), v, `${repo} pgbackrest.conf`);
    for (const s of place.shards) {
      const pgHosts = s.nodes.map((n, i) => [
        `pg${i + 1}-host=${addr(n)}`, `pg${i + 1}-host-type=tls`, `pg${i + 1}-host-port=${place.backup.tls_port}`,
        `pg${i + 1}-host-ca-file=/etc/pgbackrest/tls/ca.crt`, `pg${i + 1}-host-cert-file=/etc/pgbackrest/tls/${repo}.crt`,
        `pg${i + 1}-host-key-file=/etc/pgbackrest/tls/${repo}.key`,
        // Paths on the db host, not here (so --fs-root moves them under that host's root).
        relocate(`pg${i + 1}-path=/var/lib/postgresql/15/shard${s.shard}`, rootOf(n)), `pg${i + 1}-port=${s.pg_port}`,
        relocate(`pg${i + 1}-socket-path=/var/run/postgresql`, rootOf(n)),
      ].join('\n')).join('\n');
      conf += fill(tmpl('pgbackrest/pgbackrest-repo-stanza.conf'), { SHARD: s.shard, PG_HOSTS: `# ${s.nodes.join(', ')}\n${pgHosts}` }, 'repo stanza');
    }
    put(repo, 'etc/pgbackrest/pgbackrest.conf', conf, 0o640);
    for (const unit of ['bf-pgbackrest-server.service', 'bf-pgbackrest-backup@.service', 'bf-pgbackrest-backup-full.timer',
      'bf-pgbackrest-backup-incr.timer', 'bf-ha-metrics.service', 'bf-ha-metrics.timer']) {
      copy(repo, `etc/systemd/system/${unit}`, path.join(HERE, 'systemd', unit));
    }
    // On the repository host both run as the repository's owner.
    const asRepoOwner = '[Service]\nUser=pgbackrest\nGroup=pgbackrest\n';
    put(repo, 'etc/systemd/system/bf-pgbackrest-server.service.d/repo-host.conf', `# the repository host: the repository's owner\n${asRepoOwner}`);
    put(repo, 'etc/systemd/system/bf-ha-metrics.service.d/repo-host.conf', `# the repository host: pgbackrest info as the repository's owner\n${asRepoOwner}`);
    copy(repo, 'usr/local/lib/bf-ha/backup-all.sh', path.join(HERE, 'pgbackrest', 'backup-all.sh'), 0o755);
    copy(repo, 'usr/local/lib/bf-ha/bf-ha-metrics.sh', path.join(HERE, 'monitoring', 'bf-ha-metrics.sh'), 0o755);
  }

  // ---- the engine: PG_SHARDS naming both hosts of each shard ---------------------------
  const example = readFileSync(path.join(DEPLOY, 'engine.env.example'), 'utf8');
  const qt = /^PG_SHARDS=.*?query_timeout=(\d+)/m.exec(example)?.[1] ?? '6000';
  const user = topo.postgres.user, db = topo.postgres.database;
  const urls = place.shards.map((s) => `postgres://${user}:${secrets.PG_PASSWORD}@${s.nodes.map((n) => `${addr(n)}:${s.pg_port}`).join(',')}/${db}?query_timeout=${qt}&target_session_attrs=read-write`);
  mkdirSync(out, { recursive: true });
  writeFileSync(path.join(out, 'engine.env.PG_SHARDS'), `PG_SHARDS=${urls.join(',')}\n`, { mode: 0o600 });
  written.push('engine.env.PG_SHARDS');
  process.stdout.write(`render: ${written.length} files under ${out}\n`);
}

main();
