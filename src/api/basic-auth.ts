/**
 * The optional password of a standalone builder (DESIGN §9: loopback by
 * default, optional password). HTTP Basic authentication on every request and
 * WebSocket upgrade of the listener: the browser asks once and sends the
 * credentials with the panel, its API socket and downloads, and scripts put
 * them in the URL (`http://user:pass@host:6052`), as the esphome-dashboard-api
 * client does. In the add-on, Home Assistant signs users in instead.
 *
 * Credentials are compared as SHA-256 digests with a constant-time compare.
 * A peer that fails `maxFailures` times within `windowMs` is refused with 429
 * until the window has passed, so a password cannot be guessed at speed.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";

export interface Credentials {
  username: string;
  password: string;
}

export interface BasicAuthOptions {
  credentials: Credentials;
  /** Failed attempts a peer may make per window. Default 10. */
  maxFailures?: number;
  /** Default 60 s. */
  windowMs?: number;
  now?: () => number;
}

export type AuthVerdict = "ok" | "unauthorized" | "too_many_attempts";

export const AUTH_REALM = "ESPHome Builder";

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
  readonly #windowMs: number;
  readonly #now: () => number;
  /** Per peer address: failures in the current window and when it started. */
  readonly #failures = new Map<string, { count: number; since: number }>();

  constructor(opts: BasicAuthOptions) {
    this.#user = digest(opts.credentials.username);
    this.#password = digest(opts.credentials.password);
    this.#maxFailures = opts.maxFailures ?? 10;
    this.#windowMs = opts.windowMs ?? 60_000;
    this.#now = opts.now ?? Date.now;
  }

  /** Judges one request or upgrade from `peer` by its Authorization header. */
  check(header: string | undefined, peer: string): AuthVerdict {
    const now = this.#now();
    const record = this.#failures.get(peer);
    if (record !== undefined && now - record.since >= this.#windowMs) this.#failures.delete(peer);
    const current = this.#failures.get(peer);
    if (current !== undefined && current.count >= this.#maxFailures) return "too_many_attempts";
    const given = parseBasicAuth(header);
    if (given === null) return "unauthorized"; // no attempt made: the browser has not asked the user yet
    // Both compares always run, so the time taken says nothing about which part was wrong.
    const userOk = timingSafeEqual(digest(given.username), this.#user);
    const passwordOk = timingSafeEqual(digest(given.password), this.#password);
    if (userOk && passwordOk) return "ok";
    if (current === undefined) this.#failures.set(peer, { count: 1, since: now });
    else current.count++;
    // Bounded: the oldest records go first when many peers fail.
    if (this.#failures.size > 4096) {
      const oldest = this.#failures.keys().next();
      if (oldest.done !== true) this.#failures.delete(oldest.value);
    }
    return "unauthorized";
  }

  /** `check` for a Node request. */
  checkRequest(req: IncomingMessage): AuthVerdict {
    return this.check(req.headers.authorization, req.socket.remoteAddress ?? "");
  }
}

/** The status line, headers and body a refused request gets. */
export function refusal(verdict: Exclude<AuthVerdict, "ok">): { status: number; headers: Record<string, string>; body: string } {
  if (verdict === "too_many_attempts") {
    return { status: 429, headers: { "Retry-After": "60" }, body: "Too many wrong passwords from this address; wait a minute and try again.\n" };
  }
  return {
    status: 401,
    headers: { "WWW-Authenticate": `Basic realm="${AUTH_REALM}", charset="UTF-8"` },
    body: "This ESPHome Builder needs its user name and password (set with --username and --password).\n",
  };
}
