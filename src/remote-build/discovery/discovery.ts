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
import os from "node:os";
import { isIP } from "node:net";
import type { DiscoveredHost } from "../../domain/remote-build.ts";
import { BuilderError, ErrorCode, errorMessage, invalidArgs } from "../../errors.ts";
import { getLogger } from "../../logger.ts";
import { defaultBonjourFactory, record, type BonjourFactory, type BonjourLike, type BonjourOptions, type BonjourServiceLike, type BonjourBrowserLike } from "../../mdns/bonjour.ts";
import { MAX_DISCOVERED_HOSTS, SERVICE_PROTOCOL, SERVICE_TYPE, encodeTxt, hostFromService, isValidInstanceName, isValidPort, sameHost, type DiscoveryTxt } from "./txt.ts";

const log = getLogger("remote-build.discovery");
const STOP_TIMEOUT_MS = 2_000;
const DEFAULT_REFRESH_MS = 60_000;

export type { DiscoveredHost };

export interface AdvertiseInfo {
  /** mDNS instance name, e.g. `esphome-builder-<dashboard_id first 8 chars>`; also the SRV target label. */
  instanceName: string;
  /** The HTTP (panel) port: the SRV port. */
  port: number;
  txt: DiscoveryTxt;
}

export type DiscoveryEvent = { type: "added"; host: DiscoveredHost } | { type: "removed"; name: string };

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
