/**
 * Receiver side of a remote build: unpacking the offloader's ESPHome config
 * bundle (`esphome bundle` output) into a per-offloader, per-device folder.
 *
 * A bundle is a gzip tar holding `manifest.json`
 * (`{manifest_version: 1, esphome_version, config_filename, files, has_secrets}`),
 * the YAML and every local file it depends on. All of it comes from another
 * machine, so it goes through the safe tar reader (regular files only, paths
 * kept inside, size caps), and the manifest is checked before anything is
 * written. Extraction replaces the device folder as a whole (a fresh folder is
 * built beside it and swapped in), keeping only the folder's `.esphome/`
 * build cache so incremental builds stay warm. A failed extraction leaves the
 * previous folder as it was and no temp files behind.
 *
 * Callers serialise extractions into the same folder (upstream: a FIFO lock per
 * peer).
 */
import { promises as fs, type Stats } from "node:fs";
import path from "node:path";
import { validateConfigurationName } from "../../esphome/configuration.ts";
import { codedErrors, errorMessage, type BuilderError } from "../../errors.ts";
import { getLogger } from "../../logger.ts";
import { BUNDLE_MAX_BYTES } from "../transport/chunks.ts";
import { isPin } from "../transport/pin.ts";
import { DEFAULT_MAX_MEMBERS, type TarEntry, TAR_SAFETY_CODES, isTarSafetyError } from "../transport/tar-policy.ts";
import { readTarGz } from "../transport/tar-reader.ts";
import { extractSafely } from "../transport/tar-extract.ts";

const log = getLogger("remote-build.bundle");

export const MANIFEST_FILENAME = "manifest.json";
export const MANIFEST_MAX_BYTES = 1024 * 1024;
export const SUPPORTED_MANIFEST_VERSION = 1;
/** The device folder's build cache, kept across extractions; bundles may not write into it. */
export const BUILD_CACHE_DIRNAME = ".esphome";
/** A device stem (and `storage.json` name on the offloader side). */
export const DEVICE_STEM_RE = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;
const DEVICE_STEM_MAX = 128;
const ESPHOME_VERSION_MAX = 64;

export const BUNDLE_CODES = [
  ...TAR_SAFETY_CODES,
  "missing_manifest",
  "invalid_manifest",
  "unsupported_manifest",
  "invalid_config_filename",
  "missing_config",
  "invalid_header",
] as const;
export type BundleErrorCode = (typeof BUNDLE_CODES)[number];

/** A bundle refused on the build server (a `BuilderError` with one of `BUNDLE_CODES`). */
export type BundleError = BuilderError<BundleErrorCode>;

export const { error: bundleError, is: isBundleError } = codedErrors(BUNDLE_CODES);

export interface Manifest {
  manifest_version: 1;
  esphome_version: string;
  config_filename: string;
  files: string[];
  has_secrets: boolean;
}

export interface ExtractBundleOptions {
  /** Cap on the compressed bundle, each member and the sum of members. Default BUNDLE_MAX_BYTES. */
  maxBytes?: number;
  /** Cap on the number of archive entries. Default 10 000. */
  maxMembers?: number;
}

export interface ExtractedBundle {
  /** The configuration's file name (a leaf name) inside the destination folder. */
  configuration: string;
  manifest: Manifest;
  /** Every extracted file, relative to the destination, `/`-separated, in archive order. */
  files: string[];
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Validates a parsed manifest; throws `BundleError`. */
export function parseManifest(data: Buffer): Manifest {
  if (data.length > MANIFEST_MAX_BYTES) {
    throw bundleError("invalid_manifest", `manifest.json is larger than ${MANIFEST_MAX_BYTES} bytes`);
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(data));
  } catch (err) {
    throw bundleError("invalid_manifest", `manifest.json is not valid JSON: ${errorMessage(err)}`);
  }
  if (!isPlainObject(value)) throw bundleError("invalid_manifest", "manifest.json is not a JSON object");
  const version = value["manifest_version"];
  if (version !== SUPPORTED_MANIFEST_VERSION) {
    const newer = typeof version === "number" && version > SUPPORTED_MANIFEST_VERSION;
    throw bundleError(
      "unsupported_manifest",
      `bundle manifest_version ${version === undefined ? "(missing)" : JSON.stringify(version)} is not supported (this builder reads version ` +
        `${SUPPORTED_MANIFEST_VERSION})${newer ? "; please upgrade ESPHome and the builder to compile this bundle" : ""}`,
    );
  }
  let configFilename: string;
  try {
    configFilename = validateConfigurationName(value["config_filename"]);
  } catch (err) {
    throw bundleError("invalid_config_filename", `bundle config_filename: ${errorMessage(err)}`, { cause: err });
  }
  const esphomeVersion = value["esphome_version"] ?? "";
  if (typeof esphomeVersion !== "string" || esphomeVersion.length > ESPHOME_VERSION_MAX) {
    throw bundleError("invalid_manifest", `manifest esphome_version must be a string of at most ${ESPHOME_VERSION_MAX} characters`);
  }
  const rawFiles = value["files"] ?? [];
  if (!Array.isArray(rawFiles)) throw bundleError("invalid_manifest", "manifest files must be a list of strings");
  const files = (rawFiles as unknown[]).filter((f): f is string => typeof f === "string");
  if (files.length !== rawFiles.length) throw bundleError("invalid_manifest", "manifest files must be a list of strings");
  const hasSecrets = value["has_secrets"] ?? false;
  if (typeof hasSecrets !== "boolean") throw bundleError("invalid_manifest", "manifest has_secrets must be a boolean");
  return {
    manifest_version: SUPPORTED_MANIFEST_VERSION,
    esphome_version: esphomeVersion,
    config_filename: configFilename,
    files,
    has_secrets: hasSecrets,
  };
}

function wrapTarError(err: unknown): unknown {
  if (isTarSafetyError(err)) return bundleError(err.code, `bad bundle: ${err.message}`, { cause: err });
  return err;
}

/** Reads and validates a bundle without writing anything. */
export async function readBundle(
  bytes: Buffer,
  opts: ExtractBundleOptions = {},
): Promise<{ manifest: Manifest; entries: TarEntry[] }> {
  const maxBytes = opts.maxBytes ?? BUNDLE_MAX_BYTES;
  if (bytes.length > maxBytes) throw bundleError("too_large", `bundle is larger than ${maxBytes} bytes`);
  let entries: TarEntry[];
  try {
    entries = await readTarGz(bytes, {
      maxMemberBytes: maxBytes,
      maxTotalBytes: maxBytes,
      maxMembers: opts.maxMembers ?? DEFAULT_MAX_MEMBERS,
      directories: "skip",
    });
  } catch (err) {
    throw wrapTarError(err);
  }
  for (const entry of entries) {
    if (entry.path.split("/")[0] === BUILD_CACHE_DIRNAME) {
      throw bundleError("unsafe_path", `bundle may not write into the build cache (${JSON.stringify(entry.path)})`);
    }
  }
  const manifestEntry = entries.find((e) => e.path === MANIFEST_FILENAME);
  if (manifestEntry === undefined) throw bundleError("missing_manifest", "bundle has no manifest.json");
  const manifest = parseManifest(manifestEntry.data);
  if (!entries.some((e) => e.path === manifest.config_filename)) {
    throw bundleError("missing_config", `bundle does not contain its configuration ${JSON.stringify(manifest.config_filename)}`);
  }
  return { manifest, entries };
}

async function lstatOrNull(p: string): Promise<Stats | null> {
  try {
    return await fs.lstat(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
}

function tempSibling(dest: string, tag: string): string {
  return path.join(path.dirname(dest), `.${path.basename(dest)}.${tag}-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`);
}

/**
 * Validates a bundle and extracts it into `destDir`, replacing what was there
 * except its `.esphome/` build cache (kept only when it is a real folder, never
 * through a symlink). Throws `BundleError`; on any error the previous folder is
 * left as it was.
 */
export async function extractBundle(bytes: Buffer, destDir: string, opts: ExtractBundleOptions = {}): Promise<ExtractedBundle> {
  const dest = path.resolve(destDir);
  const { manifest, entries } = await readBundle(bytes, opts);

  const incoming = tempSibling(dest, "incoming");
  let files: string[];
  try {
    files = await extractSafely(entries, incoming);
  } catch (err) {
    throw wrapTarError(err);
  }

  const old = tempSibling(dest, "old");
  let movedOld = false;
  let movedCache = false;
  try {
    const current = await lstatOrNull(dest);
    if (current !== null) {
      await fs.rename(dest, old);
      movedOld = true;
      if (current.isDirectory()) {
        const cache = await lstatOrNull(path.join(old, BUILD_CACHE_DIRNAME));
        if (cache?.isDirectory() === true) {
          await fs.rename(path.join(old, BUILD_CACHE_DIRNAME), path.join(incoming, BUILD_CACHE_DIRNAME));
          movedCache = true;
        }
      }
    }
    await fs.rename(incoming, dest);
  } catch (err) {
    // Put the previous folder back as it was.
    if (movedCache) {
      await fs.rename(path.join(incoming, BUILD_CACHE_DIRNAME), path.join(old, BUILD_CACHE_DIRNAME)).catch(() => undefined);
    }
    if (movedOld) await fs.rename(old, dest).catch(() => undefined);
    await fs.rm(incoming, { recursive: true, force: true });
    throw err;
  }
  if (movedOld) {
    await fs.rm(old, { recursive: true, force: true }).catch((err: unknown) => {
      log.warning(`could not remove the previous bundle folder ${old}: ${errorMessage(err)}`);
    });
  }
  return { configuration: manifest.config_filename, manifest, files };
}

/**
 * The extraction folder of one offloader's device: `<root>/<pin>/<stem>`.
 *
 * A peer's folder is named by its pin, the full SHA-256 of the static key it
 * proved in the handshake: a peer cannot choose it, and two approved peers
 * never share it (its `dashboard_id`, which the peer picks and mDNS shows
 * the start of, is not used). Throws `BundleError("invalid_header")` for a
 * pin that is not canonical (64 lowercase hex digits) or a stem outside
 * `^[A-Za-z0-9][A-Za-z0-9_-]*$` (max 128).
 */
export function bundleDirFor(remoteBuildsRoot: string, peerPin: string, deviceStem: string): string {
  if (!isPin(peerPin)) {
    throw bundleError("invalid_header", "a peer's folder is named by its pin: 64 lowercase hex digits");
  }
  if (typeof deviceStem !== "string" || deviceStem.length > DEVICE_STEM_MAX || !DEVICE_STEM_RE.test(deviceStem)) {
    throw bundleError("invalid_header", `invalid device name ${JSON.stringify(deviceStem.slice(0, 80))}`);
  }
  const root = path.resolve(remoteBuildsRoot);
  const dir = path.join(root, peerPin, deviceStem);
  const rel = path.relative(root, dir);
  if (rel.startsWith("..") || path.isAbsolute(rel) || rel.split(path.sep).length !== 2) {
    throw bundleError("invalid_header", "device folder resolves outside the remote builds root");
  }
  return dir;
}

export interface CleanupOptions {
  /** Entries untouched for longer than this are deleted. */
  ttlMs: number;
  /** Current time in ms (tests pass a fixed one). Default Date.now(). */
  now?: number;
  /**
   * Device folders to leave alone (in-flight jobs): either the paths
   * `bundleDirFor` returned or `<peer>/<stem>` keys.
   */
  keep?: ReadonlySet<string>;
}

/** Newest mtime of an entry, its children and grandchildren (never following links). */
async function newestMtime(p: string, st: Stats, depth: number): Promise<number> {
  let newest = st.mtimeMs;
  if (depth === 0 || !st.isDirectory()) return newest;
  let names: string[];
  try {
    names = await fs.readdir(p);
  } catch {
    return newest;
  }
  for (const name of names) {
    const child = path.join(p, name);
    const cst = await lstatOrNull(child).catch(() => null);
    if (cst === null) continue;
    newest = Math.max(newest, await newestMtime(child, cst, depth - 1));
  }
  return newest;
}

/**
 * TTL sweep of `<root>/<peer>/<entry>` (folders of an older layout, named by
 * the first 8 characters of a dashboard_id, age out the same way): deletes device folders (and stray files
 * such as saved bundles) not modified within `ttlMs` — a folder counts as
 * modified when it, a child or a grandchild is. Names starting with `.` and
 * the `venvs` folder are skipped at both levels, as are kept folders; an
 * offloader folder left empty is removed. Symlinks are removed, never
 * followed. Returns the deleted paths.
 */
export async function cleanupRemoteBuilds(root: string, opts: CleanupOptions): Promise<string[]> {
  const base = path.resolve(root);
  const now = opts.now ?? Date.now();
  const keep = opts.keep ?? new Set<string>();
  const keepResolved = new Set([...keep].map((k) => (path.isAbsolute(k) ? path.resolve(k) : k)));
  const deleted: string[] = [];
  let offloaders: string[];
  try {
    offloaders = await fs.readdir(base);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return deleted;
    throw err;
  }
  for (const peer of offloaders) {
    if (peer.startsWith(".") || peer === "venvs") continue;
    const offloaderDir = path.join(base, peer);
    const st = await lstatOrNull(offloaderDir);
    if (st === null || !st.isDirectory()) continue;
    const names = await fs.readdir(offloaderDir);
    let left = names.length;
    for (const name of names) {
      if (name.startsWith(".") || name === "venvs") continue;
      const entry = path.join(offloaderDir, name);
      if (keepResolved.has(entry) || keepResolved.has(`${peer}/${name}`)) continue;
      // A saved `<stem>.tar.gz` belongs to the kept `<stem>` folder.
      const stem = name.endsWith(".tar.gz") ? name.slice(0, -".tar.gz".length) : null;
      if (stem !== null && (keepResolved.has(path.join(offloaderDir, stem)) || keepResolved.has(`${peer}/${stem}`))) continue;
      const est = await lstatOrNull(entry);
      if (est === null) {
        left -= 1;
        continue;
      }
      const newest = await newestMtime(entry, est, 2);
      if (now - newest <= opts.ttlMs) continue;
      await fs.rm(entry, { recursive: true, force: true });
      deleted.push(entry);
      left -= 1;
    }
    if (left === 0) await fs.rmdir(offloaderDir).catch(() => undefined);
  }
  return deleted;
}
