// Following a shard's primary when the shard is a primary with standbys and fails over
// (Patroni, pg_auto_failover). node-postgres connects to one host, so the shard's pools
// get a Client that connects to the host last known writable and, for a shard of
// several hosts, checks on connect that it accepts writes. When a connection fails in
// a way a failover explains, the shard re-resolves: every host is probed at once
// (bounded by a timeout per host), at most once per interval per process, and the
// pools are told when the primary moved so they drop what points at the old one.
import pg from 'pg';
import { log } from '../log.js';
import { hostName, parseShardUrl, type HostPort, type ShardTarget } from './hosts.js';

export type HostState = 'writable' | 'read-only' | 'standby' | 'unreachable';

export interface PrimaryOptions {
  /** A probe's connect and its query, per host. */
  probeTimeoutMs: number;
  /** The least time between two probes of the shard's hosts (per process). */
  probeEveryMs: number;
  appName: string;
}

/** A connection made to a host that does not take writes (a standby, or read-only). */
export class NotWritable extends Error {
  readonly code = 'ENOTWRITABLE';
  constructor(readonly shard: number, readonly at: HostPort, readonly state: HostState) {
    super(`shard ${shard}: ${hostName(at)} does not accept writes (${state})`);
  }
}

// One round trip: a standby is read-only too, but saying which helps the operator.
const CHECK = "SELECT pg_is_in_recovery() AS standby, current_setting('transaction_read_only') = 'on' AS read_only";

async function writability(client: pg.Client, timeoutMs?: number): Promise<HostState> {
  const res = await client.query<{ standby: boolean; read_only: boolean }>({ text: CHECK, query_timeout: timeoutMs } as pg.QueryConfig);
  const row = res.rows[0];
  return row?.standby ? 'standby' : row?.read_only ? 'read-only' : 'writable';
}

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** One host, on a connection of its own that never outlives timeoutMs (the URL's own query_timeout does not apply). */
export async function probeHost(url: string, timeoutMs: number, appName: string): Promise<{ state: HostState; error?: string }> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs, application_name: appName });
  client.on('error', () => undefined); // a probe's socket dying late must not crash the process
  try {
    await client.connect();
    const state = await writability(client, timeoutMs);
    client.end().catch(() => undefined);
    return { state };
  } catch (err) {
    // A polite goodbye to a partitioned host would wait for TCP to give up: cut the socket
    // (as pg-pool does on a connect timeout).
    client.connection.stream.destroy();
    return { state: 'unreachable', error: messageOf(err) };
  }
}

export interface Probe { at: string; hosts: { host: string; state: HostState; error?: string }[] }

/** Which host of one shard takes writes, as this process last found it. Shared by the shard's lanes. */
export class Primary {
  readonly target: ShardTarget;
  private current: HostPort;
  private probing: Promise<void> | null = null;
  private probedAt = -Infinity;
  private later: NodeJS.Timeout | null = null;
  private orphaned = false;
  private readonly listeners: ((from: HostPort, to: HostPort) => void)[] = [];
  /** The last probe of every host, for /readyz. */
  lastProbe: Probe | null = null;

  constructor(readonly shard: number, url: string, private readonly opts: PrimaryOptions) {
    this.target = parseShardUrl(url);
    // Until a probe says otherwise, the first host listed (libpq tries them in order too).
    this.current = this.target.hosts[0]!;
  }

  /** Whether connections are checked and the primary followed (several hosts, or target_session_attrs). */
  get follows(): boolean { return this.target.follows; }

  /** The host new connections go to: the one last known writable. */
  get host(): HostPort { return this.current; }

  onChange(fn: (from: HostPort, to: HostPort) => void): void { this.listeners.push(fn); }

  /** A client made for `at` points at a host that is no longer the primary: its writes must stop. */
  isStale(at: HostPort | undefined): boolean { return at !== undefined && at !== this.current; }

  /**
   * A connection failed in a way a failover explains (refused, reset, shut down, read
   * only): probe the hosts in the background, now, or once the interval since the last
   * probe has passed. Never more than one probe in flight.
   */
  suspect(): void {
    if (!this.follows || this.probing || this.later) return;
    const wait = this.probedAt + this.opts.probeEveryMs - Date.now();
    if (wait <= 0) {
      void this.resolve();
      return;
    }
    this.later = setTimeout(() => {
      this.later = null;
      void this.resolve();
    }, wait);
    this.later.unref();
  }

  /**
   * A new connection found `from` not writable: whether the primary is known to be
   * elsewhere now. Joins a probe in flight, or probes unless one ran within the interval;
   * so it waits at most one probe (probeTimeoutMs).
   */
  async movedFrom(from: HostPort): Promise<boolean> {
    if (this.current === from && !this.probing && Date.now() - this.probedAt >= this.opts.probeEveryMs) void this.resolve();
    if (this.probing) await this.probing;
    return this.current !== from;
  }

  private resolve(): Promise<void> {
    this.probing ??= this.probeAll().finally(() => { this.probing = null; });
    return this.probing;
  }

  private async probeAll(): Promise<void> {
    this.probedAt = Date.now();
    const { hosts } = this.target;
    const found = await Promise.all(hosts.map((h) => probeHost(this.target.urlFor(h), this.opts.probeTimeoutMs, `${this.opts.appName}-probe`)));
    this.lastProbe = { at: new Date().toISOString(), hosts: hosts.map((h, i) => ({ host: hostName(h), ...found[i]! })) };
    const writable = hosts.filter((_, i) => found[i]!.state === 'writable');
    if (writable.length > 1) log.error('several hosts of a shard accept writes', { shard: this.shard, hosts: writable.map(hostName), following: hostName(this.current) });
    // Stay on the current host while it takes writes: two writable hosts (a split brain
    // the failover tool has not fenced yet) must not make the shard flap between them.
    const next = writable.includes(this.current) ? this.current : writable[0];
    // Once per gap: probes repeat every interval while the failover tool promotes a standby.
    if (!next && !this.orphaned) log.warn('no host of a shard accepts writes', { shard: this.shard, hosts: this.lastProbe.hosts });
    this.orphaned = !next;
    if (!next || next === this.current) return;
    const from = this.current;
    this.current = next;
    log.warn('shard primary changed', { shard: this.shard, from: hostName(from), to: hostName(next) });
    for (const fn of this.listeners) fn(from, next);
  }

  close(): void {
    if (this.later) clearTimeout(this.later);
    this.later = null;
  }

  /**
   * The pg Client class for this shard's pools: it connects to the host last known
   * writable and, when the shard follows its primary, refuses (NotWritable) a
   * connection that does not take writes, so the pool never hands one out.
   */
  clientClass(): typeof pg.Client {
    if (!this.follows) return pg.Client;
    const primary = this;
    return class FollowingClient extends pg.Client {
      /** The host this client was made for; compared with the primary when it is handed out or back. */
      readonly at: HostPort;

      constructor(config?: string | pg.ClientConfig) {
        const at = primary.host;
        super({ ...(typeof config === 'string' ? {} : config), connectionString: primary.target.urlFor(at) });
        this.at = at;
        // The check runs after pg's connect and before the pool listens for errors: a
        // server going away then fails the check, and must not also kill the process.
        this.on('error', () => undefined);
      }

      override connect(): Promise<void>;
      override connect(callback: (err: Error) => void): void;
      override connect(callback?: (err: Error) => void): Promise<void> | void {
        const done = this.connectWritable();
        if (!callback) return done;
        done.then(() => callback(undefined as unknown as Error), callback);
      }

      private async connectWritable(): Promise<void> {
        await super.connect();
        let state: HostState;
        try {
          state = await writability(this);
        } catch (err) {
          this.end().catch(() => undefined);
          throw err;
        }
        if (state === 'writable') return;
        this.end().catch(() => undefined);
        throw new NotWritable(primary.shard, this.at, state);
      }
    };
  }
}

/** The host a connection was made for, when its shard follows a primary. */
export const hostOf = (client: unknown): HostPort | undefined => (client as { at?: HostPort }).at;

/**
 * One connection to the shard's writable host, for tools and migrations: a URL of one
 * host connects as it always did; a multi-host URL tries the hosts in order.
 */
export async function connectWritable(url: string, config: pg.ClientConfig = {}): Promise<pg.Client> {
  const target = parseShardUrl(url);
  if (!target.follows) {
    const client = new pg.Client({ ...config, connectionString: url });
    await client.connect();
    return client;
  }
  const tried: string[] = [];
  for (const h of target.hosts) {
    const client = new pg.Client({ ...config, connectionString: target.urlFor(h) });
    try {
      await client.connect();
      const state = await writability(client);
      if (state === 'writable') return client;
      tried.push(`${hostName(h)} ${state}`);
    } catch (err) {
      tried.push(`${hostName(h)} ${messageOf(err)}`);
    }
    await client.end().catch(() => undefined);
  }
  throw new Error(`no host of ${target.display} accepts writes (${tried.join('; ')})`);
}
