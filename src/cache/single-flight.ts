// One load per key per process: concurrent misses on a key share the first caller's
// promise, so a thousand readers of a cold key cost one database read here.
export class SingleFlight<T> {
  private readonly inflight = new Map<string, Promise<T>>();

  run(key: string, load: () => Promise<T>): Promise<T> {
    const running = this.inflight.get(key);
    if (running) return running;
    const p = load().finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }

  get size(): number { return this.inflight.size; }
}
