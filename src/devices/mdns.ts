/**
 * Devices announcing themselves: a browser for `_esphomelib._tcp`, whose
 * instance name is the device's name and whose TXT carries `version` (and
 * `project_name`, `project_version` when set). An announcement counts as the
 * device being online; a goodbye only makes the prober look again.
 *
 * bonjour-service keeps services it saw and never announces them again, so a
 * fresh browser re-queries every `refreshMs` (a device that rebooted without a
 * goodbye is heard again). The stack is made by the injected factory (the
 * same one the builder's own discovery uses); under `--no-mdns` none is made.
 */
import { errorMessage } from "../errors.ts";
import { getLogger } from "../logger.ts";
import { defaultBonjourFactory, type BonjourBrowserLike, type BonjourFactory, type BonjourLike } from "../mdns/bonjour.ts";

const log = getLogger("devices.mdns");

export interface Announcement {
  /** The device's name (the mDNS instance name, lowercased). */
  name: string;
  version: string | null;
  projectName: string | null;
  projectVersion: string | null;
}

export interface DeviceMdnsDeps {
  bonjourFactory?: BonjourFactory;
  refreshMs: number;
  onUp: (announcement: Announcement) => void;
  onDown: (name: string) => void;
  setInterval?: (fn: () => void, ms: number) => { unref?: () => void };
  clearInterval?: (handle: unknown) => void;
}

const MAX_TEXT = 64;

function txtValue(txt: unknown, key: string): string | null {
  if (txt === null || typeof txt !== "object") return null;
  const raw = (txt as Record<string, unknown>)[key];
  const text = typeof raw === "string" ? raw : raw instanceof Uint8Array ? Buffer.from(raw).toString("utf8") : null;
  if (text === null) return null;
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\u0000-\u001f\u007f]/g, "").slice(0, MAX_TEXT);
  return clean === "" ? null : clean;
}

/** One service from bonjour-service as an announcement; null when it has no usable name. */
export function parseAnnouncement(service: unknown): Announcement | null {
  if (service === null || typeof service !== "object") return null;
  const s = service as { name?: unknown; txt?: unknown };
  if (typeof s.name !== "string" || s.name === "" || s.name.length > 63) return null;
  return {
    name: s.name.toLowerCase(),
    version: txtValue(s.txt, "version"),
    projectName: txtValue(s.txt, "project_name"),
    projectVersion: txtValue(s.txt, "project_version"),
  };
}

export class DeviceMdns {
  readonly #deps: DeviceMdnsDeps;
  #bonjour: BonjourLike | undefined;
  #browser: BonjourBrowserLike | undefined;
  #timer: unknown;

  constructor(deps: DeviceMdnsDeps) {
    this.#deps = deps;
  }

  start(): void {
    try {
      this.#bonjour = (this.#deps.bonjourFactory ?? defaultBonjourFactory)({}, (err) => {
        log.warning(`mDNS error while browsing for devices: ${errorMessage(err)}`);
      });
    } catch (err) {
      log.warning(`mDNS is not available (${errorMessage(err)}); devices are found by their addresses only`);
      return;
    }
    this.#browse();
    const every = this.#deps.setInterval ?? ((fn: () => void, ms: number) => setInterval(fn, ms));
    const timer = every(() => { this.#browse(); }, this.#deps.refreshMs);
    timer.unref?.();
    this.#timer = timer;
  }

  stop(): void {
    (this.#deps.clearInterval ?? ((h: unknown) => { clearInterval(h as NodeJS.Timeout); }))(this.#timer);
    this.#timer = undefined;
    this.#stopBrowser();
    this.#bonjour?.destroy();
    this.#bonjour = undefined;
  }

  #stopBrowser(): void {
    const browser = this.#browser;
    this.#browser = undefined;
    if (browser === undefined) return;
    browser.removeAllListeners();
    try {
      browser.stop();
    } catch {
      // already stopped
    }
  }

  #browse(): void {
    const bonjour = this.#bonjour;
    if (bonjour === undefined) return;
    this.#stopBrowser();
    try {
      const browser = bonjour.find({ type: "esphomelib", protocol: "tcp" }, (service) => {
        if (this.#browser === browser) this.#up(service);
      });
      this.#browser = browser;
      browser.on("txt-update", (service) => {
        if (this.#browser === browser) this.#up(service);
      });
      browser.on("down", (service) => {
        if (this.#browser !== browser) return;
        const a = parseAnnouncement(service);
        if (a !== null) this.#deps.onDown(a.name);
      });
    } catch (err) {
      log.warning(`browsing for devices failed: ${errorMessage(err)}`);
    }
  }

  #up(service: unknown): void {
    const a = parseAnnouncement(service);
    if (a !== null) this.#deps.onUp(a);
  }
}
