// The HA proof's phases read from what the client saw (answers.jsonl), no database:
// per phase of the marks file, how the affected shard answered, how long until it took
// writes again, and whether the other shards noticed. Pure arithmetic, tested on
// hand-written answers.
//
// Marks file lines (bash appends them as it goes):
//   BEGIN <name> <epoch ms>     END <name> <epoch ms>     SHARD <name> <shard>
// Times: an answer belongs to a phase when it was *sent* in [BEGIN, END]. "Answered
// again": the first 2xx write on the shard sent after the last failed request sent
// in the window, counted from BEGIN to when its answer came. Gaps: between the
// arrivals of 2xx writes (and the window's edges).
import { is2xx, WRITES, type AnswerLine } from './ha-records.js';

export interface Mark { name: string; begin: number; end: number | null; shard: number | null }

export function parseMarks(text: string): Mark[] {
  const marks = new Map<string, Mark>();
  const get = (name: string, lineNo: number) => {
    const m = marks.get(name);
    if (!m) throw new Error(`marks line ${lineNo}: phase ${name} has no BEGIN before it`);
    return m;
  };
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const [what, name, value, ...rest] = line.split(/\s+/);
    if (!name || value === undefined || rest.length || !/^\d+$/.test(value)) throw new Error(`marks line ${i + 1}: expected "BEGIN|END|SHARD <name> <number>", got "${line}"`);
    const n = Number(value);
    if (what === 'BEGIN') marks.set(name, { name, begin: n, end: null, shard: marks.get(name)?.shard ?? null });
    else if (what === 'END') get(name, i + 1).end = n;
    else if (what === 'SHARD') {
      if (!marks.has(name)) marks.set(name, { name, begin: NaN, end: null, shard: n });
      else get(name, i + 1).shard = n;
    } else throw new Error(`marks line ${i + 1}: unknown mark ${what}`);
  });
  for (const m of marks.values()) if (Number.isNaN(m.begin)) throw new Error(`marks: phase ${m.name} has a SHARD but no BEGIN`);
  return [...marks.values()];
}

export interface PhaseStats {
  name: string; shard: number | null; begin_ms: number; end_ms: number; open: boolean;
  requests: number; ok_2xx: number; unavailable_503: number;
  /** 409 idempotency_in_progress: the key's first attempt still runs (e.g. a commit waiting for its standby); retried, not a failure of the engine. */
  in_progress_409: number;
  failed_other: number; refused: number;
  failed_other_shards: number;
  /** ms from BEGIN until the shard answered a write again after its last failure; -1: never; no failure: the longest gap. */
  answered_again_ms: number; failures: number;
  longest_gap_ms: number; longest_gap_ms_by_shard: Record<string, number>;
  retries: number; abandoned: number;
}

/** Engine requests only: the gateway simulator is not a shard. */
const engineOps = (answers: AnswerLine[]) => answers.filter((a) => a.op !== 'pay_gateway');
const failed = (a: AnswerLine) => a.retry === true;

/** The longest stretch in [begin, end] without the arrival of a 2xx write on the shard. */
export function longestGap(answers: AnswerLine[], shard: number, begin: number, end: number): number {
  const arrivals = answers.filter((a) => a.shard === shard && WRITES.has(a.op) && is2xx(a.status))
    .map((a) => a.t + a.ms).filter((at) => at >= begin && at <= end).sort((x, y) => x - y);
  const points = [begin, ...arrivals, end];
  return points.slice(1).reduce((max, p, i) => Math.max(max, p - points[i]!), 0);
}

/** From BEGIN to the answer of the first 2xx write sent after the last failure in the window (-1: none came). */
export function answeredAgain(all: AnswerLine[], inWindow: AnswerLine[], shard: number, begin: number, end: number): { ms: number; failures: number } {
  const fails = inWindow.filter((a) => a.shard === shard && failed(a));
  if (fails.length === 0) return { ms: longestGap(all, shard, begin, end), failures: 0 };
  const lastFail = Math.max(...fails.map((a) => a.t));
  const after = all.filter((a) => a.shard === shard && WRITES.has(a.op) && is2xx(a.status) && a.t > lastFail).sort((x, y) => x.t - y.t)[0];
  return { ms: after ? after.t + after.ms - begin : -1, failures: fails.length };
}

export function phaseStats(answersAll: AnswerLine[], m: Mark, shards: number[]): PhaseStats {
  const all = engineOps(answersAll);
  const end = m.end ?? Math.max(m.begin, ...all.map((a) => a.t + a.ms));
  const win = all.filter((a) => a.t >= m.begin && a.t <= end);
  const mine = m.shard === null ? win : win.filter((a) => a.shard === m.shard);
  const targets = m.shard === null ? shards : [m.shard];
  const again = targets.map((s) => answeredAgain(all, win, s, m.begin, end));
  const gaps = Object.fromEntries(shards.map((s) => [String(s), longestGap(all, s, m.begin, end)]));
  const is503 = (a: AnswerLine) => a.status === 503 && a.type === 'unavailable';
  const inProgress = (a: AnswerLine) => a.status === 409 && a.code === 'idempotency_in_progress';
  return {
    name: m.name, shard: m.shard, begin_ms: m.begin, end_ms: end, open: m.end === null,
    requests: mine.length, ok_2xx: mine.filter((a) => is2xx(a.status)).length, unavailable_503: mine.filter(is503).length,
    in_progress_409: mine.filter(inProgress).length,
    failed_other: mine.filter((a) => failed(a) && !is503(a) && !inProgress(a)).length,
    refused: mine.filter((a) => !is2xx(a.status) && !failed(a)).length,
    failed_other_shards: m.shard === null ? 0 : win.filter((a) => a.shard !== m.shard && failed(a)).length,
    answered_again_ms: again.some((x) => x.ms < 0) ? -1 : Math.max(0, ...again.map((x) => x.ms)),
    failures: again.reduce((n, x) => n + x.failures, 0),
    longest_gap_ms: Math.max(0, ...targets.map((s) => gaps[String(s)] ?? 0)), longest_gap_ms_by_shard: gaps,
    retries: mine.filter((a) => a.attempt > 1).length, abandoned: mine.filter((a) => a.gave_up).length,
  };
}
