/**
 * The one backoff rule of the peer link's reconnect and retry loops: the
 * first wait is `initialMs`, each next one doubles, capped at `maxMs`; a
 * success resets it. No jitter: every loop is one pairing's, against one
 * build server, so there is no herd to spread.
 */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

export class Backoff {
  readonly #initialMs: number;
  readonly #maxMs: number;
  #nextMs: number;

  constructor(options: BackoffOptions) {
    this.#initialMs = Math.max(0, options.initialMs);
    this.#maxMs = Math.max(this.#initialMs, options.maxMs);
    this.#nextMs = this.#initialMs;
  }

  /** The wait before the next attempt; the one after it is twice as long (up to the cap). */
  next(): number {
    const wait = this.#nextMs;
    this.#nextMs = Math.min(this.#maxMs, Math.max(1, wait * 2));
    return wait;
  }

  /** An attempt succeeded: the next wait is the first one again. */
  reset(): void {
    this.#nextMs = this.#initialMs;
  }
}
