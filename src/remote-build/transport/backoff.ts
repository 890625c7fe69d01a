/**
 * The one backoff rule of the peer link's reconnect and retry loops: the
 * first wait is `initialMs`, each next one doubles, capped at `maxMs`; a
 * success resets it. No jitter unless asked for: every session loop is one
 * pairing's, against one build server, so there is no herd to spread; the
 * build server's connect-back dialer, which calls many offloaders that went
 * quiet together, spreads its retries with `jitter`.
 */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** ± this fraction (0-1) of each wait, still within `maxMs`; 0 or unset: none. */
  jitter?: number;
  /** The jitter's source of numbers in [0, 1) (default Math.random; tests fix it). */
  random?: () => number;
}

/**
 * The wait before attempt number `attempt` after a failure (1 = the first
 * retry): `initialMs` doubled per earlier retry, capped at `maxMs` (a cap
 * below the first wait is raised to it); a zero first wait grows from 1 ms
 * instead of spinning at zero. Jittered waits are whole milliseconds, at
 * least 1.
 */
export function backoffDelay(attempt: number, options: BackoffOptions): number {
  const initial = Math.max(0, options.initialMs);
  const max = Math.max(initial, options.maxMs);
  const n = Math.max(1, Math.floor(attempt));
  const base = n === 1 ? initial : Math.min(max, Math.max(1, initial) * 2 ** (initial === 0 ? n - 2 : n - 1));
  const jitter = options.jitter ?? 0;
  if (jitter <= 0) return base;
  const random = options.random ?? Math.random;
  const spread = base * (1 + (random() * 2 - 1) * Math.min(1, jitter));
  return Math.max(1, Math.min(Math.round(spread), max));
}

export class Backoff {
  readonly #options: BackoffOptions;
  /** Failed attempts since the last success. */
  #attempt = 0;

  constructor(options: BackoffOptions) {
    this.#options = options;
  }

  /** The wait before the next attempt; the one after it is twice as long (up to the cap). */
  next(): number {
    this.#attempt += 1;
    return backoffDelay(this.#attempt, this.#options);
  }

  /** An attempt succeeded: the next wait is the first one again. */
  reset(): void {
    this.#attempt = 0;
  }
}
