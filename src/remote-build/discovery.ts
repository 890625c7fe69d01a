/**
 * mDNS discovery of other builders: advertise this one as
 * `_esphomebuilder._tcp.local` and browse for the others.
 *
 * Discovery only PROPOSES endpoints. Nothing learned here is trusted: any
 * host on the LAN can advertise any name, TXT or address. Trust comes only
 * from the pin: the offloader checks the responder's static key against the
 * expected `pin_sha256` inside the Noise handshake before it sends anything
 * that matters, and a pairing is only ever made after a person compared the
 * fingerprint out of band. A forged advertisement can at worst show a bogus
 * row or make us attempt a handshake that then fails the pin check. So every
 * TXT value from the network is validated and length-capped here, hostile
 * addresses (loopback, multicast, link-local, unspecified) are dropped, and
 * the number of hosts kept in RAM is capped.
 *
 * Wire format (compatible with the upstream Device Builder):
 * - PTR `_esphomebuilder._tcp.local` -> `<instance>._esphomebuilder._tcp.local`
 * - SRV target `<instance>.local` (not the OS hostname), port = the HTTP port
 * - TXT `server_version`, `esphome_version`, `friendly_name`, and
 *   `pin_sha256` + `remote_build_port` only while the peer-link listener is up.
 *
 * I/O happens only in `start()`/`stop()` and in the advertise calls while
 * started; the constructor stores its dependencies. `advertise()` before
 * `start()` records what to publish once started.
 *
 * Liveness: bonjour-service's browser emits `up` once per service and never
 * again while nothing changes, and it never expires entries by itself. So
 * every `refreshIntervalMs` a fresh browser re-queries the network; every
 * answering builder refreshes its `lastSeen`, and a builder not heard from
 * for `staleAfterMs` is removed. A goodbye (TTL 0) removes it at once.
 */
import { EventEmitter } from "node:events";
import { isIP } from "node:net";
import os from "node:os";
import Bonjour from "bonjour-service";
import { BuilderError, ErrorCode, errorMessage, invalidArgs } from "../errors.ts";
import { getLogger } from "../logger.ts";
import { isPin, parsePin } from "./transport/pin.ts";

const log = getLogger("remote-build.discovery");

/** bonjour-service's `type` for `_esphomebuilder._tcp.local` (with `protocol: "tcp"`). */
export const SERVICE_TYPE = "esphomebuilder";
export const SERVICE_PROTOCOL = "tcp";
/** At most this many discovered builders are kept; further new names are ignored. */
export const MAX_DISCOVERED_HOSTS = 64;
/** Longest string taken from a TXT value (in code points). */
export const MAX_TXT_STRING = 128;
/** At most this many addresses are kept per discovered builder. */
export const MAX_HOST_ADDRESSES = 16;
const MAX_TXT_ENTRIES = 128;
/** A DNS character-string holds at most 255 bytes (`key=value`). */
const MAX_TXT_ENTRY_BYTES = 255;
/** A DNS label (the instance name) holds at most 63 bytes. */
const MAX_LABEL_BYTES = 63;
const MAX_HOSTNAME_CHARS = 255;
const DEFAULT_REFRESH_MS = 60_000;
const STOP_TIMEOUT_MS = 2_000;

const PORT_RE = /^[0-9]{1,5}$/;
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/gu;
// eslint-disable-next-line no-control-regex
const HAS_CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/u;

// ---------------------------------------------------------------------------
// Shapes

/** The TXT record this builder advertises. */
export interface DiscoveryTxt {
  server_version: string;
  esphome_version: string;
  friendly_name: string;
  /** Only while the peer-link listener is bound; always together with `remote_build_port`. */
  pin_sha256?: string;
  /** The port the peer-link listener actually bound. */
  remote_build_port?: number;
}

export interface AdvertiseInfo {
  /** mDNS instance name, e.g. `esphome-builder-<dashboard_id first 8 chars>`; also the SRV target label. */
  instanceName: string;
  /** The HTTP (panel) port: the SRV port. */
  port: number;
  txt: DiscoveryTxt;
}

/** A TXT record read from the network, validated. */
export interface DecodedTxt {
  server_version: string;
  esphome_version: string;
  friendly_name: string;
  /** 64 lowercase hex digits, else null. */
  pin_sha256: string | null;
  /** 1..65535, else null. */
  remote_build_port: number | null;
}

import type { DiscoveredHost } from "../domain/remote-build.ts";

export type { DiscoveredHost };

export type DiscoveryEvent = { type: "added"; host: DiscoveredHost } | { type: "removed"; name: string };

// The slice of bonjour-service's API this module uses; the real library and
// the tests' fake both provide it.

export interface BonjourOptions {
  /** IPv4 address of the interface to join the group on and send from. */
  interface?: string;
  /** Address the UDP socket binds to. */
  bind?: string;
}

export interface BonjourPublishConfig {
  name: string;
  type: string;
  protocol: "tcp";
  port: number;
  host: string;
  txt: Record<string, string>;
  probe: boolean;
}

export interface BonjourServiceLike {
  /** Sends the goodbye; called as `stop(callback)` (typed `CallableFunction` by bonjour-service). */
  stop: CallableFunction;
}

export type BrowserEventName = "up" | "down" | "txt-update" | "srv-update";

export interface BonjourBrowserLike {
  on(event: BrowserEventName, listener: (service: unknown) => void): unknown;
  removeAllListeners(): unknown;
  stop(): void;
}

export interface BonjourLike {
  publish(config: BonjourPublishConfig): BonjourServiceLike;
  find(config: { type: string; protocol: "tcp" }, onup: (service: unknown) => void): BonjourBrowserLike;
  destroy(callback?: () => void): void;
}

export type BonjourFactory = (opts: BonjourOptions, onError: (err: unknown) => void) => BonjourLike;

export interface DiscoveryDeps {
  /** Creates the mDNS stack; defaults to bonjour-service. Tests inject a fake. */
  bonjourFactory?: BonjourFactory;
  /**
   * IPv4 address of the one interface to use for multicast (join, send, and
   * the advertised interface). Unset: bonjour-service's default, every
   * interface. Must be present on this host when `start()` runs.
   */
  interface?: string;
  /** Socket bind address; default `0.0.0.0` when `interface` is set (a socket bound to a unicast address receives no multicast on Linux). */
  bind?: string;
  /** Browse for other builders (default true). */
  browse?: boolean;
  onChange?: (event: DiscoveryEvent) => void;
  /** Clock in epoch ms (tests pin it). */
  now?: () => number;
  /** How often to re-query the network (default 60 s). */
  refreshIntervalMs?: number;
  /** Remove a builder not heard from for this long (default 3 x refresh). */
  staleAfterMs?: number;
  /** Cap on kept hosts (default 64). */
  maxHosts?: number;
}

// ---------------------------------------------------------------------------
// Pure helpers

function utf8Length(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

/** Drop control characters and keep at most `maxChars` code points. */
function cleanString(value: string, maxChars = MAX_TXT_STRING): string {
  const stripped = value.replace(CONTROL_RE, "");
  const points = Array.from(stripped);
  return points.length <= maxChars ? stripped : points.slice(0, maxChars).join("");
}

/** Trim whole code points until `key=value` fits one DNS character-string. */
function fitEntry(key: string, value: string): string {
  const budget = MAX_TXT_ENTRY_BYTES - utf8Length(key) - 1;
  if (utf8Length(value) <= budget) return value;
  const points = Array.from(value);
  while (points.length > 0 && utf8Length(points.join("")) > budget) points.pop();
  return points.join("");
}

function isValidPort(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 1 && value <= 65535;
}

/**
 * The TXT key/values to publish. Strings are stripped of control characters
 * and capped (128 code points, and 255 bytes per `key=value`). A pin must be
 * 64 lowercase hex digits and the port 1..65535, and they come together
 * (both while the peer-link listener is bound, neither otherwise).
 */
export function encodeTxt(txt: DiscoveryTxt): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of ["server_version", "esphome_version", "friendly_name"] as const) {
    const value: unknown = txt[key];
    if (typeof value !== "string") throw invalidArgs(`TXT ${key} must be a string`);
    out[key] = fitEntry(key, cleanString(value));
  }
  const hasPin = txt.pin_sha256 !== undefined;
  const hasPort = txt.remote_build_port !== undefined;
  if (hasPin !== hasPort) throw invalidArgs("TXT pin_sha256 and remote_build_port go together");
  if (txt.pin_sha256 !== undefined && txt.remote_build_port !== undefined) {
    if (!isPin(txt.pin_sha256)) throw invalidArgs("TXT pin_sha256 must be a pin in canonical form: 64 lowercase hex digits");
    if (!isValidPort(txt.remote_build_port)) throw invalidArgs("TXT remote_build_port must be 1..65535");
    out.pin_sha256 = txt.pin_sha256;
    out.remote_build_port = String(txt.remote_build_port);
  }
  return out;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Bytes as UTF-8, or undefined when they are not valid UTF-8. */
function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/** A TXT value (string or bytes) as text; undefined for anything else or invalid UTF-8. */
function valueText(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (value instanceof Uint8Array) return decodeUtf8(value);
  return undefined;
}

/**
 * Key -> value from a TXT record in either form bonjour-service gives:
 * the raw entries (`rawTxt`: an array of `key=value` byte strings) or the
 * decoded object (`txt`). Keys are case-insensitive and the first
 * occurrence wins (RFC 6763 §6.4); a value that is not valid UTF-8 counts
 * as absent; an entry without `=` has no value.
 */
function txtEntries(record: unknown): Map<string, string | undefined> {
  const entries = new Map<string, string | undefined>();
  const put = (key: string, value: string | undefined): void => {
    const k = key.toLowerCase();
    if (k === "" || entries.has(k)) return;
    entries.set(k, value);
  };
  if (Array.isArray(record)) {
    for (const item of record.slice(0, MAX_TXT_ENTRIES)) {
      const bytes = typeof item === "string" ? Buffer.from(item, "utf8") : item instanceof Uint8Array ? item : undefined;
      if (bytes === undefined) continue;
      const eq = bytes.indexOf(0x3d);
      const keyBytes = eq === -1 ? bytes : bytes.subarray(0, eq);
      const key = decodeUtf8(keyBytes);
      if (key === undefined) continue;
      put(key, eq === -1 ? undefined : decodeUtf8(bytes.subarray(eq + 1)));
    }
  } else if (record !== null && typeof record === "object") {
    for (const [key, value] of Object.entries(record).slice(0, MAX_TXT_ENTRIES)) {
      put(key, valueText(value));
    }
  }
  return entries;
}

/** Validate a TXT record from the network (raw entries or bonjour-service's decoded object). */
export function decodeTxt(record: unknown): DecodedTxt {
  const entries = txtEntries(record);
  const str = (key: string): string => {
    const value = entries.get(key);
    return value === undefined ? "" : cleanString(value);
  };
  const pinRaw = entries.get("pin_sha256");
  const portRaw = entries.get("remote_build_port");
  const port = portRaw !== undefined && PORT_RE.test(portRaw) ? Number(portRaw) : null;
  return {
    server_version: str("server_version"),
    esphome_version: str("esphome_version"),
    friendly_name: str("friendly_name"),
    pin_sha256: parsePin(pinRaw),
    remote_build_port: port !== null && isValidPort(port) ? port : null,
  };
}

function isUsableAddress(value: unknown): value is string {
  if (typeof value !== "string" || value.length > 64) return false;
  const family = isIP(value);
  if (family === 4) {
    const first = Number(value.split(".")[0]);
    // 0/8 unspecified, 127/8 loopback, 169.254/16 link-local, 224/4 multicast and above.
    return first !== 0 && first !== 127 && first < 224 && !value.startsWith("169.254.");
  }
  if (family === 6) {
    const v = value.toLowerCase();
    if (v === "::" || v === "::1") return false;
    // fe80::/10 link-local (unusable without a zone), ff00::/8 multicast, IPv4-mapped.
    return !/^fe[89ab]/.test(v) && !v.startsWith("ff") && !v.startsWith("::ffff:");
  }
  return false;
}

function isValidInstanceName(name: unknown): name is string {
  return (
    typeof name === "string" &&
    name.length > 0 &&
    utf8Length(name) <= MAX_LABEL_BYTES &&
    !name.includes(".") &&
    !HAS_CONTROL_RE.test(name)
  );
}

function record(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === "object" ? (value as Record<string, unknown>) : undefined;
}

/**
 * A discovered builder from one of bonjour-service's browser services
 * (`{name, host, port, addresses, txt, rawTxt, referer, type, protocol}`),
 * or null when the service is not a usable builder advertisement (no or bad
 * name, bad port, another service type). TXT comes from `rawTxt` when
 * present (so invalid UTF-8 is seen), else from `txt`.
 */
export function hostFromService(service: unknown): DiscoveredHost | null {
  const s = record(service);
  if (s === undefined) return null;
  const { name, port } = s;
  if (!isValidInstanceName(name)) return null;
  if (!isValidPort(port)) return null;
  if (s.type !== undefined && s.type !== SERVICE_TYPE) return null;
  if (s.protocol !== undefined && s.protocol !== SERVICE_PROTOCOL) return null;

  let hostname = typeof s.host === "string" ? s.host : "";
  if (hostname.endsWith(".")) hostname = hostname.slice(0, -1);
  hostname = cleanString(hostname, MAX_HOSTNAME_CHARS);

  const addresses: string[] = [];
  const addrList = Array.isArray(s.addresses) ? (s.addresses as unknown[]) : [];
  for (const addr of addrList.slice(0, 4 * MAX_HOST_ADDRESSES)) {
    if (addresses.length >= MAX_HOST_ADDRESSES) break;
    if (isUsableAddress(addr) && !addresses.includes(addr)) addresses.push(addr);
  }
  if (addresses.length === 0) {
    const source = record(s.referer)?.address;
    if (isUsableAddress(source)) addresses.push(source);
  }

  const txt = decodeTxt(Array.isArray(s.rawTxt) ? s.rawTxt : s.txt);
  return { name, hostname, port, addresses, ...txt };
}

function sameHost(a: DiscoveredHost, b: DiscoveredHost): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** bonjour-service over the real network. */
export const defaultBonjourFactory: BonjourFactory = (opts, onError) => {
  // bonjour-service passes its constructor options on to multicast-dns
  // (`interface`, `bind`) although its typings only name ServiceConfig keys.
  const mdnsOpts: Partial<Bonjour.ServiceConfig> & BonjourOptions = { ...opts };
  const bonjour = new Bonjour(mdnsOpts, onError);
  // multicast-dns emits 'error' (EADDRINUSE, EACCES on bind) on its emitter,
  // which bonjour-service does not listen to: unhandled, it would crash the
  // process. The emitter is not public API, so reach it defensively.
  const mdns = record(record(bonjour)?.server)?.mdns;
  if (mdns instanceof EventEmitter) {
    mdns.on("error", onError);
  } else {
    log.warning("bonjour-service internals changed: mDNS socket errors are not caught");
  }
  return bonjour;
};

// ---------------------------------------------------------------------------
// Discovery

interface Entry {
  host: DiscoveredHost;
  lastSeen: number;
}

function withTimeout(run: (done: () => void) => void, ms: number, what: string): Promise<void> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      log.warning(`${what} did not finish within ${ms} ms`);
      finish();
    }, ms);
    try {
      run(finish);
    } catch (err) {
      log.warning(`${what} failed: ${errorMessage(err)}`);
      finish();
    }
  });
}

export class Discovery {
  private readonly deps: DiscoveryDeps;
  private readonly factory: BonjourFactory;
  private readonly now: () => number;
  private readonly refreshMs: number;
  private readonly staleMs: number;
  private readonly maxHosts: number;

  private bonjour: BonjourLike | undefined;
  private browser: BonjourBrowserLike | undefined;
  private published: BonjourServiceLike | undefined;
  private publishedKey: string | undefined;
  private desired: { instanceName: string; port: number; txt: Record<string, string> } | undefined;
  private selfName: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly hostMap = new Map<string, Entry>();
  private capWarned = false;
  private chain: Promise<void> = Promise.resolve();

  constructor(deps: DiscoveryDeps = {}) {
    this.deps = deps;
    this.factory = deps.bonjourFactory ?? defaultBonjourFactory;
    this.now = deps.now ?? Date.now;
    this.refreshMs = deps.refreshIntervalMs ?? DEFAULT_REFRESH_MS;
    this.staleMs = deps.staleAfterMs ?? 3 * this.refreshMs;
    this.maxHosts = deps.maxHosts ?? MAX_DISCOVERED_HOSTS;
  }

  get running(): boolean {
    return this.bonjour !== undefined;
  }

  /** Discovered builders (copies), for `initial_state.hosts`. */
  hosts(): DiscoveredHost[] {
    return [...this.hostMap.values()].map((e) => ({ ...e.host, addresses: [...e.host.addresses] }));
  }

  /** Open the mDNS socket, browse (unless disabled) and publish what `advertise()` asked for. */
  start(): Promise<void> {
    return this.serial(async () => {
      if (this.bonjour !== undefined) return;
      const opts: BonjourOptions = {};
      const iface = this.deps.interface;
      if (iface !== undefined) {
        if (isIP(iface) !== 4) throw invalidArgs(`mDNS interface must be an IPv4 address, got ${iface}`);
        const present = Object.values(os.networkInterfaces()).some((list) => list?.some((a) => a.address === iface));
        if (!present) {
          throw new BuilderError(ErrorCode.Unavailable, `mDNS interface ${iface} is not an address of this host`);
        }
        opts.interface = iface;
        opts.bind = this.deps.bind ?? "0.0.0.0";
      } else if (this.deps.bind !== undefined) {
        opts.bind = this.deps.bind;
      }
      this.bonjour = this.factory(opts, (err) => {
        log.warning(`mDNS: ${errorMessage(err)}`);
      });
      if (this.deps.browse !== false) {
        this.openBrowser();
        this.timer = setInterval(() => {
          this.refresh();
        }, this.refreshMs);
        this.timer.unref();
      }
      await this.syncPublished();
      log.info(`mDNS discovery started${iface === undefined ? "" : ` on ${iface}`}`);
    });
  }

  /** Send a goodbye for our advertisement, stop browsing, close the socket and forget every host. */
  stop(): Promise<void> {
    return this.serial(async () => {
      const bonjour = this.bonjour;
      if (bonjour === undefined) return;
      if (this.timer !== undefined) clearInterval(this.timer);
      this.timer = undefined;
      await this.unpublish();
      this.closeBrowser();
      this.bonjour = undefined;
      await withTimeout((done) => {
        bonjour.destroy(done);
      }, STOP_TIMEOUT_MS, "closing the mDNS socket");
      for (const name of [...this.hostMap.keys()]) this.removeHost(name);
      this.capWarned = false;
    });
  }

  /**
   * Advertise this builder (or replace the advertisement). Before `start()`
   * this only records what to publish. Throws `invalid_args` on a bad name,
   * port or TXT.
   */
  advertise(info: AdvertiseInfo): Promise<void> {
    let txt: Record<string, string>;
    try {
      if (!isValidInstanceName(info.instanceName)) {
        throw invalidArgs("mDNS instance name must be 1..63 bytes without dots or control characters");
      }
      if (!isValidPort(info.port)) throw invalidArgs("advertised port must be 1..65535");
      txt = encodeTxt(info.txt);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    return this.serial(async () => {
      this.desired = { instanceName: info.instanceName, port: info.port, txt };
      this.selfName = info.instanceName;
      // A row under our own name (a clash, or seen before advertising) is not another builder.
      this.removeHost(info.instanceName.toLowerCase());
      await this.syncPublished();
    });
  }

  /**
   * Replace the advertised TXT (the listener was bound or unbound, or the
   * identity rotated), keeping the name and port. Re-advertises (goodbye,
   * then the new records) only when the encoded TXT changed. Rejects when
   * nothing was advertised.
   */
  updateTxt(txt: DiscoveryTxt): Promise<void> {
    let encoded: Record<string, string>;
    try {
      encoded = encodeTxt(txt);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    return this.serial(async () => {
      const desired = this.desired;
      if (desired === undefined) throw new BuilderError(ErrorCode.Unavailable, "nothing is advertised: call advertise() first");
      this.desired = { ...desired, txt: encoded };
      await this.syncPublished();
    });
  }

  /** Withdraw the advertisement (goodbye packet); browsing goes on. */
  unadvertise(): Promise<void> {
    return this.serial(async () => {
      this.desired = undefined;
      await this.syncPublished();
    });
  }

  /** Re-query the network now and drop builders not heard from for `staleAfterMs`. */
  refresh(): void {
    if (this.bonjour === undefined || this.deps.browse === false) return;
    const cutoff = this.now() - this.staleMs;
    for (const [key, entry] of [...this.hostMap]) {
      if (entry.lastSeen < cutoff) {
        log.debug(() => `${entry.host.name} not heard from since ${new Date(entry.lastSeen).toISOString()}`);
        this.removeHost(key);
      }
    }
    this.closeBrowser();
    this.openBrowser();
  }

  // ---- internals

  private serial(task: () => Promise<void>): Promise<void> {
    const run = this.chain.then(task);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Make the published service match `desired` (goodbye first, so caches drop the old TXT). */
  private async syncPublished(): Promise<void> {
    const bonjour = this.bonjour;
    if (bonjour === undefined) return;
    const desired = this.desired;
    const key = desired === undefined ? undefined : JSON.stringify([desired.instanceName, desired.port, desired.txt]);
    if (key === this.publishedKey && (this.published !== undefined) === (desired !== undefined)) return;
    await this.unpublish();
    if (desired === undefined) return;
    try {
      this.published = bonjour.publish({
        name: desired.instanceName,
        type: SERVICE_TYPE,
        protocol: SERVICE_PROTOCOL,
        port: desired.port,
        host: `${desired.instanceName}.local`,
        txt: desired.txt,
        // The name embeds 48 random bits of the dashboard_id, so it is unique
        // by construction; bonjour-service's probe would add ~1 s and, on a
        // clash, send a goodbye for the OTHER host's name and log to stdout.
        probe: false,
      });
      this.publishedKey = key;
      log.info(
        `advertising ${desired.instanceName} port ${desired.port}` +
          (desired.txt.pin_sha256 === undefined ? " (build server off)" : ` (build server port ${desired.txt.remote_build_port ?? "?"})`),
      );
    } catch (err) {
      log.warning(`mDNS advertise failed: ${errorMessage(err)}`);
    }
  }

  private async unpublish(): Promise<void> {
    const service = this.published;
    this.published = undefined;
    this.publishedKey = undefined;
    if (service === undefined) return;
    await withTimeout((done) => {
      Reflect.apply(service.stop, service, [done]);
    }, STOP_TIMEOUT_MS, "the mDNS goodbye");
  }

  private openBrowser(): void {
    const bonjour = this.bonjour;
    if (bonjour === undefined) return;
    try {
      const browser = bonjour.find({ type: SERVICE_TYPE, protocol: SERVICE_PROTOCOL }, (service) => {
        if (this.browser === browser) this.onSeen(service);
      });
      this.browser = browser;
      const seen = (service: unknown): void => {
        if (this.browser === browser) this.onSeen(service);
      };
      browser.on("txt-update", seen);
      browser.on("srv-update", seen);
      browser.on("down", (service) => {
        if (this.browser !== browser) return;
        const name = record(service)?.name;
        if (typeof name === "string") this.removeHost(name.toLowerCase());
      });
    } catch (err) {
      log.warning(`mDNS browse failed: ${errorMessage(err)}`);
    }
  }

  private closeBrowser(): void {
    const browser = this.browser;
    this.browser = undefined;
    if (browser === undefined) return;
    try {
      browser.stop();
      browser.removeAllListeners();
    } catch (err) {
      log.debug(() => `stopping the mDNS browser: ${errorMessage(err)}`);
    }
  }

  private onSeen(service: unknown): void {
    const host = hostFromService(service);
    if (host === null) {
      log.debug(() => `ignoring an invalid ${SERVICE_TYPE} advertisement`);
      return;
    }
    const key = host.name.toLowerCase();
    if (this.selfName !== undefined && key === this.selfName.toLowerCase()) return;
    const existing = this.hostMap.get(key);
    if (existing === undefined && this.hostMap.size >= this.maxHosts) {
      if (!this.capWarned) {
        this.capWarned = true;
        log.warning(`more than ${this.maxHosts} builders on the network; ignoring further ones`);
      }
      return;
    }
    this.hostMap.set(key, { host, lastSeen: this.now() });
    if (existing !== undefined && sameHost(existing.host, host)) return;
    this.emit({ type: "added", host: { ...host, addresses: [...host.addresses] } });
  }

  private removeHost(key: string): void {
    const entry = this.hostMap.get(key);
    if (entry === undefined) return;
    this.hostMap.delete(key);
    if (this.hostMap.size < this.maxHosts) this.capWarned = false;
    this.emit({ type: "removed", name: entry.host.name });
  }

  private emit(event: DiscoveryEvent): void {
    try {
      this.deps.onChange?.(event);
    } catch (err) {
      log.error(`discovery listener threw: ${errorMessage(err)}`);
    }
  }
}
