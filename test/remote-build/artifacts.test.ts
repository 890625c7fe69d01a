import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, promises as fs } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { resolvePaths, type Paths } from "../../src/paths.ts";
import {
  ArtifactsError,
  packArtifacts,
  readArtifacts,
  stageFirmware,
} from "../../src/remote-build/artifacts.ts";
import { createTarGz } from "../../src/remote-build/tar-safety.ts";
import { tempDir } from "../helpers/tmp.ts";
import { MiB, file, tgzOf, trailingZeroBomb, zeroMemberBomb } from "./tar-fixtures.ts";

const run = promisify(execFile);
const STAND_IN = path.resolve(import.meta.dirname, "../fixtures/bin/esphome");

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof ArtifactsError) return err.code;
    throw err;
  }
  throw new Error("expected an ArtifactsError");
}

interface FakeBuild {
  paths: Paths;
  /** Artifact name -> the source file it must come from. */
  sources: Record<string, string>;
}

/**
 * ESPHome's build layout, fabricated: StorageJSON at `<data>/storage/<cfg>.json`,
 * images in `<data>/build/<name>/.pioenvs/<name>/`, idedata at `<data>/idedata/<name>.json`
 * listing flash images (one of them, boot_app0.bin, outside the build folder).
 */
async function fakeBuild(opts: { platform?: string; images?: string[]; name?: string; extraStorage?: Record<string, unknown> } = {}): Promise<FakeBuild> {
  const root = await tempDir();
  const paths = resolvePaths({ configDir: path.join(root, "config"), dataDir: path.join(root, "data") });
  const name = opts.name ?? "kitchen";
  const envDir = paths.firmwareDir(name);
  await fs.mkdir(envDir, { recursive: true });
  const images = opts.images ?? ["firmware.bin", "firmware.factory.bin", "firmware.ota.bin", "firmware.elf", "bootloader.bin", "partitions.bin", "ota_data_initial.bin"];
  const sources: Record<string, string> = {};
  for (const image of images) {
    const p = path.join(envDir, image);
    await fs.writeFile(p, randomBytes(1000 + image.length));
    sources[image] = p;
  }
  const framework = path.join(root, "platformio", "framework");
  await fs.mkdir(framework, { recursive: true });
  sources["boot_app0.bin"] = path.join(framework, "boot_app0.bin");
  await fs.writeFile(sources["boot_app0.bin"], randomBytes(64));
  const idedata = {
    prog_path: path.join(envDir, "firmware.elf"),
    extra: {
      flash_images: [
        { offset: "0x1000", path: path.join(envDir, "bootloader.bin") },
        { offset: "0x8000", path: path.join(envDir, "partitions.bin") },
        { offset: "0xe000", path: sources["boot_app0.bin"] },
        { offset: "0x0", path: "relative/ignored.bin" },
        // Not a flash image: never shipped, whatever idedata says.
        { offset: "0x0", path: "/etc/hostname" },
      ],
    },
  };
  sources["idedata.json"] = path.join(paths.dataDir, "idedata", `${name}.json`);
  await fs.mkdir(path.dirname(sources["idedata.json"]), { recursive: true });
  await fs.writeFile(sources["idedata.json"], JSON.stringify(idedata));
  sources["platformio.ini"] = path.join(paths.buildDir(name), "platformio.ini");
  await fs.writeFile(sources["platformio.ini"], "[env:kitchen]\n");
  const platform = opts.platform ?? "ESP32";
  sources["storage.json"] = paths.storageJson("kitchen.yaml");
  await fs.mkdir(path.dirname(sources["storage.json"]), { recursive: true });
  await fs.writeFile(
    sources["storage.json"],
    JSON.stringify({
      storage_version: 1,
      name,
      target_platform: platform,
      core_platform: platform.toLowerCase().startsWith("esp32") ? "esp32" : platform.toLowerCase(),
      build_path: paths.buildDir(name),
      firmware_bin_path: path.join(envDir, "firmware.bin"),
      ...opts.extraStorage,
    }),
  );
  return { paths, sources };
}

describe("packArtifacts -> readArtifacts", () => {
  it("packs firmware.bin first, the other images, storage, idedata and platformio.ini; reading gives the same bytes", async () => {
    const { paths, sources } = await fakeBuild();
    const packed = await packArtifacts(paths, "kitchen.yaml");
    expect(packed.firmwareOffset).toBe("0x10000");
    expect(packed.sha256).toBe(createHash("sha256").update(packed.tarball).digest("hex"));
    expect(packed.names).toEqual([
      "firmware.bin",
      "firmware.factory.bin",
      "firmware.ota.bin",
      "firmware.elf",
      "bootloader.bin",
      "partitions.bin",
      "ota_data_initial.bin",
      "boot_app0.bin",
      "storage.json",
      "idedata.json",
      "platformio.ini",
    ]);

    const read = await readArtifacts(packed.tarball);
    expect([...read.files.keys()]).toEqual(packed.names);
    for (const [name, source] of Object.entries(sources)) {
      expect(read.files.get(name), name).toEqual(await fs.readFile(source));
    }
    expect(read.firmware).toEqual(await fs.readFile(sources["firmware.bin"]!));
    expect(read.storage?.["name"]).toBe("kitchen");
    expect(read.idedata?.["prog_path"]).toMatch(/firmware\.elf$/);
  });

  it("is deterministic", async () => {
    const { paths } = await fakeBuild();
    const a = await packArtifacts(paths, "kitchen.yaml");
    const b = await packArtifacts(paths, "kitchen.yaml");
    expect(a.sha256).toBe(b.sha256);
  });

  it.each([
    ["ESP8266", "0x0"],
    ["RP2040", "0x0"],
    ["BK72XX", "0x0"],
    ["ESP32S3", "0x10000"],
    ["ESP32C3", "0x10000"],
  ])("firmware offset for %s is %s; only existing images are packed", async (platform, offset) => {
    const { paths } = await fakeBuild({ platform, images: ["firmware.bin", "firmware.elf"] });
    const packed = await packArtifacts(paths, "kitchen.yaml");
    expect(packed.firmwareOffset).toBe(offset);
    expect(packed.names).toEqual(["firmware.bin", "firmware.elf", "boot_app0.bin", "storage.json", "idedata.json", "platformio.ini"]);
  });

  it("finds firmware in the default place when StorageJSON has no firmware_bin_path", async () => {
    const { paths } = await fakeBuild({ extraStorage: { firmware_bin_path: null, build_path: null } });
    const packed = await packArtifacts(paths, "kitchen.yaml");
    expect(packed.names.slice(0, 1)).toEqual(["firmware.bin"]);
    expect(packed.names).toContain("platformio.ini");
  });

  it.skipIf(!existsSync(STAND_IN))("packs a build made by the stand-in `esphome compile`", async () => {
    const root = await tempDir();
    const paths = resolvePaths({ configDir: path.join(root, "config"), dataDir: path.join(root, "data") });
    await fs.mkdir(paths.configDir, { recursive: true });
    await fs.writeFile(path.join(paths.configDir, "kitchen.yaml"), "esphome:\n  name: kitchen\nesp32:\n  board: esp32dev\n");
    await run(STAND_IN, ["--dashboard", "compile", "kitchen.yaml"], {
      cwd: paths.configDir,
      env: { ...process.env, ESPHOME_DATA_DIR: paths.dataDir, ESPHOME_STANDIN_COMPILE_SECONDS: "0" },
    });
    const packed = await packArtifacts(paths, "kitchen.yaml");
    expect(packed.firmwareOffset).toBe("0x10000");
    expect(packed.names[0]).toBe("firmware.bin");
    expect(packed.names).toEqual(expect.arrayContaining(["storage.json", "idedata.json", "platformio.ini", "firmware.factory.bin", "firmware.elf"]));
    const read = await readArtifacts(packed.tarball);
    const storage = JSON.parse(await fs.readFile(paths.storageJson("kitchen.yaml"), "utf8")) as { firmware_bin_path: string };
    expect(read.firmware).toEqual(await fs.readFile(storage.firmware_bin_path));
    for (const name of packed.names.filter((n) => n.endsWith(".bin") || n.endsWith(".elf"))) {
      expect(read.files.get(name), name).toEqual(await fs.readFile(path.join(paths.firmwareDir("kitchen"), name)));
    }
    expect(read.storage).toEqual(storage);
  });
});

describe("packArtifacts errors", () => {
  it("build_dir_missing: no StorageJSON", async () => {
    const { paths } = await fakeBuild();
    expect(await codeOf(packArtifacts(paths, "office.yaml"))).toBe("build_dir_missing");
  });

  it("build_dir_missing: StorageJSON but no firmware", async () => {
    const { paths, sources } = await fakeBuild();
    await fs.rm(sources["firmware.bin"]!);
    expect(await codeOf(packArtifacts(paths, "kitchen.yaml"))).toBe("build_dir_missing");
  });

  it("pack_failed: unreadable StorageJSON or an unusable device name", async () => {
    const { paths, sources } = await fakeBuild();
    await fs.writeFile(sources["storage.json"]!, "{not json");
    expect(await codeOf(packArtifacts(paths, "kitchen.yaml"))).toBe("pack_failed");
    await fs.writeFile(sources["storage.json"]!, JSON.stringify({ name: "../evil" }));
    expect(await codeOf(packArtifacts(paths, "kitchen.yaml"))).toBe("pack_failed");
    await fs.writeFile(sources["storage.json"]!, "[]");
    expect(await codeOf(packArtifacts(paths, "kitchen.yaml"))).toBe("pack_failed");
  });

  it("pack_failed: unreadable idedata", async () => {
    const { paths, sources } = await fakeBuild();
    await fs.writeFile(sources["idedata.json"]!, "{");
    expect(await codeOf(packArtifacts(paths, "kitchen.yaml"))).toBe("pack_failed");
  });

  it("too_large: one file over the cap (checked before reading) or the total over it", async () => {
    const { paths } = await fakeBuild();
    expect(await codeOf(packArtifacts(paths, "kitchen.yaml", { maxBytes: 1000 }))).toBe("too_large");
    expect(await codeOf(packArtifacts(paths, "kitchen.yaml", { maxBytes: 5000 }))).toBe("too_large");
    expect((await packArtifacts(paths, "kitchen.yaml", { maxBytes: MiB })).names.length).toBeGreaterThan(5);
  });
});

describe("readArtifacts rejects hostile tarballs", () => {
  const fw = file("firmware.bin", "FW");
  const cases: [string, string, () => Promise<Buffer> | Buffer][] = [
    ["not gzip", "malformed", () => Buffer.from("nope")],
    ["a corrupt header", "malformed", () => tgzOf([file("firmware.bin", "x", { badChecksum: true })])],
    ["a truncated stream", "malformed", () => tgzOf([fw]).subarray(0, 20)],
    ["traversal", "unsafe_path", () => tgzOf([fw, file("../storage.json", "{}")])],
    ["an absolute path", "unsafe_path", () => tgzOf([fw, file("/etc/cron.d/evil", "x")])],
    ["a sub-folder path", "unsafe_path", () => tgzOf([fw, file("build/firmware.bin", "x")])],
    ["a backslash", "unsafe_path", () => tgzOf([fw, file("..\\x", "x")])],
    ["a symlink", "not_a_file", () => tgzOf([{ name: "firmware.bin", type: "2", linkname: "/etc/shadow" }])],
    ["a hard link", "not_a_file", () => tgzOf([fw, { name: "firmware.elf", type: "1", linkname: "/etc/shadow" }])],
    ["a character device", "not_a_file", () => tgzOf([fw, { name: "tty", type: "3" }])],
    ["a block device", "not_a_file", () => tgzOf([fw, { name: "sda", type: "4" }])],
    ["a FIFO", "not_a_file", () => tgzOf([fw, { name: "pipe", type: "6" }])],
    ["a directory", "not_a_file", () => tgzOf([{ name: "build/", type: "5" }, fw])],
    ["a duplicate name", "duplicate", () => tgzOf([fw, file("firmware.bin", "other")])],
    ["no firmware.bin", "missing_firmware", () => tgzOf([file("storage.json", "{}"), file("firmware.elf", "x")])],
    ["an empty archive", "missing_firmware", () => tgzOf([])],
    ["idedata not JSON", "malformed", () => tgzOf([fw, file("idedata.json", "{")])],
    ["idedata not an object", "malformed", () => tgzOf([fw, file("idedata.json", "[1,2]")])],
    ["storage not an object", "malformed", () => tgzOf([fw, file("storage.json", "null")])],
  ];
  it.each(cases)("%s -> %s", async (_label, code, make) => {
    expect(await codeOf(readArtifacts(await make()))).toBe(code);
  });

  it("member over the cap: member_too_large from the header", async () => {
    const bytes = tgzOf([file("firmware.bin", "x", { declaredSize: 65 * MiB })], { eof: false });
    expect(await codeOf(readArtifacts(bytes))).toBe("member_too_large");
    expect(await codeOf(readArtifacts(tgzOf([file("firmware.bin", Buffer.alloc(2000))]), { maxBytes: 1500 }))).toBe(
      "member_too_large",
    );
  });

  it("sum of members over the cap: too_large", async () => {
    const bytes = tgzOf([file("firmware.bin", Buffer.alloc(1000)), file("firmware.elf", Buffer.alloc(1000))]);
    expect(await codeOf(readArtifacts(bytes, { maxBytes: 1500 }))).toBe("too_large");
  });

  it("compressed tarball over the cap: too_large without reading it", async () => {
    const bytes = tgzOf([file("firmware.bin", randomBytes(3000))]);
    expect(await codeOf(readArtifacts(bytes, { maxBytes: 2000 }))).toBe("too_large");
  });

  it("gzip bombs: a 200 MiB member, and zeros after the archive", async () => {
    expect(await codeOf(readArtifacts(await zeroMemberBomb("firmware.bin", 200 * MiB)))).toBe("member_too_large");
    expect(await codeOf(readArtifacts(await trailingZeroBomb([fw], 200 * MiB), { maxBytes: MiB }))).toBe("too_large");
  });

  it("accepts members written as ./name", async () => {
    const read = await readArtifacts(tgzOf([file("./firmware.bin", "FW")]));
    expect(read.firmware.toString()).toBe("FW");
    expect(read.storage).toBeNull();
    expect(read.idedata).toBeNull();
  });
});

describe("stageFirmware", () => {
  it("writes the files into a fresh temp folder and removes it on cleanup", async () => {
    const root = await tempDir();
    const tmpRoot = path.join(root, "tmp");
    const files = new Map([
      ["firmware.bin", Buffer.from("FW")],
      ["firmware.factory.bin", Buffer.from("FACTORY")],
    ]);
    const a = await stageFirmware(files, tmpRoot);
    const b = await stageFirmware(files, tmpRoot);
    expect(a.dir).not.toBe(b.dir);
    expect(path.dirname(a.dir)).toBe(path.resolve(tmpRoot));
    expect(a.firmwarePath).toBe(path.join(a.dir, "firmware.bin"));
    expect(await fs.readFile(a.firmwarePath, "utf8")).toBe("FW");
    expect(await fs.readFile(path.join(a.dir, "firmware.factory.bin"), "utf8")).toBe("FACTORY");
    expect((await fs.stat(a.firmwarePath)).mode & 0o777).toBe(0o644);
    await a.cleanup();
    await a.cleanup();
    expect(existsSync(a.dir)).toBe(false);
    expect(existsSync(b.dir)).toBe(true);
    await b.cleanup();
    expect(await fs.readdir(tmpRoot)).toEqual([]);
  });

  it("round trip: pack, read, stage", async () => {
    const { paths, sources } = await fakeBuild();
    const read = await readArtifacts((await packArtifacts(paths, "kitchen.yaml")).tarball);
    const staged = await stageFirmware(read.files, paths.tmpDir);
    expect(await fs.readFile(staged.firmwarePath)).toEqual(await fs.readFile(sources["firmware.bin"]!));
    await staged.cleanup();
  });

  it.each([["../escape"], ["sub/x"], ["/abs"], [".."], [""], ["a\u0000b"]])(
    "unsafe_path: refuses the name %j and creates nothing",
    async (name) => {
      const root = await tempDir();
      const files = new Map([
        ["firmware.bin", Buffer.from("FW")],
        [name, Buffer.from("x")],
      ]);
      expect(await codeOf(stageFirmware(files, path.join(root, "tmp")))).toBe("unsafe_path");
      expect(await fs.readdir(root)).toEqual([]);
    },
  );

  it("missing_firmware: nothing to stage", async () => {
    const root = await tempDir();
    expect(await codeOf(stageFirmware(new Map([["firmware.elf", Buffer.from("x")]]), root))).toBe("missing_firmware");
    expect(await fs.readdir(root)).toEqual([]);
  });

  it("createTarGz output with a nested name is refused by readArtifacts", async () => {
    const bytes = await createTarGz([
      { path: "firmware.bin", data: Buffer.from("x") },
      { path: "a/b.bin", data: Buffer.from("y") },
    ]);
    expect(await codeOf(readArtifacts(bytes))).toBe("unsafe_path");
  });
});
