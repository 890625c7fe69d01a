/**
 * The pairing key of a headless build server (`--remote-build-only`): a
 * one-shot secret that lets the first builder pair without anyone approving
 * it on this machine.
 *
 * Started with no approved peer, the build server arms a window of 15
 * minutes and prints a fresh key. A `pair_request` whose msg3 carries that
 * key (`pairing_key`, from an allowed source) is approved at once; the window
 * then closes, so the key pairs exactly one builder. A missing or wrong key
 * gets the same answer as a closed window (`no_pairing_window`), on purpose:
 * a prober learns nothing about which gate refused it.
 *
 * The state is a plain object with named transitions:
 *   idle --arm--> armed --claim--> claimed --confirm--> paired
 *                   |                 `--release--> armed (the approval could not be stored)
 *                   `--(15 min)--> expired            any --stop--> stopped
 */
import { createHash, randomInt, timingSafeEqual } from "node:crypto";
import { BlockList, isIP } from "node:net";
import { BuilderError, ErrorCode } from "../../errors.ts";
import { PAIRING_KEY_ALPHABET, PAIRING_KEY_CHARS, PAIRING_KEY_MAX_PRESENTED, formatPairingKey, normalisePairingKey } from "../transport/pairing-key-text.ts";

/** How long the first-pair window stays armed. */
export const PAIRING_KEY_WINDOW_MS = 15 * 60_000;

/** A fresh key, `XXXX-XXXX-XXXX-XXXX`, each character drawn uniformly from the alphabet by a CSPRNG. */
export function generatePairingKey(random: (max: number) => number = (max) => randomInt(max)): string {
  let chars = "";
  for (let i = 0; i < PAIRING_KEY_CHARS; i++) {
    const c = PAIRING_KEY_ALPHABET[random(PAIRING_KEY_ALPHABET.length)];
    if (c === undefined) throw new Error("pairing key random source out of range");
    chars += c;
  }
  return formatPairingKey(chars);
}

const digest = (s: string): Buffer => createHash("sha256").update(s, "utf8").digest();

/**
 * Whether `presented` (a peer's string, or anything else) is `expected`,
 * ignoring case, whitespace and separators. Constant-time: both sides are
 * hashed to 32 bytes and compared with `timingSafeEqual`, so neither the
 * position of the first difference nor the length leaks. Not a string, empty,
 * or over 256 characters never matches.
 */
export function pairingKeyMatches(expected: string, presented: unknown): boolean {
  if (typeof presented !== "string" || presented.length === 0 || presented.length > PAIRING_KEY_MAX_PRESENTED) return false;
  const want = normalisePairingKey(expected);
  if (want.length === 0) return false;
  return timingSafeEqual(digest(want), digest(normalisePairingKey(presented)));
}

/** One `--allow-pairing-source` entry: an IP address or a CIDR block (`192.168.1.0/24`, `fd00::/8`); null when it is neither. */
export function parsePairingSource(entry: string): { address: string; prefix: number | null; family: "ipv4" | "ipv6" } | null {
  const [address = "", prefixText, ...rest] = entry.trim().split("/");
  const version = isIP(address);
  if (version === 0 || rest.length > 0) return null;
  const family = version === 4 ? "ipv4" : "ipv6";
  if (prefixText === undefined) return { address, prefix: null, family };
  if (!/^\d{1,3}$/.test(prefixText)) return null;
  const prefix = Number(prefixText);
  return prefix <= (version === 4 ? 32 : 128) ? { address, prefix, family } : null;
}

/** The sources allowed to use the key; empty: any (the key alone decides). */
export function pairingSources(entries: readonly string[]): BlockList | null {
  if (entries.length === 0) return null;
  const list = new BlockList();
  for (const entry of entries) {
    const source = parsePairingSource(entry);
    if (source === null) throw new BuilderError(ErrorCode.InvalidArgs, `--allow-pairing-source must list IP addresses or CIDR blocks, got '${entry}'`);
    if (source.prefix === null) list.addAddress(source.address, source.family);
    else list.addSubnet(source.address, source.prefix, source.family);
  }
  return list;
}

export type PairingKeyState =
  | { kind: "idle" }
  | { kind: "armed"; key: string; expiresAt: number }
  /** A request with the key is being stored; no other request can claim it meanwhile. */
  | { kind: "claimed"; key: string; expiresAt: number }
  | { kind: "paired"; dashboardId: string }
  | { kind: "expired" }
  | { kind: "stopped" };

/** How the window ended, once it did. */
export type PairingKeyOutcome = "paired" | "expired" | "stopped";

/** Why a request was refused (for the log only: the wire answer is the same). */
export type PairingKeyRefusal = "no key armed" | "key missing" | "key wrong" | "source not allowed";

export interface PairingKeyWindowDeps {
  now?: () => number;
  windowMs?: number;
  /** `--allow-pairing-source` entries (validated by the caller's config). */
  allowSources?: readonly string[];
  /** The key generator (tests give a fixed one). */
  generate?: () => string;
}

export class PairingKeyWindow {
  readonly #now: () => number;
  readonly #windowMs: number;
  readonly #sources: BlockList | null;
  readonly #generate: () => string;
  #state: PairingKeyState = { kind: "idle" };
  #timer: NodeJS.Timeout | undefined;
  #settle: (outcome: PairingKeyOutcome) => void = () => undefined;
  /** Settles once, when the window ends (paired, expired or stopped). */
  readonly outcome: Promise<PairingKeyOutcome>;

  constructor(deps: PairingKeyWindowDeps = {}) {
    this.#now = deps.now ?? Date.now;
    this.#windowMs = deps.windowMs ?? PAIRING_KEY_WINDOW_MS;
    this.#sources = pairingSources(deps.allowSources ?? []);
    this.#generate = deps.generate ?? (() => generatePairingKey());
    this.outcome = new Promise((resolve) => { this.#settle = resolve; });
  }

  get state(): PairingKeyState {
    return this.#state;
  }

  /** A key is waiting for its one pairing (not claimed, not lapsed). */
  get armed(): boolean {
    return this.#state.kind === "armed" && this.#now() < this.#state.expiresAt;
  }

  /** Whether a source list restricts who may pair. */
  get restricted(): boolean {
    return this.#sources !== null;
  }

  /** idle -> armed: a fresh key, valid for the window. */
  arm(): { key: string; expiresAt: number; validForMs: number } {
    if (this.#state.kind !== "idle") throw new Error(`pairing key window cannot be armed from ${this.#state.kind}`);
    const key = this.#generate();
    const expiresAt = this.#now() + this.#windowMs;
    this.#state = { kind: "armed", key, expiresAt };
    this.#timer = setTimeout(() => { this.#lapse(); }, this.#windowMs);
    this.#timer.unref();
    return { key, expiresAt, validForMs: this.#windowMs };
  }

  /**
   * armed -> claimed when `presented` is the key and `ip` an allowed source;
   * otherwise the state is unchanged (a wrong key does not close the window)
   * and the refusal says why.
   */
  claim(presented: unknown, ip: string): { ok: true } | { ok: false; refusal: PairingKeyRefusal } {
    const state = this.#state;
    if (state.kind !== "armed" || !this.armed) return { ok: false, refusal: "no key armed" };
    if (typeof presented !== "string" || presented === "") return { ok: false, refusal: "key missing" };
    if (!pairingKeyMatches(state.key, presented)) return { ok: false, refusal: "key wrong" };
    if (this.#sources !== null && !this.#sourceAllowed(ip)) return { ok: false, refusal: "source not allowed" };
    this.#state = { kind: "claimed", key: state.key, expiresAt: state.expiresAt };
    return { ok: true };
  }

  /** claimed -> paired: the approval is on disk; the window is closed for good. */
  confirm(dashboardId: string): void {
    if (this.#state.kind !== "claimed") return;
    this.#state = { kind: "paired", dashboardId };
    this.#end("paired");
  }

  /** claimed -> armed (or expired, if the window lapsed meanwhile): the approval could not be stored. */
  release(): void {
    const state = this.#state;
    if (state.kind !== "claimed") return;
    if (this.#now() >= state.expiresAt) {
      this.#state = { kind: "expired" };
      this.#end("expired");
    } else {
      this.#state = { kind: "armed", key: state.key, expiresAt: state.expiresAt };
    }
  }

  /** Any -> stopped (the builder stops); an armed key is forgotten. */
  stop(): void {
    if (this.#state.kind === "paired" || this.#state.kind === "expired" || this.#state.kind === "stopped") return;
    this.#state = { kind: "stopped" };
    this.#end("stopped");
  }

  #lapse(): void {
    // A claim in flight finishes (confirm) or lapses on release.
    if (this.#state.kind !== "armed") return;
    this.#state = { kind: "expired" };
    this.#end("expired");
  }

  #end(outcome: PairingKeyOutcome): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#settle(outcome);
  }

  #sourceAllowed(ip: string): boolean {
    const family = isIP(ip);
    if (family === 0 || this.#sources === null) return false;
    return this.#sources.check(ip, family === 4 ? "ipv4" : "ipv6");
  }
}
