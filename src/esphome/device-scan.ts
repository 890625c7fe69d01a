/**
 * Which YAML files in the config dir are devices, and what the dashboard shows
 * for each, kept in RAM and refreshed by a directory watcher. Reading one
 * file's fields is `device-yaml.ts`.
 */
import fs, { type FSWatcher } from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import type { Device } from "../domain/device.ts";
import type { EventBus } from "../events.ts";
import { errorMessage } from "../errors.ts";
import { getLogger } from "../logger.ts";
import { isSecretsFileName } from "./configuration.ts";
import { compareStrings, fallbackDevice, parseDevice } from "./device-yaml.ts";

const log = getLogger("device-scan");

export type { Device };

/** Larger files are listed with an error instead of being parsed (configs are a few KiB). */
const MAX_YAML_BYTES = 4 * 1024 * 1024;

function isYamlFileName(name: string): boolean {
  return (name.endsWith(".yaml") || name.endsWith(".yml")) && !name.startsWith(".") && !isSecretsFileName(name);
}

/**
 * Device YAMLs in `configDir`, like esphome's `list_yaml_files`: top level only
 * (`packages/`, `.esphome/`, `archive/` are never scanned), `.yaml`/`.yml`,
 * no secrets file, no dot-files; sorted by code unit.
 */
export async function listYamlFiles(configDir: string): Promise<string[]> {
  const entries = await fsp.readdir(configDir, { withFileTypes: true });
  return entries
    .filter((e) => (e.isFile() || e.isSymbolicLink()) && isYamlFileName(e.name))
    .map((e) => e.name)
    .sort(compareStrings);
}

export interface DeviceScannerDeps {
  configDir: string;
  bus: EventBus;
  /** Watch the config dir and rescan on changes (default true). */
  watch?: boolean;
  /** Quiet period after the last file event before rescanning (default 250 ms). */
  debounceMs?: number;
}

interface CacheEntry {
  /** `mtimeMs:size:ino` of the file the device was parsed from. */
  key: string;
  device: Device;
}

const DEFAULT_DEBOUNCE_MS = 250;
/** Parallel stat/read calls during a scan. */
const SCAN_CONCURRENCY = 16;

function errnoCode(err: unknown): string | undefined {
  return err instanceof Error && "code" in err && typeof err.code === "string" ? err.code : undefined;
}

function isGone(err: unknown): boolean {
  const code = errnoCode(err);
  return code === "ENOENT" || code === "ENOTDIR";
}

function sameDevice(a: Device, b: Device): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function freezeDevice(device: Device): Device {
  Object.freeze(device.loaded_integrations);
  return Object.freeze(device);
}

/**
 * The in-RAM device index. Devices are frozen: listeners and API handlers share
 * them. Events: `device_updated` when a device is new or any of its fields
 * changed (the initial scan therefore announces every device),
 * `device_removed` when its file is gone; nothing when a rescan changes nothing.
 */
export class DeviceScanner {
  readonly #configDir: string;
  readonly #bus: EventBus;
  readonly #watch: boolean;
  readonly #debounceMs: number;

  /** Insertion order is sorted configuration order (rebuilt per scan). */
  #cache = new Map<string, CacheEntry>();
  /** Stat key at which an unreadable file was last warned about, so a rescan does not repeat the warning. */
  readonly #warned = new Map<string, string>();
  #watcher: FSWatcher | null = null;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  #queued: Promise<void> | null = null;
  #stopped = false;

  constructor(deps: DeviceScannerDeps) {
    this.#configDir = path.resolve(deps.configDir);
    this.#bus = deps.bus;
    this.#watch = deps.watch ?? true;
    this.#debounceMs = deps.debounceMs ?? DEFAULT_DEBOUNCE_MS;
  }

  /**
   * Initial scan, then (unless `watch: false`) a non-recursive watch on the
   * config dir. The watcher is set up first so edits made during the initial
   * scan are not missed. A watcher that cannot start (inotify limits) is
   * logged; the index then only changes on explicit `rescan()`.
   */
  async start(): Promise<void> {
    this.#stopped = false;
    if (this.#watch && this.#watcher === null) this.#startWatcher();
    try {
      await this.rescan();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Closes the watcher, drops a pending debounced rescan and waits for a running one. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    this.#watcher?.close();
    this.#watcher = null;
    const inFlight = this.#queued ?? this.#running;
    if (inFlight !== null) await inFlight.catch(() => undefined);
  }

  list(): Device[] {
    return [...this.#cache.values()].map((e) => e.device);
  }

  get(configuration: string): Device | undefined {
    return this.#cache.get(configuration)?.device;
  }

  /**
   * Re-reads the config dir. Calls coalesce: while a scan runs, later calls
   * share one follow-up scan, which starts after the running one so it sees
   * every change made before the call.
   */
  rescan(): Promise<void> {
    if (this.#queued !== null) return this.#queued;
    if (this.#running === null) return this.#startScan();
    const queued = this.#running
      .then(
        () => undefined,
        () => undefined,
      )
      .then(() => {
        this.#queued = null;
        return this.#startScan();
      });
    this.#queued = queued;
    return queued;
  }

  #startScan(): Promise<void> {
    const run: Promise<void> = this.#scanOnce().finally(() => {
      if (this.#running === run) this.#running = null;
    });
    this.#running = run;
    return run;
  }

  #startWatcher(): void {
    try {
      const watcher = fs.watch(this.#configDir, { persistent: false }, (_event, filename) => {
        // Dot-files (editor swap files, `.esphome/` churn during builds) and
        // secrets never change a listed device. A null name means "something
        // changed" on platforms that cannot say what.
        if (filename === null || isYamlFileName(filename)) this.#schedule();
      });
      watcher.on("error", (err) => {
        log.warning(`watching ${this.#configDir} failed, device list no longer live: ${errorMessage(err)}`);
        watcher.close();
        if (this.#watcher === watcher) this.#watcher = null;
      });
      this.#watcher = watcher;
    } catch (err) {
      log.warning(`cannot watch ${this.#configDir}, device list will not update live: ${errorMessage(err)}`);
    }
  }

  #schedule(): void {
    if (this.#stopped) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (this.#stopped) return;
      this.rescan().catch((err: unknown) => {
        log.error(`rescan of ${this.#configDir} failed: ${errorMessage(err)}`);
      });
    }, this.#debounceMs);
    this.#timer.unref();
  }

  async #scanOnce(): Promise<void> {
    let names: string[];
    try {
      names = await listYamlFiles(this.#configDir);
    } catch (err) {
      // A vanished config dir has no devices; any other failure keeps the index as it is.
      if (!isGone(err)) throw err;
      names = [];
    }

    const loaded = new Array<CacheEntry | null>(names.length).fill(null);
    let nextIndex = 0;
    const worker = async (): Promise<void> => {
      while (nextIndex < names.length) {
        const i = nextIndex++;
        loaded[i] = await this.#load(names[i] ?? "");
      }
    };
    await Promise.all(Array.from({ length: Math.min(SCAN_CONCURRENCY, names.length) }, worker));

    const next = new Map<string, CacheEntry>();
    names.forEach((name, i) => {
      const entry = loaded[i];
      if (entry !== null && entry !== undefined) next.set(name, entry);
    });
    for (const name of this.#warned.keys()) if (!names.includes(name)) this.#warned.delete(name);

    const updated: Device[] = [];
    for (const [name, entry] of next) {
      const prev = this.#cache.get(name);
      if (prev === undefined || (prev !== entry && !sameDevice(prev.device, entry.device))) updated.push(entry.device);
    }
    const removed = [...this.#cache.keys()].filter((name) => !next.has(name));
    // Keep the previous object when only the file (not the device) changed, so list() is stable.
    for (const [name, entry] of next) {
      const prev = this.#cache.get(name);
      if (prev !== undefined && prev !== entry && sameDevice(prev.device, entry.device)) {
        next.set(name, { key: entry.key, device: prev.device });
      }
    }
    this.#cache = next;

    for (const device of updated) this.#bus.emit("device_updated", { device });
    for (const configuration of removed) this.#bus.emit("device_removed", { configuration });
  }

  /** The file's device, or null when it is gone, not a regular file, or unreadable. */
  async #load(name: string): Promise<CacheEntry | null> {
    const file = path.join(this.#configDir, name);
    let stat: fs.Stats;
    try {
      stat = await fsp.stat(file);
    } catch (err) {
      if (!isGone(err)) this.#warnOnce(name, "stat", `cannot stat ${file}, skipping: ${errorMessage(err)}`);
      return null; // deleted between readdir and stat (or a dangling symlink)
    }
    // A FIFO named x.yaml would block the read forever; directories are not devices.
    if (!stat.isFile()) return null;
    const key = `${stat.mtimeMs}:${stat.size}:${stat.ino}`;
    const prev = this.#cache.get(name);
    if (prev?.key === key) return prev;
    if (stat.size > MAX_YAML_BYTES) {
      return { key, device: freezeDevice(fallbackDevice(this.#configDir, name, `file is larger than ${MAX_YAML_BYTES} bytes`)) };
    }
    let text: string;
    try {
      text = await fsp.readFile(file, "utf8");
    } catch (err) {
      if (!isGone(err)) this.#warnOnce(name, key, `cannot read ${file}, skipping: ${errorMessage(err)}`);
      return null;
    }
    this.#warned.delete(name);
    return { key, device: freezeDevice(parseDevice(this.#configDir, name, text)) };
  }

  #warnOnce(name: string, key: string, message: string): void {
    if (this.#warned.get(name) === key) return;
    this.#warned.set(name, key);
    log.warning(message);
  }
}
