/* Reconnect delays: exponential backoff with full jitter. DOM-free (unit-tested under Node). */

export const BACKOFF_BASE_MS = 500;
export const BACKOFF_CAP_MS = 30000;
export const STABLE_MS = 10000; // a connection that lived this long resets the backoff
const MAX_ATTEMPT = 16; // 0.5 s × 2^16 is far past the cap: counting further changes nothing

/** The longest wait before try number `attempt` (0-based): min(cap, base × 2^attempt). */
export function backoffCeiling(attempt) {
  return Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
}

export class Backoff {
  /** @param {() => number} random uniform in [0, 1), as Math.random */
  constructor(random = Math.random) {
    this.random = random;
    this.attempt = 0;
  }

  /** The next delay, random(0, ceiling(attempt)); then `attempt` goes up by one. */
  next() {
    const ceiling = backoffCeiling(this.attempt);
    this.attempt = Math.min(this.attempt + 1, MAX_ATTEMPT);
    return this.random() * ceiling;
  }

  reset() {
    this.attempt = 0;
  }
}
