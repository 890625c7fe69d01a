/**
 * The DNS-rebinding guard: which names a request may address this builder by
 * (its Host header), and which pages may open its WebSockets (their Origin).
 *
 * Under DNS rebinding a page on `evil.example` makes that name resolve to this
 * builder, so the browser sends `Host: evil.example` and `Origin:
 * http://evil.example`: comparing the two proves nothing. What the attacker
 * cannot choose is the name itself, so every request's Host must be one this
 * builder answers to: an IP literal (no DNS is involved, so nothing can be
 * rebound), `localhost` and `*.localhost` (browsers resolve them to loopback
 * themselves), this machine's host name (and `<name>.local`), and the names
 * the user lists with `--allowed-hosts`. A browser's Origin must name one of
 * those too, with the Host it was sent to (same origin).
 *
 * Forwarded-host headers are read only from peers named trusted proxies (the
 * add-on's ingress proxy, `--trusted-proxies`); from anyone else they are
 * ignored. Requests the ingress proxy forwards carry the user's Home Assistant
 * name: Home Assistant has authenticated the user, so they are not held to the
 * list, only their Origin to their forwarded Host.
 */
import type { IncomingHttpHeaders } from "node:http";
import { isIP } from "node:net";
import os from "node:os";
import { hostnameOf, normaliseAllowedHost } from "../hostnames.ts";
import { normalizePeer } from "./peers.ts";

export { hostnameOf, normaliseAllowedHost };

export interface HostPolicyOptions {
  /** Names the user lets browsers use besides the built-in ones: exact (`builder.lan`) or a subdomain wildcard (`*.lan`). */
  allowedHosts?: readonly string[];
  /** Peer addresses whose `X-Forwarded-Host` is believed (a reverse proxy in front of the builder). */
  trustedProxies?: readonly string[];
  /** Peer addresses (the add-on's ingress proxy) exempt from the name list; their Origin must match their forwarded Host. */
  ingressProxies?: readonly string[];
  /** Exact Origin values always accepted (tests, embedding pages the user names). */
  trustedOrigins?: readonly string[];
  /** This machine's host name (injected for tests). */
  hostname?: string;
}

/** What the guard reads of a request (a Node `IncomingMessage` is one). */
export interface RequestLike {
  readonly headers: IncomingHttpHeaders;
  readonly socket: { readonly remoteAddress?: string | undefined };
}

export type HostVerdict = { ok: true } | { ok: false; reason: string };

export class HostPolicy {
  readonly #allowed: ReadonlySet<string>;
  readonly #wildcards: readonly string[];
  readonly #trustedProxies: ReadonlySet<string>;
  readonly #ingress: ReadonlySet<string>;
  readonly #trustedOrigins: ReadonlySet<string>;

  constructor(opts: HostPolicyOptions = {}) {
    const machine = (opts.hostname ?? os.hostname()).toLowerCase();
    const names = new Set<string>(["localhost"]);
    if (hostnameOf(machine) !== null) {
      names.add(machine);
      if (!machine.includes(".")) names.add(`${machine}.local`);
    }
    const wildcards: string[] = [];
    for (const entry of opts.allowedHosts ?? []) {
      const normal = normaliseAllowedHost(entry);
      if (normal === null) continue;
      if (normal.startsWith("*.")) wildcards.push(normal.slice(1));
      else names.add(normal);
    }
    this.#allowed = names;
    this.#wildcards = wildcards;
    this.#trustedProxies = new Set((opts.trustedProxies ?? []).map((a) => normalizePeer(a)));
    this.#ingress = new Set((opts.ingressProxies ?? []).map((a) => normalizePeer(a)));
    this.#trustedOrigins = new Set(opts.trustedOrigins ?? []);
  }

  /** Whether a browser may address this builder by `name` (a host name without port). */
  nameAllowed(name: string): boolean {
    if (isIP(name) !== 0) return true;
    if (name === "localhost" || name.endsWith(".localhost")) return true;
    if (this.#allowed.has(name)) return true;
    return this.#wildcards.some((suffix) => name.endsWith(suffix));
  }

  #fromIngress(req: RequestLike): boolean {
    return this.#ingress.has(normalizePeer(req.socket.remoteAddress));
  }

  /** The Host the client addressed: the forwarded one from a trusted proxy, else the request's own. */
  effectiveHost(req: RequestLike): string | undefined {
    const peer = normalizePeer(req.socket.remoteAddress);
    if (this.#trustedProxies.has(peer) || this.#ingress.has(peer)) {
      const forwarded = req.headers["x-forwarded-host"];
      const first = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(",")[0]?.trim();
      if (first !== undefined && first !== "") return first;
    }
    return req.headers.host;
  }

  /** The Host check, for every request and WebSocket upgrade. */
  checkHost(req: RequestLike): HostVerdict {
    if (this.#fromIngress(req)) return { ok: true };
    const host = this.effectiveHost(req);
    // HTTP/1.0 clients may send no Host: they are not browsers, and browsers always send one.
    if (host === undefined) return { ok: true };
    const name = hostnameOf(host);
    if (name === null) return { ok: false, reason: `the Host header '${printable(host)}' is not a host name` };
    if (!this.nameAllowed(name)) {
      return {
        ok: false,
        reason: `this builder does not answer to the name '${name}'. Open it by its IP address or localhost, or add the name with --allowed-hosts ${name}`,
      };
    }
    return { ok: true };
  }

  /**
   * The Origin check: no Origin (not a browser) passes; a browser's must be a
   * trusted one, or name an allowed host and be the Host it was sent to.
   */
  checkOrigin(req: RequestLike): HostVerdict {
    const origin = req.headers.origin;
    if (origin === undefined) return { ok: true };
    if (this.#trustedOrigins.has(origin)) return { ok: true };
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      return { ok: false, reason: `the Origin '${printable(origin)}' is not a URL` };
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") return { ok: false, reason: `pages from '${printable(origin)}' may not use this builder` };
    const host = this.effectiveHost(req);
    let addressed: string | null = null;
    try {
      // Both sides through the same URL parser: case, default ports and IPv6 brackets compare equal.
      if (host !== undefined) addressed = new URL(`${url.protocol}//${host.trim()}`).host;
    } catch {
      addressed = null;
    }
    if (addressed !== url.host) return { ok: false, reason: `pages from '${printable(origin)}' may not use this builder (it was addressed as '${printable(host ?? "")}')` };
    if (this.#fromIngress(req)) return { ok: true };
    const name = hostnameOf(url.host);
    if (name === null || !this.nameAllowed(name)) return { ok: false, reason: `pages from '${printable(origin)}' may not use this builder` };
    return { ok: true };
  }
}

/** A header value for a log line or error body: printable ASCII, cut short. */
function printable(value: string): string {
  const clean = value.replace(/[^\x20-\x7e]/g, "?");
  return clean.length > 100 ? `${clean.slice(0, 100)}…` : clean;
}
