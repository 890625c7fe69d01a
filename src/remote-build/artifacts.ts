/**
 * Build artifacts of a remote compile.
 *
 * Receiver side, `packArtifacts`: a flat, deterministic gzip tarball of the
 * build ESPHome just made — `firmware.bin` first, then the other flash images
 * beside it, the images idedata lists, `storage.json`, `idedata.json` and
 * `platformio.ini` — with each file's size checked against the cap before it
 * is read, and the total and the rendered tarball checked too.
 *
 * Offloader side, `readArtifacts`: the tarball came from another machine, so it
 * goes through the safe tar reader (regular files only, size caps, no
 * duplicates) and must be flat (basenames only) and hold `firmware.bin`.
 * `stageFirmware` writes the files into a fresh temp folder for
 * `esphome upload --file`, and removes it afterwards, without blocking.
 */
import { createHash } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import { setImmediate as yieldToLoop } from "node:timers/promises";
import { errorMessage } from "../errors.ts";
import type { Paths } from "../paths.ts";
import { DEVICE_STEM_RE } from "./bundle.ts";
import { ARTIFACTS_MAX_BYTES } from "./chunks.ts";
import { TarSafetyError, createTarGz, readTarGz, type TarSafetyErrorCode } from "./tar-safety.ts";

export const FIRMWARE_NAME = "firmware.bin";
export const STORAGE_NAME = "storage.json";
export const IDEDATA_NAME = "idedata.json";
export const PLATFORMIO_INI_NAME = "platformio.ini";
/** Images collected from beside firmware.bin when they exist, in this order. */
export const EXTRA_IMAGE_NAMES: readonly string[] = [
  "firmware.factory.bin",
  "firmware.ota.bin",
  "firmware.uf2",
  "firmware.elf",
  "bootloader.bin",
  "partitions.bin",
  "ota_data_initial.bin",
  "boot_app0.bin",
];
const HASH_SLICE_BYTES = 4 * 1024 * 1024;
/** Most members an artifacts tarball may have. */
export const ARTIFACTS_MAX_MEMBERS = 256;

export type ArtifactsErrorCode = TarSafetyErrorCode | "build_dir_missing" | "pack_failed" | "missing_firmware";

export class ArtifactsError extends Error {
  readonly code: ArtifactsErrorCode;

  constructor(code: ArtifactsErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ArtifactsError";
    this.code = code;
  }
}

export interface PackedArtifacts {
  tarball: Buffer;
  /** Where firmware.bin goes in flash: "0x10000" for the ESP32 family, "0x0" otherwise. */
  firmwareOffset: string;
  /** Lowercase hex SHA-256 of `tarball`. */
  sha256: string;
  /** Member names in tarball order (firmware.bin first). */
  names: string[];
}

export interface ArtifactsOptions {
  /** Cap per file, on the sum of files and on the tarball. Default ARTIFACTS_MAX_BYTES. */
  maxBytes?: number;
  /**
   * Packing only: leave out the optional files not named here (firmware.bin
   * and storage.json always go). An install that flashes over the network
   * needs firmware.bin alone, not the factory image or the ELF.
   */
  only?: ReadonlySet<string>;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** "0x10000" when StorageJSON's target_platform or core_platform names an ESP32 chip, else "0x0". */
export function firmwareOffsetFor(storage: Record<string, unknown>): string {
  for (const key of ["target_platform", "core_platform"]) {
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
    if (err instanceof ArtifactsError) throw err;
    throw new ArtifactsError("pack_failed", `packing the build artifacts failed: ${errorMessage(err)}`, { cause: err });
  }
}

async function pack(paths: Paths, configuration: string, maxBytes: number, only: ReadonlySet<string> | undefined): Promise<PackedArtifacts> {
  const storagePath = paths.storageJson(path.basename(configuration));
  let storage: Record<string, unknown>;
  try {
    storage = await readJsonObject(storagePath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw new ArtifactsError("build_dir_missing", `no build information for ${configuration} (${storagePath} is missing)`);
    }
    throw new ArtifactsError("pack_failed", `unreadable StorageJSON ${storagePath}: ${errorMessage(err)}`, { cause: err });
  }
  const name = storage["name"];
  if (typeof name !== "string" || !DEVICE_STEM_RE.test(name)) {
    throw new ArtifactsError("pack_failed", `StorageJSON ${storagePath} has no valid device name`);
  }
  const firmwarePath =
    typeof storage["firmware_bin_path"] === "string" && storage["firmware_bin_path"] !== ""
      ? path.resolve(storage["firmware_bin_path"])
      : path.join(paths.firmwareDir(name), FIRMWARE_NAME);
  const buildPath =
    typeof storage["build_path"] === "string" && storage["build_path"] !== ""
      ? path.resolve(storage["build_path"])
      : paths.buildDir(name);
  const idedataPath = path.join(paths.dataDir, "idedata", `${name}.json`);

  const candidates: { name: string; file: string; required: boolean }[] = [
    { name: FIRMWARE_NAME, file: firmwarePath, required: true },
  ];
  const imageDir = path.dirname(firmwarePath);
  for (const image of EXTRA_IMAGE_NAMES) candidates.push({ name: image, file: path.join(imageDir, image), required: false });
  // Images idedata lists (bootloader, partitions, boot_app0 from the framework package, …).
  if ((await fileSize(idedataPath)) !== null) {
    try {
      const idedata = await readJsonObject(idedataPath);
      const extra = idedata["extra"];
      const images = isPlainObject(extra) ? extra["flash_images"] : undefined;
      if (Array.isArray(images)) {
        for (const image of images as unknown[]) {
          const imagePath = isPlainObject(image) ? image["path"] : undefined;
          // Only flash images (*.bin) by absolute path: idedata is build output, so it never
          // selects arbitrary files to ship.
          if (typeof imagePath === "string" && path.isAbsolute(imagePath) && imagePath.endsWith(".bin")) {
            candidates.push({ name: path.basename(imagePath), file: imagePath, required: false });
          }
        }
      }
    } catch (err) {
      throw new ArtifactsError("pack_failed", `unreadable idedata ${idedataPath}: ${errorMessage(err)}`, { cause: err });
    }
  }
  candidates.push({ name: STORAGE_NAME, file: storagePath, required: true });
  candidates.push({ name: IDEDATA_NAME, file: idedataPath, required: false });
  candidates.push({ name: PLATFORMIO_INI_NAME, file: path.join(buildPath, PLATFORMIO_INI_NAME), required: false });

  const wanted = candidates.filter((c) => isFlatName(c.name) && (c.required || only === undefined || only.has(c.name)));
  // Sizes first (all at once), so the caps are checked before anything is read.
  const sizes = await Promise.all(wanted.map((c) => fileSize(c.file).then((size) => ({ size }), (error: unknown) => ({ error }))));
  const present: { name: string; file: string }[] = [];
  const seen = new Set<string>();
  let total = 0;
  for (const [i, candidate] of wanted.entries()) {
    const stat = sizes[i];
    // Duplicate basenames: the first file that exists wins; later ones are not looked at.
    if (stat === undefined || seen.has(candidate.name)) continue;
    if ("error" in stat) throw stat.error;
    const size = stat.size;
    if (size === null) {
      if (candidate.required) {
        throw new ArtifactsError("build_dir_missing", `the build of ${configuration} has no ${candidate.name} (${candidate.file})`);
      }
      continue;
    }
    if (size > maxBytes) {
      throw new ArtifactsError("too_large", `${candidate.name} is ${size} bytes, over the limit of ${maxBytes}`);
    }
    total += size;
    if (total > maxBytes) {
      throw new ArtifactsError("too_large", `the build artifacts exceed the limit of ${maxBytes} bytes`);
    }
    seen.add(candidate.name);
    present.push(candidate);
  }
  const members = await Promise.all(present.map(async (c) => ({ path: c.name, data: await fs.readFile(c.file) })));
  // A file that grew between stat and read is held to the same caps.
  if (members.reduce((n, m) => n + m.data.length, 0) > maxBytes) {
    throw new ArtifactsError("too_large", `the build artifacts exceed the limit of ${maxBytes} bytes`);
  }

  const tarball = await createTarGz(members, "auto");
  if (tarball.length > maxBytes) {
    throw new ArtifactsError("too_large", `the artifacts tarball is ${tarball.length} bytes, over the limit of ${maxBytes}`);
  }
  return {
    tarball,
    firmwareOffset: firmwareOffsetFor(storage),
    sha256: await sha256Hex(tarball),
    names: members.map((m) => m.path),
  };
}

export interface ReadArtifactsResult {
  /** Every member by name, in tarball order. */
  files: Map<string, Buffer>;
  firmware: Buffer;
  storage: Record<string, unknown> | null;
  idedata: Record<string, unknown> | null;
}

function parseJsonMember(files: Map<string, Buffer>, name: string): Record<string, unknown> | null {
  const data = files.get(name);
  if (data === undefined) return null;
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(data));
  } catch (err) {
    throw new ArtifactsError("malformed", `${name} in the artifacts is not valid JSON: ${errorMessage(err)}`);
  }
  if (!isPlainObject(value)) throw new ArtifactsError("malformed", `${name} in the artifacts is not a JSON object`);
  return value;
}

/**
 * Reads an artifacts tarball from a receiver. Throws `ArtifactsError` with the
 * tar reader's codes (`malformed`, `not_a_file`, `unsafe_path`,
 * `member_too_large`, `too_large`, `too_many_members`, `duplicate`), plus
 * `unsafe_path` for a name that is not flat and `missing_firmware`.
 * `storage.json` and `idedata.json`, when present, must be JSON objects
 * (`malformed`).
 */
export async function readArtifacts(bytes: Buffer, opts: ArtifactsOptions = {}): Promise<ReadArtifactsResult> {
  const maxBytes = opts.maxBytes ?? ARTIFACTS_MAX_BYTES;
  if (bytes.length > maxBytes) throw new ArtifactsError("too_large", `artifacts tarball is larger than ${maxBytes} bytes`);
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
    if (err instanceof TarSafetyError) throw new ArtifactsError(err.code, `bad artifacts tarball: ${err.message}`, { cause: err });
    throw err;
  }
  const files = new Map<string, Buffer>();
  for (const entry of entries) {
    if (!isFlatName(entry.path)) {
      throw new ArtifactsError("unsafe_path", `artifacts member ${JSON.stringify(entry.path)} is not a plain file name`);
    }
    files.set(entry.path, entry.data);
  }
  const firmware = files.get(FIRMWARE_NAME);
  if (firmware === undefined) throw new ArtifactsError("missing_firmware", "the artifacts tarball has no firmware.bin");
  return {
    files,
    firmware,
    storage: parseJsonMember(files, STORAGE_NAME),
    idedata: parseJsonMember(files, IDEDATA_NAME),
  };
}

export interface StagedFirmware {
  /** The temp folder holding the files. */
  dir: string;
  /** `<dir>/firmware.bin`. */
  firmwarePath: string;
  /** Removes the folder; safe to call more than once. */
  cleanup(): Promise<void>;
}

/**
 * Writes the artifact files into a fresh temp folder under `tmpRoot` (created
 * if needed), each 0644. Names must be flat (`unsafe_path`) and include
 * firmware.bin (`missing_firmware`). On failure the folder is removed.
 */
export async function stageFirmware(files: ReadonlyMap<string, Uint8Array>, tmpRoot: string): Promise<StagedFirmware> {
  for (const name of files.keys()) {
    if (!isFlatName(name)) throw new ArtifactsError("unsafe_path", `artifact name ${JSON.stringify(name)} is not a plain file name`);
  }
  if (!files.has(FIRMWARE_NAME)) throw new ArtifactsError("missing_firmware", "no firmware.bin to stage");
  await fs.mkdir(tmpRoot, { recursive: true });
  const dir = await fs.mkdtemp(path.join(path.resolve(tmpRoot), "remote-artifacts-"));
  const cleanup = async (): Promise<void> => {
    await fs.rm(dir, { recursive: true, force: true });
  };
  try {
    for (const [name, data] of files) {
      const target = path.join(dir, name);
      await fs.writeFile(target, data, { flag: "wx", mode: 0o644 });
      await fs.chmod(target, 0o644);
    }
  } catch (err) {
    await cleanup();
    throw err;
  }
  return { dir, firmwarePath: path.join(dir, FIRMWARE_NAME), cleanup };
}
