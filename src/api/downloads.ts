/**
 * Short-lived, single-use download tokens. A panel asks for a token over the
 * authenticated WebSocket and then fetches the file over plain HTTP, so the
 * browser can save it; the token names exactly one file and works once.
 */
import { randomBytes } from "node:crypto";

export const DOWNLOAD_TOKEN_TTL_MS = 60_000;
const MAX_OUTSTANDING = 256;

export interface DownloadGrant {
  configuration: string;
  file: string;
}

export class DownloadTokens {
  readonly #now: () => number;
  readonly #ttlMs: number;
  readonly #tokens = new Map<string, DownloadGrant & { expires: number }>();

  constructor(opts: { now?: () => number; ttlMs?: number } = {}) {
    this.#now = opts.now ?? Date.now;
    this.#ttlMs = opts.ttlMs ?? DOWNLOAD_TOKEN_TTL_MS;
  }

  issue(grant: DownloadGrant): { token: string; expires_in: number } {
    this.#sweep();
    if (this.#tokens.size >= MAX_OUTSTANDING) {
      const oldest = this.#tokens.keys().next().value;
      if (oldest !== undefined) this.#tokens.delete(oldest);
    }
    const token = randomBytes(24).toString("base64url");
    this.#tokens.set(token, { ...grant, expires: this.#now() + this.#ttlMs });
    return { token, expires_in: Math.round(this.#ttlMs / 1000) };
  }

  /** Consumes a token: valid once, before it expires. */
  redeem(token: string): DownloadGrant | null {
    const grant = this.#tokens.get(token);
    if (grant === undefined) return null;
    this.#tokens.delete(token);
    if (grant.expires < this.#now()) return null;
    return { configuration: grant.configuration, file: grant.file };
  }

  #sweep(): void {
    const now = this.#now();
    for (const [token, grant] of this.#tokens) if (grant.expires < now) this.#tokens.delete(token);
  }
}
