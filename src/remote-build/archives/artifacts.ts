/**
 * Build artifacts of a remote compile, in the upstream Device Builder's layout
 * (shared/interop WIRE-FACTS §11): the metadata at the top (`storage.json`,
 * `idedata.json`, `platformio.ini`, `build_info.json`), the images at their
 * paths in the build folder (`.pioenvs/<name>/firmware.bin`,
 * `build/<name>.bin` for a native ESP-IDF build, `.pioenvs/<name>/program` for
 * the host platform).
 *
 * Receiver side, `packArtifacts`: the image StorageJSON's `firmware_bin_path`
 * names (required, inside `build_path`), the other images beside it and the
 * ones idedata lists inside the build folder, and the metadata; each file's
 * size checked against the cap before it is read, the total and the rendered
 * tarball too. Deterministic for the same build.
 *
 * Offloader side, `readArtifacts`: the tarball came from another machine, so it
 * goes through the safe tar reader (regular files only, relative paths that
 * stay inside, size caps, no duplicates) and must hold `storage.json` and the
 * image it names. Older builders of ours sent flat names (`firmware.bin` at the
 * top); those still read. materialise.ts puts them into the local build tree.
 */
import { createHash } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import { setImmediate as yieldToLoop } from "node:timers/promises";
import { codedErrors, errorMessage, type BuilderError } from "../../errors.ts";
import type { Paths } from "../../paths.ts";
import { DEVICE_STEM_RE } from "./bundle.ts";
import { ARTIFACTS_MAX_BYTES } from "../transport/chunks.ts";
import { TAR_SAFETY_CODES, isTarSafetyError } from "../transport/tar-policy.ts";
import { readTarGz } from "../transport/tar-reader.ts";
import { createTarGz } from "../transport/tar-writer.ts";

export const STORAGE_NAME = "storage.json";
export const IDEDATA_NAME = "idedata.json";
export const PLATFORMIO_INI_NAME = "platformio.ini";
export const BUILD_INFO_NAME = "build_info.json";
export const VALIDATED_NAME = "validated.yaml";
/** Members that describe the build rather than sit in it (an offloader rewrites them). */
export const METADATA_NAMES: ReadonlySet<string> = new Set([STORAGE_NAME, IDEDATA_NAME]);
/** Images collected from beside the firmware image when they exist, in this order. */
export const EXTRA_IMAGE_NAMES: readonly string[] = [
  "firmware.bin",
  "firmware.factory.bin",
  "firmware.ota.bin",
  "firmware.uf2",
  "firmware.elf",
  "bootloader.bin",
  "partitions.bin",
  "ota_data_initial.bin",
  "boot_app0.bin",
];
/**
 * The build-folder files upstream ships per platform, in its order, each only
 * when it exists (WIRE-FACTS §11); `{name}` is StorageJSON's `name`. ESP32
 * variants use the esp32 list. A platform not here (the host) ships the image
 * StorageJSON names and the images beside it (EXTRA_IMAGE_NAMES).
 */
export const PLATFORM_FILES: Readonly<Record<string, readonly string[]>> = {
  esp32: [
    ".pioenvs/{name}/firmware.bin",
    ".pioenvs/{name}/firmware.elf",
    ".pioenvs/{name}/firmware.factory.bin",
    ".pioenvs/{name}/firmware.ota.bin",
    ".pioenvs/{name}/bootloader.bin",
    ".pioenvs/{name}/partitions.bin",
    ".pioenvs/{name}/ota_data_initial.bin",
    "build/firmware.factory.bin",
    "build/{name}.bin",
  ],
  esp8266: [".pioenvs/{name}/firmware.bin", ".pioenvs/{name}/firmware.elf"],
  rp2040: [".pioenvs/{name}/firmware.bin", ".pioenvs/{name}/firmware.uf2", ".pioenvs/{name}/firmware.ota.bin", ".pioenvs/{name}/firmware.elf"],
  libretiny: [".pioenvs/{name}/firmware.uf2", ".pioenvs/{name}/firmware.bin", ".pioenvs/{name}/firmware.elf", ".pioenvs/{name}/firmware.json"],
  nrf52: [
    ".pioenvs/{name}/firmware.bin",
    ".pioenvs/{name}/firmware.elf",
    ".pioenvs/{name}/zephyr/zephyr.uf2",
    ".pioenvs/{name}/firmware.zip",
    ".pioenvs/{name}/zephyr/zephyr.hex",
    ".pioenvs/{name}/zephyr/merged.hex",
    ".pioenvs/{name}/zephyr/app_update.bin",
    ".pioenvs/{name}/zephyr/zephyr.elf",
  ],
};

/** Which PLATFORM_FILES list a StorageJSON's platform uses, or null. */
export function platformFilesKey(storage: Record<string, unknown>): string | null {
  const raw = storage["esp_platform"] ?? storage["target_platform"] ?? storage["core_platform"];
  if (typeof raw !== "string") return null;
  const p = raw.toLowerCase();
  if (p.startsWith("esp32")) return "esp32";
  if (p === "bk72xx" || p === "rtl87xx" || p === "ln882x" || p === "libretiny") return "libretiny";
  return Object.hasOwn(PLATFORM_FILES, p) ? p : null;
}

/** How long before StorageJSON a `validated.yaml` may have been written to ship with it (upstream: 60 s). */
const VALIDATED_MAX_AGE_MS = 60_000;
const HASH_SLICE_BYTES = 4 * 1024 * 1024;
/** Most members an artifacts tarball may have. */
export const ARTIFACTS_MAX_MEMBERS = 256;

export const ARTIFACTS_CODES = [...TAR_SAFETY_CODES, "build_dir_missing", "pack_failed", "missing_firmware"] as const;
export type ArtifactsErrorCode = (typeof ARTIFACTS_CODES)[number];

/** Artifacts that could not be packed or were refused (a `BuilderError` with one of `ARTIFACTS_CODES`). */
export type ArtifactsError = BuilderError<ArtifactsErrorCode>;

export const { error: artifactsError, is: isArtifactsError } = codedErrors(ARTIFACTS_CODES);

export interface PackedArtifacts {
  tarball: Buffer;
  /** Where the firmware image goes in flash: "0x10000" for the ESP32 family, "0x0" otherwise. */
  firmwareOffset: string;
  /** Lowercase hex SHA-256 of `tarball`. */
  sha256: string;
  /** Member names in tarball order (the metadata, then the firmware image, then the other images). */
  names: string[];
  /** The firmware image's member name, e.g. `.pioenvs/kitchen/firmware.bin`. */
  firmware: string;
}

export interface ArtifactsOptions {
  /** Cap per file, on the sum of files and on the tarball. Default ARTIFACTS_MAX_BYTES. */
  maxBytes?: number;
  /**
   * Packing only: leave out the optional files whose base name is not here
   * (the firmware image StorageJSON names and storage.json always go). An
   * install that flashes over the network needs the firmware image alone, not
   * the factory image or the ELF.
   */
  only?: ReadonlySet<string>;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** "0x10000" when StorageJSON's platform (`esp_platform`, upstream's choice) names an ESP32 chip, else "0x0". */
export function firmwareOffsetFor(storage: Record<string, unknown>): string {
  for (const key of ["esp_platform", "target_platform", "core_platform"]) {
    const value = storage[key];
    if (typeof value === "string" && value.toLowerCase().startsWith("esp32")) return "0x10000";
  }
  return "0x0";
}

/** A flat artifact name: one path segment, no separators, NUL or control characters. */
function isFlatName(name: string): boolean {
  // eslint-disable-next-line no-control-regex
  return name !== "" && name !== "." && name !== ".." && name.length <= 255 && !/[/\\\u0000-\u001f\u007f]/.test(name);
}

/** `a/b/c`, each segment flat: the shape of a member path inside the build folder. */
function isRelativeName(name: string): boolean {
  return name.length <= 1024 && name.split("/").every(isFlatName);
}

/** The path module for a path written on another machine (a build server may run Windows). */
function flavourOf(p: string): typeof path.posix {
  return /^[A-Za-z]:[\\/]|^\\\\/.test(p) ? path.win32 : path.posix;
}

/**
 * `file` relative to `dir` as a `/`-separated member name, when `file` lies
 * inside `dir`; else null. Both are paths of the machine that wrote them.
 */
export function buildRelative(dir: string, file: string): string | null {
  const flavour = flavourOf(dir);
  const rel = flavour.relative(flavour.resolve(dir), flavour.resolve(file));
  if (rel === "" || flavour.isAbsolute(rel)) return null;
  const name = rel.split(flavour.sep).join("/");
  return name.split("/")[0] === ".." || !isRelativeName(name) ? null : name;
}

async function readJsonObject(file: string): Promise<Record<string, unknown>> {
  const value: unknown = JSON.parse(await fs.readFile(file, "utf8"));
  if (!isPlainObject(value)) throw new Error(`${file} is not a JSON object`);
  return value;
}

/** SHA-256 in slices, yielding to the event loop between them (a tarball can be 64 MiB). */
async function sha256Hex(data: Buffer): Promise<string> {
  const hash = createHash("sha256");
  for (let pos = 0; pos < data.length; pos += HASH_SLICE_BYTES) {
    if (pos > 0) await yieldToLoop();
    hash.update(data.subarray(pos, pos + HASH_SLICE_BYTES));
  }
  return hash.digest("hex");
}

/** Whether `file` exists and was written at most `maxAgeMs` before `reference` (or after it). */
async function writtenWithin(file: string, reference: string, maxAgeMs: number): Promise<boolean> {
  try {
    const [a, b] = await Promise.all([fs.stat(file), fs.stat(reference)]);
    return a.isFile() && b.mtimeMs - a.mtimeMs <= maxAgeMs;
  } catch {
    return false;
  }
}

/** Size of a regular file, or null when it does not exist (or is not a regular file). */
async function fileSize(file: string): Promise<number | null> {
  try {
    const st = await fs.stat(file);
    return st.isFile() ? st.size : null;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return null;
    throw err;
  }
}

/**
 * Packs the build of `configuration` (its YAML file name; only the basename is
 * used, as ESPHome names StorageJSON after it). Throws `ArtifactsError`:
 * `build_dir_missing` when there is no StorageJSON or firmware, `too_large`
 * over the cap, `pack_failed` for anything else.
 */
export async function packArtifacts(paths: Paths, configuration: string, opts: ArtifactsOptions = {}): Promise<PackedArtifacts> {
  const maxBytes = opts.maxBytes ?? ARTIFACTS_MAX_BYTES;
  try {
    return await pack(paths, configuration, maxBytes, opts.only);
  } catch (err) {
    if (isArtifactsError(err)) throw err;
    throw artifactsError("pack_failed", `packing the build artifacts failed: ${errorMessage(err)}`, { cause: err });
  }
}

async function pack(paths: Paths, configuration: string, maxBytes: number, only: ReadonlySet<string> | undefined): Promise<PackedArtifacts> {
  const storagePath = paths.storageJson(path.basename(configuration));
  let storage: Record<string, unknown>;
  try {
    storage = await readJsonObject(storagePath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw artifactsError("build_dir_missing", `no build information for ${configuration} (${storagePath} is missing)`);
    }
    throw artifactsError("pack_failed", `unreadable StorageJSON ${storagePath}: ${errorMessage(err)}`, { cause: err });
  }
  const name = storage["name"];
  if (typeof name !== "string" || !DEVICE_STEM_RE.test(name)) {
    throw artifactsError("pack_failed", `StorageJSON ${storagePath} has no valid device name`);
  }
  const buildPath =
    typeof storage["build_path"] === "string" && storage["build_path"] !== ""
      ? path.resolve(storage["build_path"])
      : paths.buildDir(name);
  const firmwarePath =
    typeof storage["firmware_bin_path"] === "string" && storage["firmware_bin_path"] !== ""
      ? path.resolve(storage["firmware_bin_path"])
      : path.join(paths.firmwareDir(name), "firmware.bin");
  const firmware = buildRelative(buildPath, firmwarePath);
  if (firmware === null) {
    throw artifactsError("pack_failed", `StorageJSON ${storagePath}: the firmware image ${firmwarePath} is not inside the build folder ${buildPath}`);
  }
  const idedataPath = path.join(paths.dataDir, "idedata", `${name}.json`);

  // Upstream's order: metadata, then the platform's files at their paths in the build folder.
  const candidates: { name: string; file: string; required: boolean }[] = [
    { name: STORAGE_NAME, file: storagePath, required: true },
    { name: IDEDATA_NAME, file: idedataPath, required: false },
    { name: PLATFORMIO_INI_NAME, file: path.join(buildPath, PLATFORMIO_INI_NAME), required: false },
    { name: BUILD_INFO_NAME, file: path.join(buildPath, BUILD_INFO_NAME), required: false },
  ];
  const validatedPath = path.join(paths.dataDir, "storage", `${path.basename(configuration)}.validated.yaml`);
  if (await writtenWithin(validatedPath, storagePath, VALIDATED_MAX_AGE_MS)) candidates.push({ name: VALIDATED_NAME, file: validatedPath, required: false });
  const platform = platformFilesKey(storage);
  const listed = platform === null ? [] : (PLATFORM_FILES[platform] ?? []).map((f) => f.replaceAll("{name}", name));
  if (!listed.includes(firmware)) listed.unshift(firmware);
  for (const member of listed) candidates.push({ name: member, file: path.join(buildPath, ...member.split("/")), required: member === firmware });
  const image = (file: string): void => {
    const rel = buildRelative(buildPath, file);
    if (rel !== null) candidates.push({ name: rel, file, required: false });
  };
  const imageDir = path.dirname(firmwarePath);
  if (platform === null) for (const extra of EXTRA_IMAGE_NAMES) image(path.join(imageDir, extra));
  // Images idedata lists (bootloader, partitions, ...), when they lie in the build folder.
  if ((await fileSize(idedataPath)) !== null) {
    try {
      const idedata = await readJsonObject(idedataPath);
      const extra = idedata["extra"];
      const images = isPlainObject(extra) ? extra["flash_images"] : undefined;
      if (Array.isArray(images)) {
        for (const entry of images as unknown[]) {
          const imagePath = isPlainObject(entry) ? entry["path"] : undefined;
          // Only flash images (*.bin) by absolute path: idedata is build output, so it never
          // selects arbitrary files to ship.
          if (typeof imagePath === "string" && path.isAbsolute(imagePath) && imagePath.endsWith(".bin")) image(imagePath);
        }
      }
    } catch (err) {
      throw artifactsError("pack_failed", `unreadable idedata ${idedataPath}: ${errorMessage(err)}`, { cause: err });
    }
  }

  const wanted = candidates.filter((c) => c.required || only === undefined || only.has(path.posix.basename(c.name)));
  // Sizes first (all at once), so the caps are checked before anything is read.
  const sizes = await Promise.all(wanted.map((c) => fileSize(c.file).then((size) => ({ size }), (error: unknown) => ({ error }))));
  const present: { name: string; file: string }[] = [];
  // Two images with one base name: the first that exists wins (readers match images by base name).
  const seen = new Set<string>();
  let total = 0;
  for (const [i, candidate] of wanted.entries()) {
    const stat = sizes[i];
    const base = path.posix.basename(candidate.name);
    if (stat === undefined || seen.has(base)) continue;
    if ("error" in stat) throw stat.error;
    const size = stat.size;
    if (size === null) {
      if (candidate.required) {
        throw artifactsError("build_dir_missing", `the build of ${configuration} has no ${candidate.name} (${candidate.file})`);
      }
      continue;
    }
    if (size > maxBytes) {
      throw artifactsError("too_large", `${candidate.name} is ${size} bytes, over the limit of ${maxBytes}`);
    }
    total += size;
    if (total > maxBytes) {
      throw artifactsError("too_large", `the build artifacts exceed the limit of ${maxBytes} bytes`);
    }
    seen.add(base);
    present.push(candidate);
  }
  const members = await Promise.all(present.map(async (c) => ({ path: c.name, data: await fs.readFile(c.file) })));
  // A file that grew between stat and read is held to the same caps.
  if (members.reduce((n, m) => n + m.data.length, 0) > maxBytes) {
    throw artifactsError("too_large", `the build artifacts exceed the limit of ${maxBytes} bytes`);
  }

  const tarball = await createTarGz(members, "auto");
  if (tarball.length > maxBytes) {
    throw artifactsError("too_large", `the artifacts tarball is ${tarball.length} bytes, over the limit of ${maxBytes}`);
  }
  return {
    tarball,
    firmwareOffset: firmwareOffsetFor(storage),
    sha256: await sha256Hex(tarball),
    names: members.map((m) => m.path),
    firmware,
  };
}

export interface ReadArtifactsResult {
  /** Every member by its path in the tarball (relative to the build folder, or metadata at the top), in tarball order. */
  files: Map<string, Buffer>;
  /** The image StorageJSON names. */
  firmware: Buffer;
  /** Its member name: `.pioenvs/<name>/firmware.bin`, `.pioenvs/<name>/program`, ... (`firmware.bin` from older builders). */
  firmwareName: string;
  /** `firmware_bin_path` relative to `build_path`, as the build server had them: where the image goes in a build folder. */
  firmwareInBuild: string;
  storage: Record<string, unknown>;
  idedata: Record<string, unknown> | null;
}

function parseJsonMember(files: Map<string, Buffer>, name: string): Record<string, unknown> | null {
  const data = files.get(name);
  if (data === undefined) return null;
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(data));
  } catch (err) {
    throw artifactsError("malformed", `${name} in the artifacts is not valid JSON: ${errorMessage(err)}`);
  }
  if (!isPlainObject(value)) throw artifactsError("malformed", `${name} in the artifacts is not a JSON object`);
  return value;
}

/**
 * Reads an artifacts tarball from a receiver. Throws `ArtifactsError` with the
 * tar reader's codes (`malformed`, `not_a_file`, `unsafe_path`,
 * `member_too_large`, `too_large`, `too_many_members`, `duplicate`), plus
 * `duplicate` for two images with one base name and `missing_firmware` when
 * there is no `storage.json` or not the image it names. `storage.json` and
 * `idedata.json` must be JSON objects (`malformed`).
 */
export async function readArtifacts(bytes: Buffer, opts: ArtifactsOptions = {}): Promise<ReadArtifactsResult> {
  const maxBytes = opts.maxBytes ?? ARTIFACTS_MAX_BYTES;
  if (bytes.length > maxBytes) throw artifactsError("too_large", `artifacts tarball is larger than ${maxBytes} bytes`);
  let entries;
  try {
    entries = await readTarGz(bytes, {
      maxMemberBytes: maxBytes,
      maxTotalBytes: maxBytes,
      maxMembers: ARTIFACTS_MAX_MEMBERS,
      directories: "reject",
      // Already in memory and made of big images: large slices, same caps.
      bufferBytes: 256 * 1024,
    });
  } catch (err) {
    if (isTarSafetyError(err)) throw artifactsError(err.code, `bad artifacts tarball: ${err.message}`, { cause: err });
    throw err;
  }
  const files = new Map<string, Buffer>();
  const bases = new Set<string>();
  for (const entry of entries) {
    // The tar reader already refused absolute paths, `..` and control characters.
    if (!isRelativeName(entry.path)) {
      throw artifactsError("unsafe_path", `artifacts member ${JSON.stringify(entry.path)} is not a relative file path`);
    }
    const base = path.posix.basename(entry.path);
    if (bases.has(base)) throw artifactsError("duplicate", `two artifacts are named ${JSON.stringify(base)}`);
    bases.add(base);
    files.set(entry.path, entry.data);
  }
  const storage = parseJsonMember(files, STORAGE_NAME);
  if (storage === null) throw artifactsError("missing_firmware", "the artifacts have no storage.json to name the firmware image");
  const buildPath = storage["build_path"];
  const firmwarePath = storage["firmware_bin_path"];
  if (typeof buildPath !== "string" || typeof firmwarePath !== "string" || buildPath === "" || firmwarePath === "") {
    throw artifactsError("malformed", "storage.json in the artifacts has no build_path and firmware_bin_path");
  }
  const firmwareInBuild = buildRelative(buildPath, firmwarePath);
  if (firmwareInBuild === null) {
    throw artifactsError("malformed", `storage.json in the artifacts names a firmware image outside its build folder (${firmwarePath})`);
  }
  // Upstream's layout names the image by its path in the build folder; older builders of ours sent it flat.
  const flat = path.posix.basename(firmwareInBuild);
  const firmwareName = files.has(firmwareInBuild) ? firmwareInBuild : files.has(flat) ? flat : null;
  const firmware = firmwareName === null ? undefined : files.get(firmwareName);
  if (firmwareName === null || firmware === undefined) {
    throw artifactsError("missing_firmware", `the artifacts have no ${firmwareInBuild}, the image storage.json names`);
  }
  return { files, firmware, firmwareName, firmwareInBuild, storage, idedata: parseJsonMember(files, IDEDATA_NAME) };
}
