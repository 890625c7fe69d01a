/**
 * The optional password of a standalone builder (DESIGN §9: loopback by
 * default, optional password). HTTP Basic authentication on every request and
 * WebSocket upgrade of the listener: the browser asks once and sends the
 * credentials with the panel, its API socket and downloads, and scripts put
 * them in the URL (`http://user:pass@host:6052`), as the esphome-dashboard-api
 * client does. In the add-on, Home Assistant signs users in instead.
 *
 * Credentials are compared as SHA-256 digests with a constant-time compare.
 * A peer (an IPv4 address or an IPv6 /64) that fails `maxFailures` times
 * within `windowMs` is refused with 429 until its window has passed, even with
 * the right password, so a password cannot be guessed at speed. Everyone
 * behind one address (a NAT, a proxy) shares its count.
 *
 * Many addresses (a /8 of loopback, a botnet) could each stay under their own
 * count, so there is also a budget for the whole listener: past
 * `maxGlobalFailures` wrong passwords in one window, only peers that signed in
 * successfully before (the owner's browser keeps working) may try; everyone
 * else is refused with 429 until the window ends.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { normalizePeer } from "./peers.ts";

export interface Credentials {
  username: string;
  password: string;
}

export interface BasicAuthOptions {
  credentials: Credentials;
  /** Failed attempts a peer may make per window. Default 10. */
  maxFailures?: number;
  /** Failed attempts all peers together may make per window before only known peers may try. Default 100. */
  maxGlobalFailures?: number;
  /** Default 60 s. */
  windowMs?: number;
  now?: () => number;
}

export type AuthVerdict = "ok" | "unauthorized" | "too_many_attempts";

export const AUTH_REALM = "ESPHome Builder";
/** Peers whose failures are remembered at once. */
export const MAX_TRACKED_PEERS = 4096;
/** Peers remembered as having signed in (they may still try while the global budget is spent). */
export const MAX_KNOWN_PEERS = 256;
/** How long a successful sign-in keeps a peer known. */
const KNOWN_PEER_MS = 24 * 60 * 60 * 1000;

/**
 * Whom failures are counted against: an IPv4 address (also when mapped into
 * IPv6), or an IPv6 /64, since one host can use a whole /64.
 */
export function peerKey(address: string): string {
  const peer = normalizePeer(address);
  if (!peer.includes(":")) return peer;
  // Expand "::" so the first four groups are the /64.
  const [head = "", tail] = peer.split("::", 2);
  const headGroups = head === "" ? [] : head.split(":");
  const tailGroups = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array<string>(Math.max(0, 8 - headGroups.length - tailGroups.length)).fill("0"), ...tailGroups];
  return `${groups.slice(0, 4).map((g) => (g.replace(/^0+(?=.)/, "") || "0").toLowerCase()).join(":")}::/64`;
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

/** The `user:password` of a Basic `Authorization` header, or null when there is none or it is malformed. */
export function parseBasicAuth(header: string | undefined): Credentials | null {
  if (header === undefined) return null;
  const match = /^Basic[ ]+([A-Za-z0-9+/]+={0,2})[ ]*$/i.exec(header);
  if (match === null) return null;
  const decoded = Buffer.from(match[1] ?? "", "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return null;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

export class BasicAuth {
  readonly #user: Buffer;
  readonly #password: Buffer;
  readonly #maxFailures: number;
  readonly #maxGlobalFailures: number;
  readonly #windowMs: number;
  readonly #now: () => number;
  /** Per peer key: failures in the current window and when it started. */
  readonly #failures = new Map<string, { count: number; since: number }>();
  /** Failures of all peers in the current global window. */
  #global = { count: 0, since: 0 };
  /** Peer keys that signed in successfully, and when last (insertion order = least recent first). */
  readonly #known = new Map<string, number>();

  constructor(opts: BasicAuthOptions) {
    this.#user = digest(opts.credentials.username);
    this.#password = digest(opts.credentials.password);
    this.#maxFailures = opts.maxFailures ?? 10;
    this.#maxGlobalFailures = opts.maxGlobalFailures ?? 100;
    this.#windowMs = opts.windowMs ?? 60_000;
    this.#now = opts.now ?? Date.now;
  }

  /** Judges one request or upgrade from `peer` by its Authorization header. */
  check(header: string | undefined, peer: string): AuthVerdict {
    const now = this.#now();
    const key = peerKey(peer);
    const record = this.#failures.get(key);
    if (record !== undefined && now - record.since >= this.#windowMs) this.#failures.delete(key);
    const current = this.#failures.get(key);
    if (current !== undefined && current.count >= this.#maxFailures) return "too_many_attempts";
    if (now - this.#global.since >= this.#windowMs) this.#global = { count: 0, since: now };
    const knownAt = this.#known.get(key);
    const known = knownAt !== undefined && now - knownAt < KNOWN_PEER_MS;
    if (!known && this.#global.count >= this.#maxGlobalFailures) return "too_many_attempts";
    const given = parseBasicAuth(header);
    if (given === null) return "unauthorized"; // no attempt made: the browser has not asked the user yet
    // Both compares always run, so the time taken says nothing about which part was wrong.
    const userOk = timingSafeEqual(digest(given.username), this.#user);
    const passwordOk = timingSafeEqual(digest(given.password), this.#password);
    if (userOk && passwordOk) {
      this.#remember(key, now);
      return "ok";
    }
    this.#global.count++;
    if (current !== undefined) current.count++;
    else if (this.#makeRoom(now)) this.#failures.set(key, { count: 1, since: now });
    else return "too_many_attempts"; // every slot holds a locked-out peer: fail closed
    return "unauthorized";
  }

  /** Seconds until `peer` may try again (the rest of its window, or of the global one), at least 1. */
  retryAfterSeconds(peer: string): number {
    const now = this.#now();
    const record = this.#failures.get(peerKey(peer));
    const own = record === undefined || record.count < this.#maxFailures ? 0 : this.#windowMs - (now - record.since);
    const global = this.#global.count >= this.#maxGlobalFailures ? this.#windowMs - (now - this.#global.since) : 0;
    const left = Math.max(own, global);
    return Math.max(1, Math.ceil((left > 0 ? left : this.#windowMs) / 1000));
  }

  /** Marks `key` as a peer that signed in; the least recently seen is forgotten when the table is full. */
  #remember(key: string, now: number): void {
    this.#known.delete(key);
    this.#known.set(key, now);
    if (this.#known.size > MAX_KNOWN_PEERS) {
      const oldest = this.#known.keys().next();
      if (oldest.done !== true) this.#known.delete(oldest.value);
    }
  }

  /**
   * Keeps the table bounded: when it is full, expired records go, then the
   * oldest record that is not locked out. A locked-out peer is never
   * forgotten early (that would let many addresses unlock one). False when
   * every record is a live lockout.
   */
  #makeRoom(now: number): boolean {
    if (this.#failures.size < MAX_TRACKED_PEERS) return true;
    for (const [key, record] of this.#failures) if (now - record.since >= this.#windowMs) this.#failures.delete(key);
    if (this.#failures.size < MAX_TRACKED_PEERS) return true;
    for (const [key, record] of this.#failures) {
      if (record.count < this.#maxFailures) {
        this.#failures.delete(key);
        return true;
      }
    }
    return false;
  }

  /** `check` for a Node request. */
  checkRequest(req: IncomingMessage): AuthVerdict {
    return this.check(req.headers.authorization, req.socket.remoteAddress ?? "");
  }
}

/** The status line, headers and body a refused request gets. */
export function refusal(verdict: Exclude<AuthVerdict, "ok">, retryAfterSeconds = 60): { status: number; headers: Record<string, string>; body: string } {
  if (verdict === "too_many_attempts") {
    return {
      status: 429,
      headers: { "Retry-After": String(retryAfterSeconds) },
      body: `Too many wrong passwords from this address; try again in ${retryAfterSeconds} s.\n`,
    };
  }
  return {
    status: 401,
    headers: { "WWW-Authenticate": `Basic realm="${AUTH_REALM}", charset="UTF-8"` },
    body: "This ESPHome Builder needs its user name and password (set with --username and --password).\n",
  };
}
