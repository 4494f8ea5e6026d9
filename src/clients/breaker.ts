// A circuit breaker per remote party: after `threshold` consecutive failures it opens
// for `openMs` and calls fail at once; then one probe is let through (half-open).
import { breakerOpens } from '../metrics/index.js';

export type BreakerState = 'closed' | 'open' | 'half_open';

export class Breaker {
  private failures = 0;
  private openedAt = 0;
  private probing = false;

  constructor(readonly name: string, private readonly threshold = 5, private readonly openMs = 5000) {}

  get state(): BreakerState {
    if (this.failures < this.threshold) return 'closed';
    return Date.now() - this.openedAt >= this.openMs ? 'half_open' : 'open';
  }

  /** Whether a call may go out now; a half-open breaker admits one probe at a time. */
  admit(): boolean {
    const s = this.state;
    if (s === 'closed') return true;
    if (s === 'open' || this.probing) return false;
    this.probing = true;
    return true;
  }

  success(): void {
    this.failures = 0;
    this.probing = false;
  }

  failure(): void {
    const wasOpen = this.state === 'open';
    this.probing = false;
    this.failures++;
    if (this.failures < this.threshold) return;
    this.openedAt = Date.now();
    // Calls that set out before it opened may still fail: only a change of state counts.
    if (!wasOpen) breakerOpens.inc({ dependency: this.name });
  }
}
