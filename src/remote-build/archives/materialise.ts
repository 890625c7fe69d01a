/**
 * Offloader side of a remote compile: puts the build server's artifacts into
 * this machine's build tree the way the upstream Device Builder does
 * (shared/interop WIRE-FACTS §11), so a plain `esphome upload --device <port>`
 * (no `--file`) finds everything a local compile would have left:
 *
 * - every image at its path under `<data_dir>/build/<name>/`, `platformio.ini`
 *   and `build_info.json` at the top of it (`platformio.ini` keeps its old
 *   mtime when it is byte-identical);
 * - `idedata/<name>.json` with `prog_path` and `extra.flash_images[].path`
 *   re-rooted here and `cc_path` moved under this machine's PlatformIO core
 *   dir (or dropped), its mtime after `platformio.ini`'s so ESPHome uses the
 *   cache instead of running PlatformIO (serial uploads flash the firmware
 *   at `prog_path` with `.bin` and each flash image at its offset);
 * - `storage/<yaml>.json` last, with `build_path` and `firmware_bin_path`
 *   re-rooted; when the previous sidecar describes a different build
 *   (toolchain, framework, platform), the old build folder goes first.
 *
 * `validated.yaml` is not written: the local CLI validates the YAML itself
 * (ESPHome 2026.10 keeps its validated-config cache as JSON anyway). Older
 * builders of ours sent images flat (`firmware.bin` at the top); those go
 * beside the firmware image.
 */
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { errorMessage } from "../../errors.ts";
import type { Paths } from "../../paths.ts";
import { atomicWrite } from "../../store.ts";
import { BUILD_INFO_NAME, buildRelative, IDEDATA_NAME, PLATFORMIO_INI_NAME, STORAGE_NAME, VALIDATED_NAME, type ReadArtifactsResult, artifactsError } from "./artifacts.ts";
import { DEVICE_STEM_RE } from "./bundle.ts";

/** Members the offloader rewrites or leaves out instead of extracting. */
const NOT_EXTRACTED: ReadonlySet<string> = new Set([STORAGE_NAME, IDEDATA_NAME, VALIDATED_NAME]);
/** StorageJSON keys that, when they differ from the previous sidecar, mean another build: its folder goes. */
const BUILD_KEYS = ["core_platform", "esp_platform", "toolchain", "framework", "framework_version", "src_version"] as const;

export interface MaterialiseOptions {
  /** This machine's PlatformIO core dir ($PLATFORMIO_CORE_DIR, default ~/.platformio). */
  platformioCoreDir?: string;
}

export interface Materialised {
  buildDir: string;
  storagePath: string;
  /** Where the firmware image StorageJSON names now is. */
  firmwarePath: string;
  /** The rewritten idedata cache, when the build server sent one. */
  idedataPath: string | null;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** `file` (a build server path inside `from`) under `to`, or null when it is not inside `from`. */
function reroot(from: string, to: string, file: unknown): string | null {
  if (typeof file !== "string" || file === "") return null;
  const rel = buildRelative(from, file);
  return rel === null ? null : path.join(to, ...rel.split("/"));
}

async function readJson(file: string): Promise<Record<string, unknown> | null> {
  try {
    const value: unknown = JSON.parse(await fs.readFile(file, "utf8"));
    return isPlainObject(value) ? value : null;
  } catch {
    return null;
  }
}

async function mtimeMs(file: string): Promise<number | null> {
  try {
    return (await fs.stat(file)).mtimeMs;
  } catch {
    return null;
  }
}

/** idedata with the build server's paths re-rooted here (WIRE-FACTS §11, step 5). */
export function rewriteIdedata(idedata: Record<string, unknown>, remoteBuild: string, localBuild: string, platformioCoreDir: string): Record<string, unknown> {
  const out: Record<string, unknown> = { ...idedata };
  const prog = reroot(remoteBuild, localBuild, idedata["prog_path"]);
  if (prog !== null) out["prog_path"] = prog;
  const extra = idedata["extra"];
  if (isPlainObject(extra) && Array.isArray(extra["flash_images"])) {
    out["extra"] = {
      ...extra,
      flash_images: (extra["flash_images"] as unknown[]).map((image) => {
        if (!isPlainObject(image)) return image;
        const moved = reroot(remoteBuild, localBuild, image["path"]);
        return moved === null ? image : { ...image, path: moved };
      }),
    };
  }
  const cc = idedata["cc_path"];
  if (typeof cc === "string") {
    const parts = cc.split(/[\\/]/);
    const at = parts.lastIndexOf("packages");
    if (at >= 0 && at < parts.length - 1) out["cc_path"] = path.join(platformioCoreDir, ...parts.slice(at));
    else delete out["cc_path"];
  }
  return out;
}

/**
 * Materialises `artifacts` (from `readArtifacts`) for `configuration` (the
 * YAML's file name). Throws `ArtifactsError` (`malformed`) when StorageJSON
 * names no usable device; file system errors pass through.
 */
export async function materialiseArtifacts(paths: Paths, configuration: string, artifacts: ReadArtifactsResult, opts: MaterialiseOptions = {}): Promise<Materialised> {
  const { storage } = artifacts;
  const name = storage["name"];
  if (typeof name !== "string" || !DEVICE_STEM_RE.test(name)) {
    throw artifactsError("malformed", `storage.json in the artifacts has no valid device name (${JSON.stringify(name)})`);
  }
  const remoteBuild = storage["build_path"] as string; // checked by readArtifacts
  const buildDir = paths.buildDir(name);
  const storagePath = paths.storageJson(path.basename(configuration));
  const firmwarePath = path.join(buildDir, ...artifacts.firmwareInBuild.split("/"));

  const previous = await readJson(storagePath);
  if (previous !== null && BUILD_KEYS.some((k) => k in previous && k in storage && previous[k] !== storage[k])) {
    await fs.rm(buildDir, { recursive: true, force: true });
  }

  const flat = artifacts.firmwareName !== artifacts.firmwareInBuild;
  const iniPath = path.join(buildDir, PLATFORMIO_INI_NAME);
  for (const [member, data] of artifacts.files) {
    if (NOT_EXTRACTED.has(member)) continue;
    if (member === PLATFORMIO_INI_NAME) {
      const old = await fs.readFile(iniPath).catch(() => null);
      // Unchanged: its mtime stays, so the idedata cache stays newer (as upstream).
      if (old !== null && old.equals(data)) continue;
    }
    const besideFirmware = flat && member !== PLATFORMIO_INI_NAME && member !== BUILD_INFO_NAME;
    // Member paths were checked by the tar reader (relative, no `..`, regular files only).
    const target = besideFirmware ? path.join(path.dirname(firmwarePath), member) : path.join(buildDir, ...member.split("/"));
    await atomicWrite(target, data);
  }

  let idedataPath: string | null = null;
  if (artifacts.idedata !== null) {
    idedataPath = path.join(paths.dataDir, "idedata", `${name}.json`);
    const coreDir = opts.platformioCoreDir ?? process.env["PLATFORMIO_CORE_DIR"] ?? path.join(os.homedir(), ".platformio");
    const idedata = rewriteIdedata(artifacts.idedata, remoteBuild, buildDir, coreDir);
    await atomicWrite(idedataPath, `${JSON.stringify(idedata, null, 2)}\n`);
    // ESPHome reads the cache only while it is newer than platformio.ini.
    const ini = await mtimeMs(iniPath);
    const at = new Date(Math.max(Date.now(), (ini ?? 0) + 2000));
    try {
      await fs.utimes(idedataPath, at, at);
    } catch (err) {
      throw new Error(`could not date ${idedataPath}: ${errorMessage(err)}`, { cause: err });
    }
  }

  await atomicWrite(storagePath, `${JSON.stringify({ ...storage, name, build_path: buildDir, firmware_bin_path: firmwarePath }, null, 2)}\n`);
  return { buildDir, storagePath, firmwarePath, idedataPath };
}
