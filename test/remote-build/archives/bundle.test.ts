import { execFile } from "node:child_process";
import { existsSync, promises as fs } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { bundleDirFor, cleanupRemoteBuilds, extractBundle, type Manifest, isBundleError } from "../../../src/remote-build/archives/bundle.ts";
import { createTarGz } from "../../../src/remote-build/transport/tar-writer.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { MiB, file, paxEntry, tgzOf, zeroMemberBomb, type RawEntry } from "../transport/tar-fixtures.ts";

const run = promisify(execFile);
const STAND_IN = path.resolve(import.meta.dirname, "../../fixtures/bin/esphome");

const KITCHEN_YAML = `esphome:
  name: kitchen
esp32:
  board: esp32dev
packages:
  wifi: !include common/wifi.yaml
`;

function manifest(over: Record<string, unknown> = {}): string {
  return JSON.stringify({
    manifest_version: 1,
    esphome_version: "2026.11.0",
    config_filename: "kitchen.yaml",
    files: ["kitchen.yaml", "common/wifi.yaml"],
    has_secrets: false,
    ...over,
  });
}

/** A bundle in the layout `esphome bundle` writes: manifest first, then the files. */
async function makeBundle(files: Record<string, string> = {}, manifestText = manifest()): Promise<Buffer> {
  return createTarGz(
    Object.entries({ "manifest.json": manifestText, "kitchen.yaml": KITCHEN_YAML, "common/wifi.yaml": "wifi: {}\n", ...files }).map(
      ([p, d]) => ({ path: p, data: Buffer.from(d) }),
    ),
  );
}

const rawBundle = (extra: RawEntry[], manifestText: string | Buffer = manifest()): Buffer =>
  tgzOf([file("manifest.json", manifestText), file("kitchen.yaml", KITCHEN_YAML), ...extra]);

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (isBundleError(err)) return err.code;
    throw err;
  }
  throw new Error("expected a BundleError");
}

/** A device folder inside a sandbox; `outside` must stay empty whatever happens. */
async function sandbox(): Promise<{ root: string; dest: string; outside: string }> {
  const root = await tempDir();
  const outside = path.join(root, "outside");
  await fs.mkdir(outside);
  return { root, dest: path.join(root, "builds", "abcd1234", "kitchen"), outside };
}

async function siblings(dest: string): Promise<string[]> {
  try {
    return (await fs.readdir(path.dirname(dest))).sort();
  } catch {
    return [];
  }
}

describe("extractBundle", () => {
  it.skipIf(!existsSync(STAND_IN))("extracts a bundle made by `esphome bundle`", async () => {
    const { root, dest } = await sandbox();
    const cfg = path.join(root, "config");
    await fs.mkdir(path.join(cfg, "common"), { recursive: true });
    await fs.writeFile(
      path.join(cfg, "kitchen.yaml"),
      "esphome:\n  name: kitchen\nesp32:\n  board: esp32dev\nwifi:\n  ssid: !secret wifi_ssid\n  password: !secret wifi_password\n",
    );
    await fs.writeFile(path.join(cfg, "secrets.yaml"), "wifi_ssid: home\nwifi_password: hunter2\nunrelated: nope\n");
    const out = path.join(root, "kitchen.esphomebundle.tar.gz");
    await run(STAND_IN, ["bundle", "kitchen.yaml", "-o", out], {
      cwd: cfg,
      env: { ...process.env, ESPHOME_STANDIN_COMPILE_SECONDS: "0" },
    });
    const result = await extractBundle(await fs.readFile(out), dest);
    expect(result.configuration).toBe("kitchen.yaml");
    expect(result.manifest.manifest_version).toBe(1);
    expect(result.manifest.config_filename).toBe("kitchen.yaml");
    expect(result.manifest.has_secrets).toBe(true);
    expect(result.files).toContain("manifest.json");
    expect(result.files).toContain("kitchen.yaml");
    expect(await fs.readFile(path.join(dest, "kitchen.yaml"), "utf8")).toContain("name: kitchen");
    expect(await siblings(dest)).toEqual(["kitchen"]);
  });

  it("extracts a hand-built bundle: every file, 0644, and returns the manifest", async () => {
    const { dest } = await sandbox();
    const result = await extractBundle(await makeBundle({ "fonts/a.ttf": "font" }), dest);
    expect(result.configuration).toBe("kitchen.yaml");
    expect(result.manifest).toEqual<Manifest>({
      manifest_version: 1,
      esphome_version: "2026.11.0",
      config_filename: "kitchen.yaml",
      files: ["kitchen.yaml", "common/wifi.yaml"],
      has_secrets: false,
    });
    expect(result.files).toEqual(["manifest.json", "kitchen.yaml", "common/wifi.yaml", "fonts/a.ttf"]);
    expect(await fs.readFile(path.join(dest, "common/wifi.yaml"), "utf8")).toBe("wifi: {}\n");
    expect((await fs.stat(path.join(dest, "kitchen.yaml"))).mode & 0o777).toBe(0o644);
  });

  it("tolerates optional manifest fields being absent and directory entries", async () => {
    const { dest } = await sandbox();
    const bytes = tgzOf([
      file("manifest.json", JSON.stringify({ manifest_version: 1, config_filename: "kitchen.yaml" })),
      { name: "common/", type: "5" },
      file("common/x.yaml", "x"),
      file("kitchen.yaml", KITCHEN_YAML),
    ]);
    const result = await extractBundle(bytes, dest);
    expect(result.manifest).toMatchObject({ esphome_version: "", files: [], has_secrets: false });
    expect(result.files).toEqual(["manifest.json", "common/x.yaml", "kitchen.yaml"]);
  });

  it("replaces the previous extraction but keeps its .esphome build cache", async () => {
    const { dest } = await sandbox();
    await extractBundle(await makeBundle({ "old-only.yaml": "stale" }), dest);
    await fs.mkdir(path.join(dest, ".esphome", "build", "kitchen"), { recursive: true });
    await fs.writeFile(path.join(dest, ".esphome", "build", "kitchen", "cache.o"), "warm");

    const result = await extractBundle(await makeBundle({ "new-only.yaml": "fresh" }), dest);
    expect(result.files).not.toContain("old-only.yaml");
    expect(existsSync(path.join(dest, "old-only.yaml"))).toBe(false);
    expect(await fs.readFile(path.join(dest, "new-only.yaml"), "utf8")).toBe("fresh");
    expect(await fs.readFile(path.join(dest, ".esphome", "build", "kitchen", "cache.o"), "utf8")).toBe("warm");
    expect(await siblings(dest)).toEqual(["kitchen"]);
  });

  it("does not carry over a .esphome that is a symlink", async () => {
    const { dest, outside } = await sandbox();
    await extractBundle(await makeBundle(), dest);
    await fs.writeFile(path.join(outside, "keep.txt"), "untouched");
    await fs.symlink(outside, path.join(dest, ".esphome"));
    await extractBundle(await makeBundle(), dest);
    expect(existsSync(path.join(dest, ".esphome"))).toBe(false);
    expect(await fs.readdir(outside)).toEqual(["keep.txt"]);
  });

  it("replaces a destination that is a symlink without following it", async () => {
    const { dest, outside } = await sandbox();
    await fs.mkdir(path.dirname(dest), { recursive: true });
    await fs.symlink(outside, dest);
    await extractBundle(await makeBundle(), dest);
    expect((await fs.lstat(dest)).isDirectory()).toBe(true);
    expect(await fs.readdir(outside)).toEqual([]);
  });

  describe("rejections leave the previous folder untouched and nothing behind", () => {
    const cases: [string, string, () => Promise<Buffer>][] = [
      ["not gzip", "malformed", () => Promise.resolve(Buffer.from("hello"))],
      ["a corrupt archive", "malformed", () => Promise.resolve(rawBundle([file("x", "1", { badChecksum: true })]))],
      ["no manifest", "missing_manifest", () => Promise.resolve(tgzOf([file("kitchen.yaml", KITCHEN_YAML)]))],
      ["a manifest that is not JSON", "invalid_manifest", () => makeBundle({}, "{not json")],
      ["a manifest that is an array", "invalid_manifest", () => makeBundle({}, "[1]")],
      ["a manifest that is not UTF-8", "invalid_manifest", () => Promise.resolve(rawBundle([], Buffer.from([0x7b, 0xff, 0x7d])))],
      ["a manifest over 1 MiB", "invalid_manifest", () => makeBundle({}, manifest({ pad: "x".repeat(MiB) }))],
      ["has_secrets not a boolean", "invalid_manifest", () => makeBundle({}, manifest({ has_secrets: "yes" }))],
      ["files not a list of strings", "invalid_manifest", () => makeBundle({}, manifest({ files: [1] }))],
      ["files not a list", "invalid_manifest", () => makeBundle({}, manifest({ files: 5 }))],
      ["esphome_version not a string", "invalid_manifest", () => makeBundle({}, manifest({ esphome_version: 2026 }))],
      ["a newer manifest_version", "unsupported_manifest", () => makeBundle({}, manifest({ manifest_version: 2 }))],
      ["manifest_version 0", "unsupported_manifest", () => makeBundle({}, manifest({ manifest_version: 0 }))],
      ["manifest_version as a string", "unsupported_manifest", () => makeBundle({}, manifest({ manifest_version: "1" }))],
      ["no manifest_version", "unsupported_manifest", () => makeBundle({}, manifest({ manifest_version: undefined }))],
      ["config_filename traversal", "invalid_config_filename", () => makeBundle({}, manifest({ config_filename: "../kitchen.yaml" }))],
      ["config_filename in a folder", "invalid_config_filename", () => makeBundle({}, manifest({ config_filename: "common/wifi.yaml" }))],
      ["config_filename absolute", "invalid_config_filename", () => makeBundle({}, manifest({ config_filename: "/etc/x.yaml" }))],
      ["config_filename not YAML", "invalid_config_filename", () => makeBundle({}, manifest({ config_filename: "kitchen.json" }))],
      ["config_filename the secrets file", "invalid_config_filename", () => makeBundle({}, manifest({ config_filename: "secrets.yaml" }))],
      ["config_filename with NUL", "invalid_config_filename", () => makeBundle({}, manifest({ config_filename: "a\u0000.yaml" }))],
      ["config_filename missing", "invalid_config_filename", () => makeBundle({}, manifest({ config_filename: undefined }))],
      ["the configuration not in the archive", "missing_config", () => makeBundle({}, manifest({ config_filename: "office.yaml" }))],
      ["a member escaping with ..", "unsafe_path", () => Promise.resolve(rawBundle([file("../escape.yaml")]))],
      ["an absolute member", "unsafe_path", () => Promise.resolve(rawBundle([file("/tmp/escape.yaml")]))],
      ["a pax path escaping", "unsafe_path", () => Promise.resolve(rawBundle([paxEntry({ path: "../../escape" }), file("ok")]))],
      ["a member inside the build cache", "unsafe_path", () => makeBundle({ ".esphome/build/kitchen/platformio.ini": "x" })],
      ["a symlink", "not_a_file", () => Promise.resolve(rawBundle([{ name: "link.yaml", type: "2", linkname: "/etc/passwd" }]))],
      ["a hard link", "not_a_file", () => Promise.resolve(rawBundle([{ name: "hard.yaml", type: "1", linkname: "kitchen.yaml" }]))],
      ["a device", "not_a_file", () => Promise.resolve(rawBundle([{ name: "dev", type: "3" }]))],
      ["a FIFO", "not_a_file", () => Promise.resolve(rawBundle([{ name: "fifo", type: "6" }]))],
      ["a duplicate member", "duplicate", () => Promise.resolve(rawBundle([file("kitchen.yaml", "second")]))],
    ];
    it.each(cases)("%s -> %s", async (_label, code, make) => {
      const { dest, outside } = await sandbox();
      await extractBundle(await makeBundle({ "previous.txt": "before" }), dest);
      expect(await codeOf(extractBundle(await make(), dest))).toBe(code);
      expect(await fs.readFile(path.join(dest, "previous.txt"), "utf8")).toBe("before");
      expect(await siblings(dest)).toEqual(["kitchen"]);
      expect(await fs.readdir(outside)).toEqual([]);
    });

    it("says to upgrade for a newer manifest version", async () => {
      const { dest } = await sandbox();
      await expect(extractBundle(await makeBundle({}, manifest({ manifest_version: 2 })), dest)).rejects.toThrow(/upgrade/);
    });

    it("too_large: the compressed bundle, or its contents, over the cap", async () => {
      const { dest } = await sandbox();
      const bytes = await makeBundle({ "big.bin": "x".repeat(64 * 1024) });
      expect(await codeOf(extractBundle(bytes, dest, { maxBytes: bytes.length - 1 }))).toBe("too_large");
      const spread = await makeBundle({ "a.bin": "a".repeat(40_000), "b.bin": "b".repeat(40_000) });
      expect(await codeOf(extractBundle(spread, dest, { maxBytes: 60_000 }))).toBe("too_large");
      expect(await siblings(dest)).toEqual([]);
    });

    it("member_too_large and a gzip bomb", async () => {
      const { dest } = await sandbox();
      const bomb = await zeroMemberBomb("zeros.bin", 200 * MiB);
      expect(await codeOf(extractBundle(bomb, dest, { maxBytes: MiB }))).toBe("member_too_large");
      expect(await codeOf(extractBundle(bomb, dest))).toBe("member_too_large");
      expect(await siblings(dest)).toEqual([]);
    });

    it("too_many_members", async () => {
      const { dest } = await sandbox();
      const many = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`f${i}.yaml`, "x"]));
      expect(await codeOf(extractBundle(await makeBundle(many), dest, { maxMembers: 5 }))).toBe("too_many_members");
    });
  });
});

describe("bundleDirFor", () => {
  const PIN = "0123456789abcdef".repeat(4);

  it("nests <pin>/<stem> under the root: the folder is named by the peer's full pin", () => {
    expect(bundleDirFor("/srv/rb", PIN, "kitchen-2_x")).toBe(path.join("/srv/rb", PIN, "kitchen-2_x"));
  });

  it("gives two peers different folders however alike their pins start", () => {
    const other = `${PIN.slice(0, 63)}0`;
    expect(bundleDirFor("/srv/rb", PIN, "kitchen")).not.toBe(bundleDirFor("/srv/rb", other, "kitchen"));
  });

  it.each([
    ["a dashboard_id instead of a pin", "AbCdEfGh_-123456789", "kitchen"],
    ["a pin in upper case (not canonical)", PIN.toUpperCase(), "kitchen"],
    ["a short pin", PIN.slice(8), "kitchen"],
    ["a pin with traversal", `../${PIN.slice(3)}`, "kitchen"],
    ["a pin with a slash", `${PIN.slice(0, 32)}/${PIN.slice(33)}`, "kitchen"],
    ["an over-long pin", `${PIN}0`, "kitchen"],
    ["a traversal stem", PIN, ".."],
    ["a stem with a slash", PIN, "a/b"],
    ["an empty stem", PIN, ""],
    ["a stem starting with a dash", PIN, "-x"],
    ["a dot stem", PIN, ".esphome"],
    ["a stem with a dot", PIN, "kitchen.yaml"],
    ["an over-long stem", PIN, "k".repeat(129)],
  ])("invalid_header: %s", (_label, id, stem) => {
    let code: string | undefined;
    try {
      bundleDirFor("/srv/rb", id, stem);
    } catch (err) {
      code = isBundleError(err) ? err.code : "other";
    }
    expect(code).toBe("invalid_header");
  });
});

describe("cleanupRemoteBuilds", () => {
  const DAY = 24 * 3600 * 1000;

  async function setAge(p: string, ageMs: number, now: number): Promise<void> {
    const t = new Date(now - ageMs);
    await fs.lutimes(p, t, t);
  }

  it("deletes cold device folders, keeps fresh, kept and special ones, and removes emptied offloader folders", async () => {
    const root = await tempDir();
    const now = Date.now();
    const mk = async (rel: string, ageMs: number): Promise<string> => {
      const dir = path.join(root, rel);
      await fs.mkdir(dir, { recursive: true });
      await fs.writeFile(path.join(dir, "kitchen.yaml"), "x");
      await setAge(path.join(dir, "kitchen.yaml"), ageMs, now);
      await setAge(dir, ageMs, now);
      return dir;
    };
    const cold = await mk("aaaaaaaa/cold", 2 * DAY);
    const fresh = await mk("aaaaaaaa/fresh", 1000);
    const keptByPath = await mk("bbbbbbbb/kept", 2 * DAY);
    const keptByKey = await mk("bbbbbbbb/kept2", 2 * DAY);
    const lonely = await mk("cccccccc/old", 3 * DAY);
    const cache = await mk("aaaaaaaa/.esphome", 5 * DAY);
    const venvs = await mk("venvs/esphome-2026.1.0", 5 * DAY);
    // Cold folder whose build cache was touched recently counts as warm.
    const warmCache = await mk("aaaaaaaa/warm", 2 * DAY);
    await fs.mkdir(path.join(warmCache, ".esphome"));
    await setAge(warmCache, 2 * DAY, now);
    // A stray saved bundle beside a folder.
    const stray = path.join(root, "aaaaaaaa", "gone.tar.gz");
    await fs.writeFile(stray, "x");
    await setAge(stray, 2 * DAY, now);
    for (const dir of [path.join(root, "aaaaaaaa"), path.join(root, "bbbbbbbb"), path.join(root, "cccccccc")]) {
      await setAge(dir, 2 * DAY, now);
    }

    const deleted = await cleanupRemoteBuilds(root, {
      ttlMs: DAY,
      now,
      keep: new Set([keptByPath, "bbbbbbbb/kept2"]),
    });
    expect(deleted.sort()).toEqual([cold, stray, lonely].sort());
    for (const p of [fresh, keptByPath, keptByKey, cache, venvs, warmCache]) expect(existsSync(p)).toBe(true);
    expect(existsSync(path.join(root, "cccccccc"))).toBe(false);
  });

  it("removes a symlinked device folder without touching its target", async () => {
    const root = await tempDir();
    const now = Date.now();
    const outside = path.join(root, "..", path.basename(root) + "-target");
    await fs.mkdir(outside, { recursive: true });
    try {
      await fs.writeFile(path.join(outside, "precious"), "x");
      await fs.mkdir(path.join(root, "rb", "aaaaaaaa"), { recursive: true });
      const link = path.join(root, "rb", "aaaaaaaa", "linked");
      await fs.symlink(outside, link);
      await setAge(link, 2 * DAY, now);
      const deleted = await cleanupRemoteBuilds(path.join(root, "rb"), { ttlMs: DAY, now });
      expect(deleted).toEqual([link]);
      expect(await fs.readFile(path.join(outside, "precious"), "utf8")).toBe("x");
    } finally {
      await fs.rm(outside, { recursive: true, force: true });
    }
  });

  it("does nothing when the root does not exist", async () => {
    const root = await tempDir();
    expect(await cleanupRemoteBuilds(path.join(root, "missing"), { ttlMs: DAY })).toEqual([]);
  });
});
