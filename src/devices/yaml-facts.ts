/**
 * What the device prober needs from a device's YAML beyond the scan's fields:
 * whether it has a network block (a host-platform YAML has none), `deep_sleep`,
 * the native API's encryption key (a literal or a `!secret`), and the local
 * files it includes (`!include`, `!include_dir_*`, local `packages:`), whose
 * modification times count as the configuration's.
 *
 * Like the scan this never runs ESPHome; it reads the text with the `yaml`
 * package and treats every other tag as an opaque value.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { isMap, isScalar, isSeq, parseDocument, visit, type Node } from "yaml";

export interface YamlFacts {
  hasNetworkBlock: boolean;
  deepSleep: boolean;
  /** The base64 key, null without `api: encryption: key` (or when its `!secret` is not found). */
  apiKey: string | null;
  /** The native API's port (`api: port:`, substitutions resolved), 6053 by default. */
  apiPort: number;
  /** Absolute paths of included files and folders (not followed past MAX_INCLUDES). */
  includes: string[];
}

const NETWORK_KEYS = ["wifi", "ethernet", "openthread"];
const MAX_INCLUDES = 100;
const MAX_DEPTH = 8;
const MAX_BYTES = 4 * 1024 * 1024;

function scalarText(node: unknown): string | null {
  if (!isScalar(node)) return null;
  return typeof node.value === "string" ? node.value : typeof node.value === "number" ? String(node.value) : null;
}

/** The include targets in one document: `!include x`, `!include {file: x}`, `!include_dir_* d`, local `packages:` strings. */
function includeTargets(doc: ReturnType<typeof parseDocument>): string[] {
  const out: string[] = [];
  visit(doc, {
    Node(_key, node) {
      const tag = node.tag;
      if (tag === undefined || !tag.startsWith("!include")) return undefined;
      if (isScalar(node)) {
        const text = typeof node.value === "string" ? node.value : typeof node.source === "string" ? node.source : null;
        if (text !== null && text !== "") out.push(text);
      } else if (isMap(node)) {
        const file = scalarText(node.get("file", true));
        if (file !== null) out.push(file);
      }
      return undefined;
    },
  });
  const packages: unknown = doc.get("packages", true);
  const local = (value: unknown): void => {
    const text = scalarText(value);
    // `github://…` and `https://…` packages are remote: their time is not this machine's.
    if (text !== null && (value as Node).tag === undefined && !text.includes("://") && /\.ya?ml$/.test(text)) out.push(text);
  };
  if (isMap(packages)) for (const item of packages.items) local(item.value);
  if (isSeq(packages)) for (const item of packages.items) local(item);
  return out;
}

async function readText(file: string): Promise<string | null> {
  try {
    const stat = await fs.stat(file);
    if (!stat.isFile() || stat.size > MAX_BYTES) return null;
    return await fs.readFile(file, "utf8");
  } catch {
    return null;
  }
}

async function secret(configDir: string, name: string): Promise<string | null> {
  for (const file of ["secrets.yaml", "secrets.yml"]) {
    const text = await readText(path.join(configDir, file));
    if (text === null) continue;
    try {
      const value: unknown = parseDocument(text, { uniqueKeys: false }).get(name);
      if (typeof value === "string") return value;
    } catch {
      // an unreadable secrets file has no such secret
    }
  }
  return null;
}

/** Reads the facts of the YAML at `file` (its includes are followed to a bounded depth). Never throws. */
export async function readYamlFacts(configDir: string, file: string): Promise<YamlFacts> {
  const facts: YamlFacts = { hasNetworkBlock: false, deepSleep: false, apiKey: null, apiPort: 6053, includes: [] };
  const text = await readText(file);
  if (text === null) return facts;
  let doc;
  try {
    doc = parseDocument(text, { uniqueKeys: false });
  } catch {
    return facts;
  }
  if (doc.errors.length > 0 || !isMap(doc.contents)) return facts;
  for (const item of doc.contents.items) {
    const key = scalarText(item.key);
    if (key === null) continue;
    if (NETWORK_KEYS.includes(key)) facts.hasNetworkBlock = true;
    if (key === "deep_sleep") facts.deepSleep = true;
  }
  const keyNode = doc.getIn(["api", "encryption", "key"], true);
  if (isScalar(keyNode)) {
    const value = typeof keyNode.value === "string" ? keyNode.value : null;
    if (value !== null) facts.apiKey = keyNode.tag === "!secret" ? await secret(configDir, value) : keyNode.tag === undefined ? value : null;
  }
  const portText = scalarText(doc.getIn(["api", "port"], true));
  if (portText !== null) {
    const subs = doc.get("substitutions", true);
    const resolved = portText.replace(/\$\{\s*(\w+)\s*\}|\$(\w+)/g, (match: string, a?: string, b?: string) => {
      const value = isMap(subs) ? scalarText(subs.get(a ?? b ?? "", true)) : null;
      return value ?? match;
    });
    const n = Number(resolved.trim());
    if (/^\d{1,5}$/.test(resolved.trim()) && n >= 1 && n <= 65535) facts.apiPort = n;
  }
  facts.includes = await collectIncludes(file, includeTargets(doc));
  return facts;
}

async function collectIncludes(file: string, first: string[]): Promise<string[]> {
  const seen = new Set<string>();
  let frontier = first.map((t) => path.resolve(path.dirname(file), t));
  for (let depth = 0; depth < MAX_DEPTH && frontier.length > 0; depth++) {
    const next: string[] = [];
    for (const target of frontier) {
      if (seen.has(target) || seen.size >= MAX_INCLUDES) continue;
      seen.add(target);
      const text = await readText(target);
      if (text === null) continue;
      try {
        const doc = parseDocument(text, { uniqueKeys: false });
        for (const t of includeTargets(doc)) next.push(path.resolve(path.dirname(target), t));
      } catch {
        // not YAML (a C++ header pulled in by `includes:` is not followed)
      }
    }
    frontier = next;
  }
  return [...seen];
}

/**
 * The newest modification time (ms) of the YAML, its includes and, for an
 * included folder, the files directly in it. Missing files are skipped.
 */
export async function newestMtime(file: string, includes: readonly string[]): Promise<number | null> {
  let newest: number | null = null;
  const consider = (ms: number): void => {
    if (newest === null || ms > newest) newest = ms;
  };
  for (const target of [file, ...includes]) {
    try {
      const stat = await fs.stat(target);
      consider(stat.mtimeMs);
      if (stat.isDirectory()) {
        for (const name of await fs.readdir(target)) {
          try {
            consider((await fs.stat(path.join(target, name))).mtimeMs);
          } catch {
            // gone meanwhile
          }
        }
      }
    } catch {
      // missing: an include ESPHome would refuse; nothing to compare
    }
  }
  return newest;
}
