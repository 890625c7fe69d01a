/**
 * The firmware images a compile leaves behind, and where ESPHome puts them.
 * ESPHome records the build in its StorageJSON (`<data_dir>/storage/<yaml>.json`);
 * the images sit beside `firmware_bin_path`.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import type { Paths } from "../paths.ts";

import type { FirmwareBinary } from "../api/wire.ts";

export type { FirmwareBinary };

const KNOWN: readonly { file: string; title: string; suffix: string }[] = [
  { file: "firmware.factory.bin", title: "Factory format (for a first flash over USB)", suffix: ".factory.bin" },
  { file: "firmware.ota.bin", title: "OTA format (for updates over the network)", suffix: ".ota.bin" },
  { file: "firmware.bin", title: "Firmware image", suffix: ".bin" },
  { file: "firmware.uf2", title: "UF2 image (copy to the USB drive)", suffix: ".uf2" },
  { file: "firmware.elf", title: "ELF (for debugging)", suffix: ".elf" },
];

export const BINARY_FILES: readonly string[] = KNOWN.map((k) => k.file);

interface StorageInfo {
  name: string | null;
  firmwareBinPath: string | null;
}

export async function readStorage(paths: Paths, configuration: string): Promise<StorageInfo> {
  try {
    const raw: unknown = JSON.parse(await fs.readFile(paths.storageJson(configuration), "utf8"));
    if (typeof raw !== "object" || raw === null) return { name: null, firmwareBinPath: null };
    const rec = raw as Record<string, unknown>;
    return {
      name: typeof rec.name === "string" ? rec.name : null,
      firmwareBinPath: typeof rec.firmware_bin_path === "string" ? rec.firmware_bin_path : null,
    };
  } catch {
    return { name: null, firmwareBinPath: null };
  }
}

/** The folder holding a configuration's images: from StorageJSON, else ESPHome's default layout. */
export async function firmwareFolder(paths: Paths, configuration: string, deviceName: string): Promise<string> {
  const storage = await readStorage(paths, configuration);
  if (storage.firmwareBinPath !== null) return path.dirname(storage.firmwareBinPath);
  return paths.firmwareDir(storage.name ?? deviceName);
}

/** An image that exists, with where it is (the path stays on the server). */
export interface LocatedBinary {
  binary: FirmwareBinary;
  path: string;
}

/** The images that exist for a configuration, most useful first, with their paths. */
export async function locateBinaries(paths: Paths, configuration: string, deviceName: string): Promise<LocatedBinary[]> {
  const folder = await firmwareFolder(paths, configuration, deviceName);
  const found: LocatedBinary[] = [];
  for (const known of KNOWN) {
    const file = path.join(folder, known.file);
    try {
      const stat = await fs.stat(file);
      if (stat.isFile()) {
        found.push({ binary: { file: known.file, title: known.title, download_name: deviceName + known.suffix, size: stat.size }, path: file });
      }
    } catch {
      // not built
    }
  }
  return found;
}

/** The images that exist for a configuration, most useful first. */
export async function listBinaries(paths: Paths, configuration: string, deviceName: string): Promise<FirmwareBinary[]> {
  return (await locateBinaries(paths, configuration, deviceName)).map((b) => b.binary);
}
