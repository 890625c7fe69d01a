/**
 * When to probe which device: at most `concurrency` probes at once, online
 * devices every `intervalMs`, a missed probe retried after `retryMs` until the
 * device counts as offline (`offlineAfterMisses` in a row), then backing off
 * (doubling from 2 x `retryMs` up to `maxBackoffMs`). At start the first probes
 * are spread out (`startSpacingMs` apart) so hundreds of YAMLs make no storm.
 *
 * The clock and the probe are injected; the prober keeps no device state of its
 * own beyond its schedule, and reports each outcome to `onResult`.
 */
import { errorMessage } from "../errors.ts";

export interface ProbeTarget {
  key: string;
  host: string;
  port: number;
  /** The native API's encryption key (base64), null for a plaintext API. */
  apiKey: string | null;
}

export interface ProbeAnswer {
  name: string;
  esphomeVersion: string;
  compilationTime: string | null;
  projectName: string | null;
  projectVersion: string | null;
}

/**
 * What a probe found: an answer; the device answered but refused to say
 * (`answered_error`: a wrong or missing encryption key); or nothing
 * (`unreachable`: refused, timed out, no route).
 */
export type ProbeOutcome =
  | { kind: "answer"; answer: ProbeAnswer }
  | { kind: "answered_error"; error: string }
  | { kind: "unreachable"; error: string; misses: number };

export type ProbeFn = (target: ProbeTarget, signal: AbortSignal) => Promise<ProbeOutcome>;

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (handle) => { clearTimeout(handle as NodeJS.Timeout); },
};

export interface ProbeTimings {
  intervalMs: number;
  retryMs: number;
  maxBackoffMs: number;
  /** A probe that takes longer is aborted and counts as a miss. */
  timeoutMs: number;
  offlineAfterMisses: number;
  concurrency: number;
  startSpacingMs: number;
}

/**
 * Timings from one knob, the poll interval S: online devices every S, retries
 * every S/6 (at least 0.5 s), offline back-off up to S, probes time out after
 * min(5 s, S/2). A device that stops answering is offline within
 * S + 2 x S/6 + 3 x timeout; one that comes back is online within S + timeout
 * (at once when it announces itself over mDNS).
 */
export function timingsFor(intervalMs: number, concurrency: number): ProbeTimings {
  const retryMs = Math.max(500, Math.round(intervalMs / 6));
  return {
    intervalMs,
    retryMs,
    maxBackoffMs: Math.max(intervalMs, retryMs * 2),
    timeoutMs: Math.min(5_000, Math.max(500, Math.round(intervalMs / 2))),
    offlineAfterMisses: 3,
    concurrency,
    startSpacingMs: 50,
  };
}

/** The longest a change of a device's reachability takes to show, for docs and tests. */
export function detectionBoundMs(t: ProbeTimings): { offlineMs: number; onlineMs: number } {
  return {
    offlineMs: t.intervalMs + (t.offlineAfterMisses - 1) * t.retryMs + t.offlineAfterMisses * t.timeoutMs,
    onlineMs: t.maxBackoffMs + t.timeoutMs,
  };
}

interface Entry {
  target: ProbeTarget;
  due: number;
  misses: number;
  inFlight: AbortController | null;
  /** An install waits for it: probed at the retry rate while offline. */
  urgent: boolean;
  /** Bumped when the entry is replaced or removed: an outcome for an older generation is dropped. */
  generation: number;
}

export interface ProberDeps {
  probe: ProbeFn;
  timings: ProbeTimings;
  clock?: Clock;
  onResult: (key: string, outcome: ProbeOutcome) => void;
}

export class Prober {
  readonly #deps: ProberDeps;
  readonly #clock: Clock;
  readonly #t: ProbeTimings;
  readonly #entries = new Map<string, Entry>();
  #inFlight = 0;
  #timer: unknown = null;
  #timerDue = Infinity;
  #running = false;
  #nextStart = 0;
  readonly #settled = new Set<() => void>();

  constructor(deps: ProberDeps) {
    this.#deps = deps;
    this.#clock = deps.clock ?? systemClock;
    this.#t = deps.timings;
  }

  get timings(): ProbeTimings {
    return this.#t;
  }

  start(): void {
    this.#running = true;
    this.#pump();
  }

  stop(): void {
    this.#running = false;
    this.#disarm();
    for (const entry of this.#entries.values()) entry.inFlight?.abort();
  }

  /** Adds or re-targets a device. New ones are spaced out after the ones already waiting for a first probe. */
  set(target: ProbeTarget): void {
    const existing = this.#entries.get(target.key);
    if (existing !== undefined) {
      if (JSON.stringify(existing.target) === JSON.stringify(target)) return;
      existing.target = target;
      existing.generation++;
      existing.inFlight?.abort();
      existing.inFlight = null;
      existing.misses = 0;
      existing.due = this.#clock.now();
    } else {
      const now = this.#clock.now();
      this.#nextStart = Math.max(this.#nextStart, now);
      this.#entries.set(target.key, { target, due: this.#nextStart, misses: 0, inFlight: null, urgent: false, generation: 0 });
      this.#nextStart += this.#t.startSpacingMs;
    }
    this.#pump();
  }

  delete(key: string): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    entry.generation++;
    entry.inFlight?.abort();
    this.#entries.delete(key);
    this.#pump();
  }

  /** Probe soon (mDNS heard it, an install waits for it): due now unless a probe is under way. */
  hurry(key: string): void {
    const entry = this.#entries.get(key);
    if (entry === undefined || entry.inFlight !== null) return;
    entry.due = Math.min(entry.due, this.#clock.now());
    this.#pump();
  }

  /** Marks a device as one an install waits for (probed at the retry rate while it does not answer). */
  setUrgent(key: string, urgent: boolean): void {
    const entry = this.#entries.get(key);
    if (entry === undefined || entry.urgent === urgent) return;
    entry.urgent = urgent;
    if (urgent && entry.inFlight === null) {
      entry.due = Math.min(entry.due, this.#clock.now() + this.#t.retryMs);
      this.#pump();
    }
  }

  /** Probes in flight now (tests and the bench watch it). */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Resolves when no probe is in flight. */
  async settled(): Promise<void> {
    while (this.#inFlight > 0) await new Promise<void>((resolve) => this.#settled.add(resolve));
  }

  #disarm(): void {
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerDue = Infinity;
  }

  #pump(): void {
    if (!this.#running) return;
    const now = this.#clock.now();
    while (this.#inFlight < this.#t.concurrency) {
      let next: Entry | undefined;
      for (const entry of this.#entries.values()) {
        if (entry.inFlight === null && entry.due <= now && (next === undefined || entry.due < next.due)) next = entry;
      }
      if (next === undefined) break;
      this.#run(next);
    }
    if (this.#inFlight >= this.#t.concurrency) {
      this.#disarm();
      return;
    }
    let soonest = Infinity;
    for (const entry of this.#entries.values()) if (entry.inFlight === null && entry.due < soonest) soonest = entry.due;
    if (soonest === this.#timerDue) return;
    this.#disarm();
    if (soonest === Infinity) return;
    this.#timerDue = soonest;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = null;
      this.#timerDue = Infinity;
      this.#pump();
    }, Math.max(0, soonest - now));
  }

  #run(entry: Entry): void {
    const abort = new AbortController();
    entry.inFlight = abort;
    this.#inFlight++;
    const generation = entry.generation;
    const timeout = this.#clock.setTimeout(() => { abort.abort(new Error(`no answer within ${this.#t.timeoutMs} ms`)); }, this.#t.timeoutMs);
    const finish = (outcome: ProbeOutcome): void => {
      this.#clock.clearTimeout(timeout);
      this.#inFlight--;
      if (entry.generation === generation) entry.inFlight = null;
      if (this.#running && entry.generation === generation && this.#entries.get(entry.target.key) === entry) {
        entry.inFlight = null;
        const now = this.#clock.now();
        if (outcome.kind === "unreachable") {
          entry.misses++;
          const over = entry.misses - this.#t.offlineAfterMisses;
          entry.due = now + (over < 0 || entry.urgent ? this.#t.retryMs : Math.min(this.#t.maxBackoffMs, this.#t.retryMs * 2 ** (over + 1)));
          this.#deps.onResult(entry.target.key, { ...outcome, misses: entry.misses });
        } else {
          entry.misses = 0;
          entry.due = now + this.#t.intervalMs;
          this.#deps.onResult(entry.target.key, outcome);
        }
      }
      if (this.#inFlight === 0) {
        for (const resolve of this.#settled) resolve();
        this.#settled.clear();
      }
      this.#pump();
    };
    let probe: Promise<ProbeOutcome>;
    try {
      probe = this.#deps.probe(entry.target, abort.signal);
    } catch (err) {
      probe = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    // A probe that ignores its signal still ends the wait at the timeout.
    const aborted = new Promise<ProbeOutcome>((resolve) => {
      abort.signal.addEventListener("abort", () => {
        resolve({ kind: "unreachable", error: errorMessage(abort.signal.reason), misses: 0 });
      }, { once: true });
    });
    Promise.race([probe, aborted]).then(finish, (err: unknown) => {
      finish({ kind: "unreachable", error: errorMessage(err), misses: 0 });
    });
  }
}
