// Admission control of one worker: every unit of work that may reach a database holds
// a slot while it runs, an HTTP request from its headers to its answer (or its abort),
// a stream topic check from its admission to its last read. MAX_INFLIGHT bounds them
// all together; stream work may hold at most half, so HTTP always keeps the other half
// however many sockets subscribe. Past a bound the caller refuses at once (503
// `overloaded`): nothing queues here.

let total = 0;
let stream = 0;
let lastActivityMs = 0;

/** Slots held right now, HTTP and stream together (the `bf_http_inflight_requests` gauge). */
export function inflightCount(): number { return total; }

/** Slots held by stream work alone. */
export function streamInflightCount(): number { return stream; }

/** How long no work has been running; a draining worker waits for a quiet spell. */
export function idleMs(): number { return total > 0 ? 0 : performance.now() - lastActivityMs; }

/** The most stream work may hold. */
export function streamBudget(maxInflight: number): number { return Math.max(1, Math.floor(maxInflight / 2)); }

/** One slot for an HTTP request; its release must be called exactly once. */
export function admitRequest(maxInflight: number): (() => void) | null {
  if (total >= maxInflight) return null;
  total++;
  lastActivityMs = performance.now();
  return once(() => {
    total--;
    lastActivityMs = performance.now();
  });
}

/** `units` slots for stream work, all or none; its release must be called exactly once. */
export function admitStream(units: number, maxInflight: number): (() => void) | null {
  if (total + units > maxInflight || stream + units > streamBudget(maxInflight)) return null;
  total += units;
  stream += units;
  lastActivityMs = performance.now();
  return once(() => {
    total -= units;
    stream -= units;
    lastActivityMs = performance.now();
  });
}

/** A release that a second path (an abort racing the answer) cannot run twice. */
function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}
