import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, promises as fs } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { resolvePaths, type Paths } from "../../../src/paths.ts";
import { buildRelative, packArtifacts, readArtifacts, isArtifactsError } from "../../../src/remote-build/archives/artifacts.ts";
import { createTarGz } from "../../../src/remote-build/transport/tar-writer.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { MiB, file, tgzOf, trailingZeroBomb, zeroMemberBomb } from "../transport/tar-fixtures.ts";

const run = promisify(execFile);
const STAND_IN = path.resolve(import.meta.dirname, "../../fixtures/bin/esphome");

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (isArtifactsError(err)) return err.code;
    throw err;
  }
  throw new Error("expected an ArtifactsError");
}

interface FakeBuild {
  paths: Paths;
  /** Member name -> the source file it must come from. */
  sources: Record<string, string>;
}

type Layout = "platformio" | "esp-idf" | "host";

/**
 * ESPHome's build layout, fabricated: StorageJSON at `<data>/storage/<cfg>.json`,
 * `build_info.json` in the build folder, idedata at `<data>/idedata/<name>.json`
 * listing flash images (one of them, boot_app0.bin, outside the build folder), and
 * the images where ESPHome 2026.10 leaves them: `.pioenvs/<name>/` for PlatformIO
 * builds (with platformio.ini), `build/` for native ESP-IDF ones (firmware
 * `<name>.bin`, bootloader and partition table in sub-folders), `.pioenvs/<name>/program`
 * for the host platform.
 */
async function fakeBuild(opts: { platform?: string; images?: string[]; name?: string; layout?: Layout; extraStorage?: Record<string, unknown> } = {}): Promise<FakeBuild> {
  const root = await tempDir();
  const paths = resolvePaths({ configDir: path.join(root, "config"), dataDir: path.join(root, "data") });
  const name = opts.name ?? "kitchen";
  const layout = opts.layout ?? "platformio";
  const build = paths.buildDir(name);
  const sources: Record<string, string> = {};
  const put = async (member: string, data: Buffer | string): Promise<string> => {
    const p = path.join(build, ...member.split("/"));
    await fs.mkdir(path.dirname(p), { recursive: true });
    await fs.writeFile(p, data);
    sources[member] = p;
    return p;
  };
  const imageDir = layout === "esp-idf" ? "build" : `.pioenvs/${name}`;
  const firmwareMember = layout === "esp-idf" ? `build/${name}.bin` : layout === "host" ? `.pioenvs/${name}/program` : `.pioenvs/${name}/firmware.bin`;
  const defaults =
    layout === "esp-idf" ? ["firmware.factory.bin", "firmware.ota.bin", "firmware.elf", "ota_data_initial.bin"]
    : layout === "host" ? []
    : ["firmware.factory.bin", "firmware.ota.bin", "firmware.elf", "bootloader.bin", "partitions.bin", "ota_data_initial.bin"];
  const firmwarePath = await put(firmwareMember, randomBytes(1500));
  for (const image of opts.images ?? defaults) await put(`${imageDir}/${image}`, randomBytes(1000 + image.length));
  const framework = path.join(root, "platformio", "framework");
  await fs.mkdir(framework, { recursive: true });
  await fs.writeFile(path.join(framework, "boot_app0.bin"), randomBytes(64));
  const flashImages =
    layout === "esp-idf"
      ? [
          { offset: "0x1000", path: await put("build/bootloader/bootloader.bin", randomBytes(300)) },
          { offset: "0x8000", path: await put("build/partition_table/partition-table.bin", randomBytes(200)) },
          { offset: "0xd000", path: path.join(build, "build", "ota_data_initial.bin") },
        ]
      : [
          { offset: "0x1000", path: path.join(build, imageDir, "bootloader.bin") },
          { offset: "0x8000", path: path.join(build, imageDir, "partitions.bin") },
        ];
  const idedata = {
    prog_path: path.join(build, imageDir, layout === "host" ? "program" : "firmware.elf"),
    extra: {
      flash_images: [
        ...flashImages,
        // Outside the build folder (a framework package): not part of the build, not shipped.
        { offset: "0xe000", path: path.join(framework, "boot_app0.bin") },
        { offset: "0x0", path: "relative/ignored.bin" },
        // Not a flash image: never shipped, whatever idedata says.
        { offset: "0x0", path: "/etc/hostname" },
      ],
    },
  };
  sources["idedata.json"] = path.join(paths.dataDir, "idedata", `${name}.json`);
  await fs.mkdir(path.dirname(sources["idedata.json"]), { recursive: true });
  await fs.writeFile(sources["idedata.json"], JSON.stringify(idedata));
  if (layout === "platformio") await put("platformio.ini", `[env:${name}]\n`);
  await put("build_info.json", JSON.stringify({ config_hash: 1, build_time_str: "2026-12-02 04:55:32 +0000" }));
  const platform = opts.platform ?? (layout === "host" ? "HOST" : "ESP32");
  sources["storage.json"] = paths.storageJson("kitchen.yaml");
  await fs.mkdir(path.dirname(sources["storage.json"]), { recursive: true });
  await fs.writeFile(
    sources["storage.json"],
    JSON.stringify({
      storage_version: 1,
      name,
      esp_platform: platform,
      target_platform: platform,
      core_platform: platform.toLowerCase().startsWith("esp32") ? "esp32" : platform.toLowerCase(),
      toolchain: layout,
      build_path: build,
      firmware_bin_path: firmwarePath,
      ...opts.extraStorage,
    }),
  );
  return { paths, sources };
}

const META = ["storage.json", "idedata.json", "platformio.ini", "build_info.json"];

describe("packArtifacts -> readArtifacts", () => {
  it("packs the metadata, then the platform's files in upstream's order at their paths in the build folder; reading gives the same bytes", async () => {
    const { paths, sources } = await fakeBuild();
    const packed = await packArtifacts(paths, "kitchen.yaml");
    expect(packed.firmwareOffset).toBe("0x10000");
    expect(packed.sha256).toBe(createHash("sha256").update(packed.tarball).digest("hex"));
    expect(packed.firmware).toBe(".pioenvs/kitchen/firmware.bin");
    expect(packed.names).toEqual([
      ...META,
      ".pioenvs/kitchen/firmware.bin",
      ".pioenvs/kitchen/firmware.elf",
      ".pioenvs/kitchen/firmware.factory.bin",
      ".pioenvs/kitchen/firmware.ota.bin",
      ".pioenvs/kitchen/bootloader.bin",
      ".pioenvs/kitchen/partitions.bin",
      ".pioenvs/kitchen/ota_data_initial.bin",
    ]);

    const read = await readArtifacts(packed.tarball);
    expect([...read.files.keys()]).toEqual(packed.names);
    for (const [name, source] of Object.entries(sources)) {
      expect(read.files.get(name), name).toEqual(await fs.readFile(source));
    }
    expect(read.firmwareName).toBe(".pioenvs/kitchen/firmware.bin");
    expect(read.firmwareInBuild).toBe(".pioenvs/kitchen/firmware.bin");
    expect(read.firmware).toEqual(await fs.readFile(sources[".pioenvs/kitchen/firmware.bin"]!));
    expect(read.storage["name"]).toBe("kitchen");
    expect(read.idedata?.["prog_path"]).toMatch(/firmware\.elf$/);
  });

  it("a host build: the program StorageJSON names, and no platformio.ini", async () => {
    const { paths, sources } = await fakeBuild({ layout: "host", name: "hostdev" });
    const packed = await packArtifacts(paths, "kitchen.yaml");
    expect(packed.firmwareOffset).toBe("0x0");
    expect(packed.names).toEqual(["storage.json", "idedata.json", "build_info.json", ".pioenvs/hostdev/program"]);
    const read = await readArtifacts(packed.tarball);
    expect(read.firmwareName).toBe(".pioenvs/hostdev/program");
    expect(read.firmware).toEqual(await fs.readFile(sources[".pioenvs/hostdev/program"]!));
  });

  it("a native ESP-IDF build (ESPHome 2026.10's default for ESP32): upstream's build/ files, then the flash images idedata lists", async () => {
    const { paths } = await fakeBuild({ layout: "esp-idf" });
    const packed = await packArtifacts(paths, "kitchen.yaml");
    expect(packed.firmwareOffset).toBe("0x10000");
    expect(packed.names).toEqual([
      "storage.json",
      "idedata.json",
      "build_info.json",
      "build/firmware.factory.bin",
      "build/kitchen.bin",
      "build/bootloader/bootloader.bin",
      "build/partition_table/partition-table.bin",
      "build/ota_data_initial.bin",
    ]);
    expect((await readArtifacts(packed.tarball)).firmwareName).toBe("build/kitchen.bin");
  });

  it("only: an install's download holds storage.json and the firmware image, whatever the platform", async () => {
    for (const [layout, firmware] of [["platformio", ".pioenvs/kitchen/firmware.bin"], ["esp-idf", "build/kitchen.bin"], ["host", ".pioenvs/kitchen/program"]] as const) {
      const { paths } = await fakeBuild({ layout });
      expect((await packArtifacts(paths, "kitchen.yaml", { only: new Set() })).names).toEqual(["storage.json", firmware]);
      expect((await packArtifacts(paths, "kitchen.yaml", { only: new Set(["firmware.elf"]) })).names).toEqual(
        layout === "platformio" ? ["storage.json", firmware, ".pioenvs/kitchen/firmware.elf"] : ["storage.json", firmware],
      );
    }
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
    const { paths } = await fakeBuild({ platform, images: ["firmware.elf"] });
    const packed = await packArtifacts(paths, "kitchen.yaml");
    expect(packed.firmwareOffset).toBe(offset);
    expect(packed.names).toEqual([...META, ".pioenvs/kitchen/firmware.bin", ".pioenvs/kitchen/firmware.elf"]);
  });

  it("finds firmware in the default place when StorageJSON has no firmware_bin_path", async () => {
    const { paths } = await fakeBuild({ extraStorage: { firmware_bin_path: null, build_path: null } });
    const packed = await packArtifacts(paths, "kitchen.yaml");
    expect(packed.firmware).toBe(".pioenvs/kitchen/firmware.bin");
    expect(packed.names).toContain("platformio.ini");
  });

  it.skipIf(!existsSync(STAND_IN)).each([
    ["PlatformIO", "esp32:\n  board: esp32dev\n", {}, ".pioenvs/kitchen/firmware.bin", "0x10000"],
    ["native ESP-IDF", "esp32:\n  board: esp32dev\n", { ESPHOME_STANDIN_TOOLCHAIN: "esp-idf" }, "build/kitchen.bin", "0x10000"],
    ["host", "host:\n", {}, ".pioenvs/kitchen/program", "0x0"],
  ] as const)("packs a %s build made by the stand-in `esphome compile`", async (_label, platform, extraEnv, firmware, offset) => {
    const root = await tempDir();
    const paths = resolvePaths({ configDir: path.join(root, "config"), dataDir: path.join(root, "data") });
    await fs.mkdir(paths.configDir, { recursive: true });
    await fs.writeFile(path.join(paths.configDir, "kitchen.yaml"), `esphome:\n  name: kitchen\n${platform}`);
    await run(STAND_IN, ["--dashboard", "compile", "kitchen.yaml"], {
      cwd: paths.configDir,
      env: { ...process.env, ESPHOME_DATA_DIR: paths.dataDir, ESPHOME_STANDIN_COMPILE_SECONDS: "0", ...extraEnv },
    });
    const packed = await packArtifacts(paths, "kitchen.yaml");
    expect(packed.firmwareOffset).toBe(offset);
    expect(packed.firmware).toBe(firmware);
    const read = await readArtifacts(packed.tarball);
    const storage = JSON.parse(await fs.readFile(paths.storageJson("kitchen.yaml"), "utf8")) as { firmware_bin_path: string; build_path: string };
    expect(read.firmwareName).toBe(buildRelative(storage.build_path, storage.firmware_bin_path));
    expect(read.firmware).toEqual(await fs.readFile(storage.firmware_bin_path));
    expect(packed.names).toEqual(expect.arrayContaining(["storage.json", "idedata.json", "build_info.json"]));
    for (const name of packed.names.filter((n) => n.includes("/"))) {
      expect(read.files.get(name), name).toEqual(await fs.readFile(path.join(storage.build_path, name)));
    }
    expect(read.storage).toEqual(storage);
  });
});

describe("packArtifacts errors", () => {
  it("build_dir_missing: no StorageJSON", async () => {
    const { paths } = await fakeBuild();
    expect(await codeOf(packArtifacts(paths, "office.yaml"))).toBe("build_dir_missing");
  });

  it("build_dir_missing: StorageJSON but not the image it names", async () => {
    for (const layout of ["platformio", "host"] as const) {
      const { paths, sources } = await fakeBuild({ layout });
      await fs.rm(sources[layout === "host" ? ".pioenvs/kitchen/program" : ".pioenvs/kitchen/firmware.bin"]!);
      expect(await codeOf(packArtifacts(paths, "kitchen.yaml"))).toBe("build_dir_missing");
    }
  });

  it("pack_failed: unreadable StorageJSON, an unusable device name, a firmware image outside the build folder", async () => {
    const { paths, sources } = await fakeBuild();
    const good = await fs.readFile(sources["storage.json"]!, "utf8");
    await fs.writeFile(sources["storage.json"]!, "{not json");
    expect(await codeOf(packArtifacts(paths, "kitchen.yaml"))).toBe("pack_failed");
    await fs.writeFile(sources["storage.json"]!, JSON.stringify({ name: "../evil" }));
    expect(await codeOf(packArtifacts(paths, "kitchen.yaml"))).toBe("pack_failed");
    await fs.writeFile(sources["storage.json"]!, "[]");
    expect(await codeOf(packArtifacts(paths, "kitchen.yaml"))).toBe("pack_failed");
    await fs.writeFile(sources["storage.json"]!, JSON.stringify({ ...(JSON.parse(good) as object), firmware_bin_path: "/etc/passwd" }));
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

describe("buildRelative", () => {
  it.each([
    ["/b/kitchen", "/b/kitchen/.pioenvs/kitchen/firmware.bin", ".pioenvs/kitchen/firmware.bin"],
    ["/b/kitchen/", "/b/kitchen/build/kitchen.bin", "build/kitchen.bin"],
    ["C:\\esphome\\build\\kitchen", "C:\\esphome\\build\\kitchen\\.pioenvs\\kitchen\\firmware.bin", ".pioenvs/kitchen/firmware.bin"],
    ["/b/kitchen", "/b/kitchen", null],
    ["/b/kitchen", "/b/other/firmware.bin", null],
    ["/b/kitchen", "/b/kitchen/../kitchen2/x.bin", null],
    ["C:\\b\\kitchen", "D:\\b\\kitchen\\x.bin", null],
  ])("%j, %j -> %j", (dir, file, want) => {
    expect(buildRelative(dir, file)).toBe(want);
  });
});

describe("readArtifacts", () => {
  const storage = (extra: Record<string, unknown> = {}): ReturnType<typeof file> =>
    file("storage.json", JSON.stringify({ name: "kitchen", build_path: "/b/kitchen", firmware_bin_path: "/b/kitchen/.pioenvs/kitchen/firmware.bin", ...extra }));
  const fw = file(".pioenvs/kitchen/firmware.bin", "FW");

  it("reads what older builders of ours sent: the images flat at the top", async () => {
    const read = await readArtifacts(tgzOf([file("firmware.bin", "FW"), file("firmware.elf", "ELF"), storage()]));
    expect(read).toMatchObject({ firmwareName: "firmware.bin", firmwareInBuild: ".pioenvs/kitchen/firmware.bin" });
    expect(read.firmware.toString()).toBe("FW");
  });

  it("reads a build server's Windows paths", async () => {
    const read = await readArtifacts(tgzOf([storage({ build_path: "C:\\b\\kitchen", firmware_bin_path: "C:\\b\\kitchen\\.pioenvs\\kitchen\\firmware.bin" }), fw]));
    expect(read.firmwareName).toBe(".pioenvs/kitchen/firmware.bin");
  });

  it("accepts members written as ./name", async () => {
    const read = await readArtifacts(tgzOf([file("./storage.json", JSON.stringify({ build_path: "/b", firmware_bin_path: "/b/firmware.bin" })), file("./firmware.bin", "FW")]));
    expect(read.firmware.toString()).toBe("FW");
    expect(read.idedata).toBeNull();
  });
});

describe("readArtifacts rejects hostile tarballs", () => {
  const storage = (extra: Record<string, unknown> = {}): ReturnType<typeof file> =>
    file("storage.json", JSON.stringify({ name: "kitchen", build_path: "/b/kitchen", firmware_bin_path: "/b/kitchen/.pioenvs/kitchen/firmware.bin", ...extra }));
  const fw = file(".pioenvs/kitchen/firmware.bin", "FW");
  const cases: [string, string, () => Promise<Buffer> | Buffer][] = [
    ["not gzip", "malformed", () => Buffer.from("nope")],
    ["a corrupt header", "malformed", () => tgzOf([file("storage.json", "x", { badChecksum: true })])],
    ["a truncated stream", "malformed", () => tgzOf([storage(), fw]).subarray(0, 20)],
    ["traversal", "unsafe_path", () => tgzOf([fw, file("../storage.json", "{}")])],
    ["traversal inside a path", "unsafe_path", () => tgzOf([fw, file(".pioenvs/../../x.bin", "x")])],
    ["an absolute path", "unsafe_path", () => tgzOf([fw, file("/etc/cron.d/evil", "x")])],
    ["a backslash", "unsafe_path", () => tgzOf([fw, file("..\\x", "x")])],
    ["a symlink", "not_a_file", () => tgzOf([{ name: ".pioenvs/kitchen/firmware.bin", type: "2", linkname: "/etc/shadow" }])],
    ["a hard link", "not_a_file", () => tgzOf([fw, { name: "firmware.elf", type: "1", linkname: "/etc/shadow" }])],
    ["a character device", "not_a_file", () => tgzOf([fw, { name: "tty", type: "3" }])],
    ["a block device", "not_a_file", () => tgzOf([fw, { name: "sda", type: "4" }])],
    ["a FIFO", "not_a_file", () => tgzOf([fw, { name: "pipe", type: "6" }])],
    ["a directory", "not_a_file", () => tgzOf([{ name: "build/", type: "5" }, fw])],
    ["a duplicate name", "duplicate", () => tgzOf([storage(), fw, file(".pioenvs/kitchen/firmware.bin", "other")])],
    ["two images with one base name", "duplicate", () => tgzOf([storage(), fw, file("build/firmware.bin", "other")])],
    ["no storage.json", "missing_firmware", () => tgzOf([fw, file("firmware.elf", "x")])],
    ["not the image storage.json names", "missing_firmware", () => tgzOf([storage(), file(".pioenvs/kitchen/firmware.elf", "x")])],
    ["an empty archive", "missing_firmware", () => tgzOf([])],
    ["storage without paths", "malformed", () => tgzOf([file("storage.json", "{}"), fw])],
    ["a firmware image outside the build folder", "malformed", () => tgzOf([storage({ firmware_bin_path: "/etc/passwd" }), fw])],
    ["idedata not JSON", "malformed", () => tgzOf([storage(), fw, file("idedata.json", "{")])],
    ["idedata not an object", "malformed", () => tgzOf([storage(), fw, file("idedata.json", "[1,2]")])],
    ["storage not an object", "malformed", () => tgzOf([fw, file("storage.json", "null")])],
  ];
  it.each(cases)("%s -> %s", async (_label, code, make) => {
    expect(await codeOf(readArtifacts(await make()))).toBe(code);
  });

  it("member over the cap: member_too_large from the header", async () => {
    const bytes = tgzOf([file("firmware.bin", "x", { declaredSize: 257 * MiB })], { eof: false });
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

  it("gzip bombs: a 300 MiB member, and zeros after the archive", async () => {
    expect(await codeOf(readArtifacts(await zeroMemberBomb("firmware.bin", 300 * MiB)))).toBe("member_too_large");
    expect(await codeOf(readArtifacts(await trailingZeroBomb([fw], 200 * MiB), { maxBytes: MiB }))).toBe("too_large");
  });
});

describe("readArtifacts layouts", () => {
  it("createTarGz output with nested names reads back (upstream's layout)", async () => {
    const bytes = await createTarGz([
      { path: "storage.json", data: Buffer.from(JSON.stringify({ build_path: "/b", firmware_bin_path: "/b/a/firmware.bin" })) },
      { path: "a/firmware.bin", data: Buffer.from("y") },
    ]);
    expect((await readArtifacts(bytes)).firmwareName).toBe("a/firmware.bin");
  });
});
