// One /metrics answer for a whole app server. The workers serve HTTP (uWS), the primary
// holds no socket, so a worker answering /metrics asks the primary over IPC; the primary
// asks every worker and the cron process for their registries (as JSON), adds its own,
// merges them with prom-client's AggregatorRegistry.aggregate (each family by its
// aggregator: sum unless a family says min, max or first) and sends back the text. The
// figures are those of the moment of the scrape.
//
// Counters never go backwards: a process that exits leaves its last counters and
// histograms to a retired sum that every later answer includes (its increments since
// the last scrape are lost, not the whole count), and a process that does not answer
// within the deadline is represented by its last answer.
import cluster, { type Worker } from 'node:cluster';
import client from 'prom-client';
import { EngineError } from '../errors.js';
import { log } from '../log.js';
import { app, perProcess } from './registry.js';

type Family = { name: string; type: string; aggregator: string; values: unknown[] };

/** How long the primary waits for a process's registries. */
const COLLECT_TIMEOUT_MS = 2000;
/** How long a worker waits for the primary's answer (its own deadline plus the merge). */
const SCRAPE_TIMEOUT_MS = 5000;

interface Msg { type?: string; id?: number; metrics?: Family[]; text?: string; error?: string }

/**
 * This process's registries as JSON. Per-process families carry a distinct `worker`
 * label, so merging leaves them apart; gauges are taken as they are (`first`, which also
 * keeps process_start_time_seconds, which prom-client would drop), counters and
 * histograms are summed so a respawned worker's series continue its predecessor's.
 */
export async function localFamilies(): Promise<Family[]> {
  const own = (await app.getMetricsAsJSON()) as unknown as Family[];
  const proc = (await perProcess.getMetricsAsJSON()) as unknown as Family[];
  return [...own, ...proc.map((f) => ({ ...f, aggregator: f.type === 'gauge' ? 'first' : 'sum' }))];
}

export async function render(families: Family[][]): Promise<string> {
  return client.AggregatorRegistry.aggregate(families).metrics();
}

// ---- worker and cron side

/** Answers the primary's requests for this process's registries, then says it can. */
export function answerCollects(): void {
  if (!cluster.isWorker) return;
  process.on('message', (msg: Msg) => {
    if (msg?.type !== 'metrics:collect') return;
    localFamilies()
      .then((metrics) => process.send?.({ type: 'metrics:local', id: msg.id, metrics }))
      .catch((err: unknown) => log.warn('metrics not collected', { err }));
  });
  process.send?.({ type: 'metrics:ready' });
}

// One primary per process tree, one set of scrapes in flight: the state of this process
// as a whole, so module-level like the registries it merges.
let nextScrape = 0;
const scrapes = new Map<number, (msg: Msg) => void>();
let listening = false;

/** The app server's metrics text (a worker asks the primary; a lone process answers for itself). */
export async function fleetText(): Promise<string> {
  if (!cluster.isWorker) return render([await localFamilies()]);
  if (!listening) {
    listening = true;
    process.on('message', (msg: Msg) => { if (msg?.type === 'metrics:fleet'
      && msg.id !== undefined) scrapes.get(msg.id)?.(msg); });
  }
  const id = ++nextScrape;
  const answer = await new Promise<Msg | null>((resolve) => {
    const timer = setTimeout(() => resolve(null), SCRAPE_TIMEOUT_MS);
    scrapes.set(id, (msg) => { clearTimeout(timer); resolve(msg); });
    process.send?.({ type: 'metrics:scrape', id });
  }).finally(() => scrapes.delete(id));
  if (!answer || answer.text === undefined) {
    // A partial answer would read as counters going backwards: refuse instead.
    throw new EngineError('overloaded', `metrics not gathered${answer?.error ? `: ${answer.error}` : ' in time'}`,
      { retryAfterS: 1 });
  }
  return answer.text;
}

// ---- primary side

interface Round { got: Map<number, Family[]>; waiting: Set<number>; done: () => void }

export class Fleet {
  private readonly ready = new Set<number>();
  private readonly last = new Map<number, Family[]>();
  private retired: Promise<Family[]> = Promise.resolve([]);
  private readonly rounds = new Map<number, Round>();
  private seq = 0;

  constructor(private readonly children: () => Iterable<Worker>) {}

  /** Every message of a child passes here; returns whether it was about metrics. */
  handle(w: Worker, msg: Msg): boolean {
    switch (msg?.type) {
      case 'metrics:ready':
        this.ready.add(w.id);
        return true;
      case 'metrics:local': {
        const round = this.rounds.get(msg.id ?? -1);
        if (round && msg.metrics) {
          round.got.set(w.id, msg.metrics);
          round.waiting.delete(w.id);
          if (round.waiting.size === 0) round.done();
        }
        return true;
      }
      case 'metrics:scrape':
        void this.text()
          .then((text) => ({ text }), (err: unknown) => ({ error: err instanceof Error ? err.message : String(err) }))
          .then((answer) => { if (w.isConnected()) w.send({ type: 'metrics:fleet', id: msg.id, ...answer }); })
          // The asker died meanwhile: nobody is waiting for the answer, and the primary must not fall over.
          .catch(() => undefined);
        return true;
      default:
        return false;
    }
  }

  /** A child exited: its counters and histograms stay in every later answer. */
  exited(w: Worker): void {
    this.ready.delete(w.id);
    const last = this.last.get(w.id);
    this.last.delete(w.id);
    for (const round of this.rounds.values()) {
      round.waiting.delete(w.id);
      if (round.waiting.size === 0) round.done();
    }
    if (!last) return;
    const kept = last.filter((f) => f.type === 'counter' || f.type === 'histogram');
    this.retired = this.retired.then(async (sum) =>
      (await client.AggregatorRegistry.aggregate([sum, kept]).getMetricsAsJSON()) as unknown as Family[]);
  }

  /** A round of its own per scrape: a scrape sees everything answered before it was asked. */
  async text(): Promise<string> {
    const got = await this.collect();
    // A process that exited meanwhile is in the retired sum already.
    for (const [id, families] of got) if (this.ready.has(id)) this.last.set(id, families);
    return render([...this.last.values(), await this.retired, await localFamilies()]);
  }

  private collect(): Promise<Map<number, Family[]>> {
    const id = ++this.seq;
    const targets = [...this.children()].filter((w) => this.ready.has(w.id) && w.isConnected());
    return new Promise((resolve) => {
      const round: Round = {
        got: new Map(), waiting: new Set(targets.map((w) => w.id)),
        done: () => { clearTimeout(timer); this.rounds.delete(id); resolve(round.got); },
      };
      const timer = setTimeout(round.done, COLLECT_TIMEOUT_MS);
      this.rounds.set(id, round);
      for (const w of targets) {
        try {
          w.send({ type: 'metrics:collect', id });
        } catch {
          round.waiting.delete(w.id);
        }
      }
      if (round.waiting.size === 0) round.done();
    });
  }
}
