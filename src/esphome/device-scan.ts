/**
 * Which YAML files in the config dir are devices, and what the dashboard shows
 * for each (name, platform, address, ...), kept in RAM and refreshed by a
 * directory watcher.
 *
 * This is a *scan*, not esphome's config validation: it reads a handful of keys
 * straight from the YAML and never follows `!include`, `packages:` or secrets.
 * A file that does not parse is still listed (with `error`) so the user can
 * open and fix it.
 */
import fs, { type FSWatcher } from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { isCollection, isScalar, parseDocument, Scalar, visit } from "yaml";
import type { EventBus } from "../events.ts";
import { errorMessage } from "../errors.ts";
import { getLogger } from "../logger.ts";
import { isSecretsFileName } from "./configuration.ts";

const log = getLogger("device-scan");

import type { Device } from "../domain/device.ts";

export type { Device };

/** Top-level keys naming the target platform, in no particular precedence (the first one in the file wins). */
export const PLATFORM_KEYS: readonly string[] = [
  "esp32",
  "esp8266",
  "rp2040",
  "bk72xx",
  "rtl87xx",
  "ln882x",
  "host",
  "nrf52",
  "libretiny",
];

/** Top-level keys that are configuration plumbing, not components. */
const NON_COMPONENT_KEYS = new Set(["substitutions", "packages", "esphome", "<<"]);
/** Network blocks that can carry `use_address`, in the order esphome would consult them. */
const NETWORK_KEYS = ["wifi", "ethernet", "openthread"] as const;
/**
 * A host-platform device runs on the machine that runs it: its YAML has no network block and
 * it advertises no mDNS, so ESPHome has no address for it; this one is where it listens.
 */
export const HOST_PLATFORM_ADDRESS = "127.0.0.1";
/** Larger files are listed with an error instead of being parsed (configs are a few KiB). */
const MAX_YAML_BYTES = 4 * 1024 * 1024;
const MAX_SUBSTITUTION_DEPTH = 8;
const MAX_MERGE_DEPTH = 8;

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

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

// ---------------------------------------------------------------------------
// Parsing

/**
 * Stand-in for a value behind an ESPHome YAML tag (`!secret wifi_pw`,
 * `!include common.yaml`, `!lambda ...`, or any tag we do not know). The scan
 * never resolves these; they only must not break parsing.
 */
class YamlTag {
  readonly tag: string;
  /** The tagged scalar's source text, or the collection as plain data. */
  readonly value: unknown;

  constructor(tag: string, value: unknown) {
    this.tag = tag;
    this.value = value;
  }
}

/**
 * Replace every node carrying a local tag (`!...`) with a YamlTag placeholder.
 * One pass over the document instead of a `customTags` list: the yaml package
 * has no wildcard tag, and ESPHome adds tags over time (`!include_dir_*`,
 * `!extend`, `!remove`, `!force`, ...), so known and unknown tags are treated
 * alike. Core tags (`!!str`, `tag:yaml.org,2002:*`) keep their meaning.
 */
function replaceLocalTags(doc: ReturnType<typeof parseDocument>): void {
  visit(doc, {
    Node(_key, node) {
      if (!isScalar(node) && !isCollection(node)) return undefined;
      const tag = node.tag;
      if (tag === undefined || !tag.startsWith("!")) return undefined;
      let value: unknown;
      if (isScalar(node)) {
        value = node.source ?? node.value;
      } else {
        try {
          value = node.toJS(doc, { mapAsMap: true, maxAliasCount: 100 });
        } catch {
          value = null;
        }
      }
      const placeholder = new Scalar(new YamlTag(tag, value));
      // Keep the anchor so aliases to the tagged node still resolve.
      if (node.anchor !== undefined) placeholder.anchor = node.anchor;
      return placeholder;
    },
  });
}

type YamlMap = Map<unknown, unknown>;

/**
 * A mapping with YAML merge keys (`<<: *base`, `<<: [*a, *b]`) applied:
 * explicit keys win, earlier merge sources win over later ones. A merge source
 * that is not a mapping (typically `<<: !include base.yaml`) is skipped. Done
 * by hand because the yaml package's `merge` option throws on such sources.
 */
function asMap(value: unknown, depth = 0): YamlMap | null {
  if (!(value instanceof Map)) return null;
  const map = value as YamlMap;
  if (!map.has("<<") || depth >= MAX_MERGE_DEPTH) return map;
  const out: YamlMap = new Map();
  for (const [key, val] of map) {
    if (key !== "<<") {
      out.set(key, val);
      continue;
    }
    const sources = Array.isArray(val) ? (val as unknown[]) : [val];
    for (const source of sources) {
      const merged = asMap(source, depth + 1);
      if (merged === null) continue;
      for (const [k, v] of merged) {
        if (!map.has(k) && !out.has(k)) out.set(k, v);
      }
    }
  }
  return out;
}

/** Strings as-is, numbers as text; anything else (maps, lists, tags, null) is not text. */
function asText(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "bigint") return String(value);
  return null;
}

/** `${var}`, `${ var }` and `$var`, as esphome's substitution pass recognises them. */
const SUBSTITUTION_RE = /\$(?:\{\s*([A-Za-z0-9_]+)\s*\}|([A-Za-z0-9_]+))/g;

interface Resolved {
  text: string;
  /** False when a reference had no (textual) substitution value. */
  complete: boolean;
}

/** Resolves substitutions; values may reference other substitutions (depth-capped against cycles). */
function substitute(text: string, subs: YamlMap | null, depth = 0): Resolved {
  let complete = true;
  const out = text.replace(SUBSTITUTION_RE, (match: string, braced?: string, bare?: string) => {
    const name = braced ?? bare ?? "";
    const raw = subs?.get(name);
    const value = raw === undefined ? null : asText(raw);
    if (value === null || depth >= MAX_SUBSTITUTION_DEPTH) {
      complete = false;
      return match;
    }
    const inner = substitute(value, subs, depth + 1);
    if (!inner.complete) complete = false;
    return inner.text;
  });
  return { text: out, complete };
}

function stemOf(fileName: string): string {
  return fileName.replace(/\.ya?ml$/, "");
}

/** First line of a yaml error, without the code frame the package appends. */
function firstLine(message: string): string {
  const line = message.split("\n", 1)[0] ?? message;
  return line.replace(/:\s*$/, "");
}

function fallbackDevice(configDir: string, fileName: string, error: string): Device {
  const stem = stemOf(fileName);
  return {
    name: stem,
    friendly_name: stem,
    configuration: fileName,
    path: path.resolve(configDir, fileName),
    platform: null,
    board: null,
    address: `${stem}.local`,
    comment: null,
    web_port: null,
    loaded_integrations: [],
    error,
  };
}

/**
 * Reads a device's dashboard fields from its YAML text. Pure; never throws: a
 * syntax error, an empty file or a non-mapping document yields a device named
 * after the file stem with `error` set.
 *
 * Unresolvable `name`/address values (a `!secret`, a substitution defined only
 * in a package) fall back to the stem / `<name>.local`, because they must be
 * usable as a build name and host name; `friendly_name` and `comment` keep
 * their text.
 */
export function parseDevice(configDir: string, fileName: string, text: string): Device {
  let root: YamlMap | null;
  try {
    const doc = parseDocument(text, { uniqueKeys: false, prettyErrors: true });
    const syntaxError = doc.errors[0];
    if (syntaxError !== undefined) {
      return fallbackDevice(configDir, fileName, `YAML syntax error: ${firstLine(syntaxError.message)}`);
    }
    if (doc.contents === null) return fallbackDevice(configDir, fileName, "file is empty");
    replaceLocalTags(doc);
    root = asMap(doc.toJS({ mapAsMap: true, maxAliasCount: 100 }));
  } catch (err) {
    // toJS throws on alias abuse ("Excessive alias count") and unresolved aliases.
    return fallbackDevice(configDir, fileName, `YAML error: ${firstLine(errorMessage(err))}`);
  }
  if (root === null) return fallbackDevice(configDir, fileName, "top level of the file is not a mapping");

  const subs = asMap(root.get("substitutions"));
  const resolve = (value: unknown): Resolved | null => {
    const raw = asText(value);
    return raw === null ? null : substitute(raw, subs);
  };
  const esphome = asMap(root.get("esphome"));
  const stem = stemOf(fileName);

  const resolvedName = resolve(esphome?.get("name"));
  const name = resolvedName !== null && resolvedName.complete && resolvedName.text !== "" ? resolvedName.text : stem;
  const friendly = resolve(esphome?.get("friendly_name"));
  const friendly_name = friendly !== null && friendly.text !== "" ? friendly.text : name;
  const comment = resolve(esphome?.get("comment"))?.text ?? null;

  const { platform, board } = platformOf(root, esphome, resolve);
  const integrations = new Set<string>();
  for (const key of root.keys()) {
    if (typeof key === "string" && !key.startsWith(".") && !NON_COMPONENT_KEYS.has(key)) integrations.add(key);
  }

  return {
    name,
    friendly_name,
    configuration: fileName,
    path: path.resolve(configDir, fileName),
    platform,
    board,
    address: platform === "host" && !NETWORK_KEYS.some((k) => root.has(k)) ? HOST_PLATFORM_ADDRESS : addressOf(root, name, resolve),
    comment,
    web_port: webPortOf(root, resolve),
    loaded_integrations: [...integrations].sort(compareStrings),
    error: null,
  };
}

type ResolveFn = (value: unknown) => Resolved | null;

function platformOf(
  root: YamlMap,
  esphome: YamlMap | null,
  resolve: ResolveFn,
): { platform: string | null; board: string | null } {
  const boardOf = (block: YamlMap | null): string | null => {
    const board = resolve(block?.get("board"));
    return board !== null && board.complete && board.text !== "" ? board.text : null;
  };
  for (const key of root.keys()) {
    if (typeof key === "string" && PLATFORM_KEYS.includes(key)) {
      return { platform: key, board: boardOf(asMap(root.get(key))) };
    }
  }
  // Pre-2021.10 configs put the platform inside the esphome block.
  const legacy = resolve(esphome?.get("platform"));
  if (legacy !== null && legacy.complete && legacy.text !== "") {
    return { platform: legacy.text.toLowerCase(), board: boardOf(esphome) };
  }
  return { platform: null, board: null };
}

/**
 * Mirrors esphome's default for `use_address`: the explicit value, else the
 * static IP (`manual_ip: static_ip`), else `<name><domain>` (domain `.local`).
 */
function addressOf(root: YamlMap, name: string, resolve: ResolveFn): string {
  const usable = (value: unknown): string | null => {
    const resolved = resolve(value);
    return resolved !== null && resolved.complete && resolved.text !== "" ? resolved.text : null;
  };
  for (const key of NETWORK_KEYS) {
    if (!root.has(key)) continue;
    const block = asMap(root.get(key));
    const explicit = usable(block?.get("use_address")) ?? usable(asMap(block?.get("manual_ip"))?.get("static_ip"));
    if (explicit !== null) return explicit;
    const domain = usable(block?.get("domain"));
    if (domain !== null) return `${name}${domain.startsWith(".") ? domain : `.${domain}`}`;
  }
  return `${name}.local`;
}

function webPortOf(root: YamlMap, resolve: ResolveFn): number | null {
  if (!root.has("web_server")) return null;
  const raw = root.get("web_server");
  if (raw === null) return 80; // `web_server:` with no options
  const block = asMap(raw);
  if (block === null) return null; // e.g. `web_server: !include web.yaml`: port unknown
  if (!block.has("port")) return 80;
  const port = resolve(block.get("port"));
  if (port === null || !port.complete || !/^\d{1,5}$/.test(port.text.trim())) return null;
  const n = Number(port.text.trim());
  return n >= 1 && n <= 65535 ? n : null;
}

// ---------------------------------------------------------------------------
// Scanner

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
