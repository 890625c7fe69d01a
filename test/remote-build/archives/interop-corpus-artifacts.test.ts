/**
 * Artifact tarballs against the upstream Device Builder's
 * (../shared/interop/upstream-2026-05-31/artifacts-*.tar.gz, one per
 * platform): each of upstream's is accepted, materialised into a local build
 * tree, and `esphome upload` (the stand-in, which reads the build tree as the
 * real CLI does) finds what it needs there over the network and over a serial
 * port; and ours, packed from a stand-in build of the same device, has
 * upstream's member paths and order, per-member metadata and firmware offset.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, promises as fs } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { gunzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { esphomeEnv } from "../../../src/esphome/cli.ts";
import { resolvePaths } from "../../../src/paths.ts";
import { packArtifacts, readArtifacts } from "../../../src/remote-build/archives/artifacts.ts";
import { materialiseArtifacts } from "../../../src/remote-build/archives/materialise.ts";
import { STAND_IN } from "../../helpers/builder.ts";
import { artifactsHeader, corpusFile, corpusMissing } from "../../helpers/corpus.ts";
import { tempDir } from "../../helpers/tmp.ts";

const run = promisify(execFile);
const PLATFORMS = ["esp32", "esp32c3", "esp8266", "rp2040", "bk72xx"] as const;

interface Call {
  command: string;
  exit_code: number;
  file: string | null;
  file_sha256: string | null;
  images: { offset: string; path: string; sha256: string }[];
  idedata_source: string | null;
}

/** Each member's tar header as written: name, mode, uid, gid, mtime, type, user and group names, magic. */
function tarHeaders(tgz: Buffer): { name: string; mode: number; uid: number; gid: number; mtime: number; type: string; uname: string; gname: string; magic: string }[] {
  const tar = gunzipSync(tgz);
  const out = [];
  const str = (b: Buffer, at: number, len: number): string => b.subarray(at, at + len).toString("latin1").replace(/\0.*$/s, "");
  const oct = (b: Buffer, at: number, len: number): number => parseInt(str(b, at, len).trim() || "0", 8);
  let pax: string | null = null;
  for (let pos = 0; pos + 512 <= tar.length; ) {
    const h = tar.subarray(pos, pos + 512);
    if (h.every((x) => x === 0)) break;
    const size = oct(h, 124, 12);
    const type = str(h, 156, 1) || "0";
    const body = tar.subarray(pos + 512, pos + 512 + size);
    pos += 512 + Math.ceil(size / 512) * 512;
    if (type === "x") {
      pax = /\d+ path=(.*)\n/.exec(body.toString("utf8"))?.[1] ?? null;
      continue;
    }
    const prefix = str(h, 345, 155);
    const name = pax ?? (prefix === "" ? str(h, 0, 100) : `${prefix}/${str(h, 0, 100)}`);
    pax = null;
    out.push({ name, mode: oct(h, 100, 8), uid: oct(h, 108, 8), gid: oct(h, 116, 8), mtime: oct(h, 136, 12), type, uname: str(h, 265, 32), gname: str(h, 297, 32), magic: str(h, 257, 6) });
  }
  return out;
}

/** A config folder holding the device's YAML as upstream validated it (its `validated.yaml`), and the secrets it names. */
async function deviceConfig(validatedYaml: Buffer, device: string): Promise<string> {
  const dir = await tempDir("esphome-config-");
  await fs.writeFile(path.join(dir, `${device}.yaml`), validatedYaml);
  await fs.writeFile(path.join(dir, "secrets.yaml"), "wifi_ssid: test\nwifi_password: secret\n");
  return dir;
}

async function upload(dir: string, device: string, port: string, env: Record<string, string> = {}): Promise<Call> {
  const record = path.join(dir, "record.jsonl");
  await fs.rm(record, { force: true });
  await run(STAND_IN, ["--dashboard", "upload", path.join(dir, `${device}.yaml`), "--device", port], {
    env: { ...esphomeEnv(path.join(dir, ".esphome")), ESPHOME_STANDIN_RECORD: record, ESPHOME_STANDIN_UPLOAD_SECONDS: "0", ESPHOME_STANDIN_FAIL: "", ...env },
  });
  return JSON.parse((await fs.readFile(record, "utf8")).trim()) as Call;
}

const sha = (data: Buffer): string => createHash("sha256").update(data).digest("hex");

describe.skipIf(corpusMissing())("upstream's artifact tarballs", () => {
  it.each(PLATFORMS)("%s: accepted, materialised, and esphome upload finds what it needs (OTA and serial)", async (platform) => {
    const header = artifactsHeader(platform);
    const bytes = await fs.readFile(corpusFile(`artifacts-${platform}.tar.gz`));
    expect({ total_bytes: bytes.length, sha: sha(bytes) }).toEqual({ total_bytes: header.total_bytes, sha: header.artifacts_sha256 });
    const read = await readArtifacts(bytes);
    expect([...read.files.keys()]).toEqual(header.members);

    const device = header.device;
    const dir = await deviceConfig(read.files.get("validated.yaml")!, device);
    const paths = resolvePaths({ configDir: dir });
    const done = await materialiseArtifacts(paths, `${device}.yaml`, read, { platformioCoreDir: path.join(dir, "pio-core") });
    const build = paths.buildDir(device);
    expect(done).toMatchObject({ buildDir: build, storagePath: paths.storageJson(`${device}.yaml`) });
    // Every member under the build folder (build-tree paths), the metadata rewritten for here.
    for (const [member, data] of read.files) {
      if (["storage.json", "idedata.json", "validated.yaml"].includes(member)) continue;
      expect(await fs.readFile(path.join(build, ...member.split("/"))), member).toEqual(data);
    }
    const storage = JSON.parse(await fs.readFile(done.storagePath, "utf8")) as Record<string, unknown>;
    expect(storage).toMatchObject({ ...read.storage, build_path: build, firmware_bin_path: path.join(build, read.firmwareInBuild) });
    const idedata = JSON.parse(await fs.readFile(done.idedataPath!, "utf8")) as { prog_path: string; cc_path?: string; extra: { flash_images: { path: string }[] } };
    expect(idedata.prog_path.startsWith(build + path.sep)).toBe(true);
    for (const image of idedata.extra.flash_images) expect(existsSync(image.path), image.path).toBe(true);
    if (idedata.cc_path !== undefined) expect(idedata.cc_path.startsWith(path.join(dir, "pio-core", "packages") + path.sep)).toBe(true);
    const dated = async (p: string): Promise<number> => (await fs.stat(p)).mtimeMs;
    expect(await dated(done.idedataPath!)).toBeGreaterThan(await dated(path.join(build, "platformio.ini")));

    // Over the network: the image StorageJSON names, byte for byte.
    const ota = await upload(dir, device, "OTA");
    expect(ota).toMatchObject({ exit_code: 0, file: done.firmwarePath, file_sha256: sha(read.firmware) });

    // Over a serial port, on a machine without a toolchain: everything comes from the build tree and the idedata cache.
    const serial = await upload(dir, device, "/dev/ttyUSB0", { ESPHOME_STANDIN_SERIAL_OK: "1", ESPHOME_STANDIN_NO_TOOLCHAIN: "1" });
    expect(serial.exit_code).toBe(0);
    const member = (name: string): Buffer => read.files.get(`.pioenvs/${device}/${name}`)!;
    const at = (name: string): string => path.join(build, ".pioenvs", device, name);
    if (platform === "esp32" || platform === "esp32c3") {
      expect(serial.idedata_source).toBe("cache");
      expect(serial.images).toEqual([
        { offset: "0x10000", path: at("firmware.bin"), sha256: sha(member("firmware.bin")) },
        { offset: platform === "esp32" ? "0x1000" : "0x0", path: at("bootloader.bin"), sha256: sha(member("bootloader.bin")) },
        { offset: "0x8000", path: at("partitions.bin"), sha256: sha(member("partitions.bin")) },
        { offset: "0xe000", path: at("ota_data_initial.bin"), sha256: sha(member("ota_data_initial.bin")) },
      ]);
    } else if (platform === "esp8266") {
      expect(serial.idedata_source).toBe("cache");
      expect(serial.images).toEqual([{ offset: "0x0", path: at("firmware.bin"), sha256: sha(member("firmware.bin")) }]);
    } else {
      // RP2040 and LibreTiny flash through PlatformIO, from the build folder's platformio.ini and ELF.
      expect(serial.file).toBe(at("firmware.elf"));
      expect(serial.file_sha256).toBe(sha(member("firmware.elf")));
      if (platform === "rp2040") expect(await fs.readFile(at("firmware.bin.signed"))).toEqual(member("firmware.bin"));
    }
  });

  it("a stale idedata cache is not used: the upload would need PlatformIO, which this machine does not have", async () => {
    const read = await readArtifacts(await fs.readFile(corpusFile("artifacts-esp32.tar.gz")));
    const dir = await deviceConfig(read.files.get("validated.yaml")!, "kitchen");
    const paths = resolvePaths({ configDir: dir });
    const done = await materialiseArtifacts(paths, "kitchen.yaml", read);
    const old = new Date(Date.now() - 3_600_000);
    await fs.utimes(done.idedataPath!, old, old);
    await expect(upload(dir, "kitchen", "/dev/ttyUSB0", { ESPHOME_STANDIN_SERIAL_OK: "1", ESPHOME_STANDIN_NO_TOOLCHAIN: "1" })).rejects.toThrow();
  });
});

describe.skipIf(corpusMissing())("our artifact tarballs beside upstream's", () => {
  it.each(PLATFORMS)("%s: upstream's member paths and order, per-member metadata and firmware_offset", async (platform) => {
    const header = artifactsHeader(platform);
    const upstream = await fs.readFile(corpusFile(`artifacts-${platform}.tar.gz`));
    const read = await readArtifacts(upstream);
    const device = header.device;
    // A stand-in build of the same device on a build server of ours, as ESPHome 2026.6 (the capture's) leaves it.
    const dir = await deviceConfig(read.files.get("validated.yaml")!, device);
    const paths = resolvePaths({ configDir: dir });
    await run(STAND_IN, ["--dashboard", "compile", path.join(dir, `${device}.yaml`)], {
      env: { ...esphomeEnv(paths.dataDir), ESPHOME_STANDIN_VERSION: "2026.6.5", ESPHOME_STANDIN_COMPILE_SECONDS: "0", ESPHOME_STANDIN_FAIL: "" },
    });
    const ours = await packArtifacts(paths, `${device}.yaml`);
    expect(ours.names).toEqual(header.members);
    expect(ours.firmwareOffset).toBe(header.firmware_offset);
    expect(tarHeaders(ours.tarball)).toEqual(tarHeaders(upstream));
    for (const h of tarHeaders(ours.tarball)) expect(h).toMatchObject({ mode: 0o644, uid: 0, gid: 0, mtime: 0, type: "0", uname: "", gname: "", magic: "ustar" });
    // And upstream's offloader side of ours: the same reader takes it.
    expect([...(await readArtifacts(ours.tarball)).files.keys()]).toEqual(header.members);
  });
});
