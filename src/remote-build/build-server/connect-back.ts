/**
 * The build server's connect-back dialer (newer upstream's `connect_back`,
 * WIRE-FACTS "Newer upstream" C).
 *
 * An offloader whose stored address of this build server went stale (the
 * build server moved, got a new address or port) cannot find it again by
 * itself. While it had a session, the offloader told us the port of its own
 * peer-link listener (`connect_back_port` in the `peer_link` msg3), and we saw
 * the address it came from. When such an approved peer has been quiet for a
 * while, this dialer calls it there with intent `connect_back`, checking its
 * key against the stored pin before msg3, and says our own listener port; the
 * offloader probes us at that address and moves its pairing there.
 *
 * Timing: a sweep every 30 s; a peer is quiet after 300 s without a session;
 * each dial may take 30 s; a refused or failed dial is retried after 300 s
 * (±20 % jitter), doubling up to 3 600 s; `rebind_in_progress` after 30 s.
 * Only a builder whose build server is on with a bound listener dials.
 */
import { z } from "zod";
import { errorMessage } from "../../errors.ts";
import { getLogger } from "../../logger.ts";
import { backoffDelay } from "../transport/backoff.ts";
import { initiate } from "../transport/handshake.ts";
import { isPeerLinkError } from "../transport/socket-frames.ts";
import { HANDSHAKE_STEP_MS } from "../transport/messages.ts";

const log = getLogger("connect-back");

export interface ConnectBackTimings {
  /** How often approved peers are looked at. */
  sweepIntervalMs: number;
  /** A peer without a session for this long is dialled. */
  quietAfterMs: number;
  /** One dial (connect, handshake and the offloader's probe) at most. */
  dialTimeoutMs: number;
  /** The first retry after a refused or failed dial… */
  backoffInitialMs: number;
  /** …doubling up to this. */
  backoffMaxMs: number;
  /** ± this fraction of each retry delay, so peers do not march in step. */
  backoffJitter: number;
  /** After `rebind_in_progress`: the offloader is already probing us. */
  rebindRetryMs: number;
}

export const CONNECT_BACK_TIMINGS: ConnectBackTimings = {
  sweepIntervalMs: 30_000,
  quietAfterMs: 300_000,
  dialTimeoutMs: 30_000,
  backoffInitialMs: 300_000,
  backoffMaxMs: 3_600_000,
  backoffJitter: 0.2,
  rebindRetryMs: 30_000,
};

const ms = z.number().int().min(1).max(86_400_000);
const timingsSchema = z.strictObject({
  sweepIntervalMs: ms.optional(),
  quietAfterMs: ms.optional(),
  dialTimeoutMs: ms.optional(),
  backoffInitialMs: ms.optional(),
  backoffMaxMs: ms.optional(),
  backoffJitter: z.number().min(0).max(1).optional(),
  rebindRetryMs: ms.optional(),
});

/**
 * Reads `ESPHOME_BUILDER_CONNECT_BACK_TIMINGS` (a JSON object of the fields
 * above; for tests and troubleshooting, not a flag). Unset or empty:
 * undefined. Anything else that is not such an object is an Error naming the
 * problem.
 */
export function parseConnectBackTimings(raw: string | undefined): Partial<ConnectBackTimings> | undefined {
  if (raw === undefined || raw.trim() === "") return undefined;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new Error("ESPHOME_BUILDER_CONNECT_BACK_TIMINGS must be a JSON object such as {\"quietAfterMs\": 60000}");
  }
  const parsed = timingsSchema.safeParse(value);
  if (!parsed.success) throw new Error(`ESPHOME_BUILDER_CONNECT_BACK_TIMINGS: ${parsed.error.issues.map((i) => `${i.path.join(".") || "(value)"}: ${i.message}`).join("; ")}`);
  const out: Partial<ConnectBackTimings> = {};
  for (const [key, v] of Object.entries(parsed.data)) if (v !== undefined) out[key as keyof ConnectBackTimings] = v;
  return out;
}

/** An approved peer as the dialer sees it. */
export interface ConnectBackPeer {
  dashboard_id: string;
  pin_sha256: string;
  /** The address its last session came from ("" unknown). */
  peer_ip: string;
  /** Its announced listener port (0: never announced). */
  connect_back_port: number;
  /** A session with it is open now. */
  connected: boolean;
}

export type DialOutcome = { kind: "ok" } | { kind: "rejected"; reason: string } | { kind: "failed"; error: string };

/** Per peer: since when it is quiet, when it may be dialled next, how many dials in a row failed. */
export interface DialState {
  quietSince: number;
  nextAttemptAt: number;
  failures: number;
  dialing: boolean;
}

/** The delay before retry number `failures` (1 = the first): the peer link's backoff rule (doubling, capped) with the dialer's jitter. */
export function retryDelay(failures: number, t: ConnectBackTimings, random: () => number): number {
  return backoffDelay(failures, { initialMs: t.backoffInitialMs, maxMs: t.backoffMaxMs, jitter: t.backoffJitter, random });
}

/** Why a peer is not dialled now (null: dial it). */
export function skipReason(peer: ConnectBackPeer, state: DialState, now: number, t: ConnectBackTimings): string | null {
  if (peer.connected) return "connected";
  if (peer.connect_back_port === 0 || peer.peer_ip === "") return "no_endpoint";
  if (state.dialing) return "dialing";
  if (now - state.quietSince < t.quietAfterMs) return "not_quiet";
  if (now < state.nextAttemptAt) return "backing_off";
  return null;
}

/** The state after a dial ended with `outcome` at `now` (named transitions; pure). */
export function afterDial(state: DialState, outcome: DialOutcome, now: number, t: ConnectBackTimings, random: () => number): DialState {
  if (outcome.kind === "ok") {
    // It is moving to us; if no session follows, try again after the first backoff.
    return { ...state, dialing: false, failures: 0, nextAttemptAt: now + retryDelay(1, t, random) };
  }
  if (outcome.kind === "rejected" && outcome.reason === "rebind_in_progress") {
    return { ...state, dialing: false, nextAttemptAt: now + t.rebindRetryMs };
  }
  const failures = state.failures + 1;
  return { ...state, dialing: false, failures, nextAttemptAt: now + retryDelay(failures, t, random) };
}

export interface ConnectBackDialerDeps {
  /** The approved peers now. */
  peers: () => ConnectBackPeer[];
  /** Our own peer-link port while we are a build server with a bound listener; null otherwise (no dialling). */
  ownPort: () => number | null;
  /** Dials one peer; must settle within about `timeoutMs`. */
  dial: (peer: ConnectBackPeer, ownPort: number, timeoutMs: number) => Promise<DialOutcome>;
  now: () => number;
  random?: () => number;
  timings?: Partial<ConnectBackTimings> | undefined;
}

export class ConnectBackDialer {
  readonly #deps: ConnectBackDialerDeps;
  readonly timings: ConnectBackTimings;
  readonly #random: () => number;
  readonly #states = new Map<string, DialState>();
  #startedAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | null = null;

  constructor(deps: ConnectBackDialerDeps) {
    this.#deps = deps;
    this.timings = { ...CONNECT_BACK_TIMINGS, ...deps.timings };
    this.#random = deps.random ?? Math.random;
  }

  start(): void {
    this.#startedAt = this.#deps.now();
    this.#timer = setInterval(() => { void this.sweep(); }, this.timings.sweepIntervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** What the dialer holds for a peer (for tests and diagnostics). */
  state(dashboardId: string): DialState | undefined {
    const s = this.#states.get(dashboardId);
    return s === undefined ? undefined : { ...s };
  }

  /**
   * Looks at every approved peer once and dials the quiet ones that are due,
   * all at once; resolves when those dials ended. A sweep while one still
   * runs only updates who is quiet.
   */
  sweep(): Promise<void> {
    const now = this.#deps.now();
    const peers = this.#deps.peers();
    const known = new Set(peers.map((p) => p.dashboard_id));
    for (const id of [...this.#states.keys()]) if (!known.has(id)) this.#states.delete(id);
    const ownPort = this.#deps.ownPort();
    const due: { peer: ConnectBackPeer; state: DialState }[] = [];
    for (const peer of peers) {
      let state = this.#states.get(peer.dashboard_id);
      if (state === undefined) {
        state = { quietSince: this.#startedAt, nextAttemptAt: 0, failures: 0, dialing: false };
        this.#states.set(peer.dashboard_id, state);
      }
      if (peer.connected) {
        // Seen connected: quiet (again) from now on, and a fresh start for retries.
        state.quietSince = now;
        state.failures = 0;
        state.nextAttemptAt = 0;
        continue;
      }
      if (ownPort === null) continue;
      if (skipReason(peer, state, now, this.timings) === null) due.push({ peer, state });
    }
    if (due.length === 0 || ownPort === null) return this.#running ?? Promise.resolve();
    const run = Promise.all(due.map(({ peer, state }) => this.#dialOne(peer, state, ownPort))).then(() => undefined);
    this.#running = run.finally(() => { if (this.#running === run) this.#running = null; });
    return run;
  }

  async #dialOne(peer: ConnectBackPeer, state: DialState, ownPort: number): Promise<void> {
    state.dialing = true;
    let outcome: DialOutcome;
    try {
      outcome = await this.#deps.dial(peer, ownPort, this.timings.dialTimeoutMs);
    } catch (err) {
      outcome = { kind: "failed", error: errorMessage(err) };
    }
    const next = afterDial(state, outcome, this.#deps.now(), this.timings, this.#random);
    Object.assign(state, next);
    const where = `${peer.peer_ip}:${peer.connect_back_port}`;
    const wait = Math.round((next.nextAttemptAt - this.#deps.now()) / 1000);
    if (outcome.kind === "ok") log.info(`connect-back to ${peer.dashboard_id} at ${where}: it is moving to us`);
    else log.info(`connect-back to ${peer.dashboard_id} at ${where} ${outcome.kind === "rejected" ? `refused (${outcome.reason})` : `failed (${outcome.error})`}; next try in ${wait} s`);
  }
}

/**
 * Dials one offloader with intent `connect_back`: its key must hash to
 * `pin` (checked after msg2, so nothing is said to anyone else), msg3 says
 * our listener port, and the intent response says what it did. Settles within
 * `timeoutMs` (a late connection is closed when it comes).
 */
export async function dialConnectBack(opts: { host: string; port: number; pin: string; ownPort: number; privateKey: Uint8Array; timeoutMs: number }): Promise<DialOutcome> {
  const attempt = initiate({
    host: opts.host,
    port: opts.port,
    staticPrivateKey: opts.privateKey,
    intent: "connect_back",
    expectedPin: opts.pin,
    payload: { peer_link_port: opts.ownPort },
    // The answer comes after the offloader's own probe of us: give that step the whole dial time.
    stepTimeoutMs: Math.max(HANDSHAKE_STEP_MS, opts.timeoutMs),
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<DialOutcome>((resolve) => {
    timer = setTimeout(() => { resolve({ kind: "failed", error: `no answer within ${opts.timeoutMs} ms` }); }, opts.timeoutMs);
  });
  const answered = attempt.then(
    ({ channel, response }): DialOutcome => {
      channel.close("done");
      if (response.intent_response === "ok") return { kind: "ok" };
      return { kind: "rejected", reason: response.reason ?? response.intent_response };
    },
    (err: unknown): DialOutcome => ({ kind: "failed", error: isPeerLinkError(err) ? `${err.code}: ${err.message}` : errorMessage(err) }),
  );
  try {
    return await Promise.race([answered, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
