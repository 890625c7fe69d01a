/**
 * A device's dashboard fields (name, platform, board, address, web port, ...)
 * read from its YAML text. Pure: no file system, no state.
 *
 * This is a *scan*, not esphome's config validation: it reads a handful of keys
 * straight from the YAML and never follows `!include`, `packages:` or secrets.
 * A file that does not parse still yields a device (with `error`) so the user
 * can open and fix it.
 */
import path from "node:path";
import { isCollection, isScalar, parseDocument, Scalar, visit } from "yaml";
import type { Device } from "../domain/device.ts";
import { errorMessage } from "../errors.ts";

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
const MAX_SUBSTITUTION_DEPTH = 8;
const MAX_MERGE_DEPTH = 8;

/** Code-unit order: the order of the device list and of each device's integrations. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

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

/** The device a file stands for when its fields cannot be read: named after the file, with `error` set. */
export function fallbackDevice(configDir: string, fileName: string, error: string): Device {
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
