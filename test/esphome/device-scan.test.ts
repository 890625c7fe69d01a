import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { DeviceScanner, listYamlFiles, type Device } from "../../src/esphome/device-scan.ts";
import { EventBus, type EventMap, type EventName } from "../../src/events.ts";
import { setLogSink } from "../../src/logger.ts";

type Recorded = { [K in "device_updated" | "device_removed"]: { name: K; payload: EventMap[K] } }[
  "device_updated" | "device_removed"
];

let dir: string;
let bus: EventBus;
let events: Recorded[];
let scanner: DeviceScanner | null;
let logs: string[];
let restoreLog: () => void;

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "esphome-scan-"));
  bus = new EventBus();
  events = [];
  bus.on("device_updated", (payload) => events.push({ name: "device_updated", payload }));
  bus.on("device_removed", (payload) => events.push({ name: "device_removed", payload }));
  scanner = null;
  logs = [];
  restoreLog = setLogSink((line) => logs.push(line));
});

afterEach(async () => {
  await scanner?.stop();
  restoreLog();
  vi.restoreAllMocks();
  await fs.rm(dir, { recursive: true, force: true });
});

async function write(name: string, text: string): Promise<void> {
  await fs.writeFile(path.join(dir, name), text);
}

function make(opts: { watch?: boolean; debounceMs?: number } = {}): DeviceScanner {
  scanner = new DeviceScanner({ configDir: dir, bus, watch: opts.watch ?? false, debounceMs: opts.debounceMs ?? 20 });
  return scanner;
}

function names(): string[] {
  return events.map((e) => (e.name === "device_updated" ? `updated:${e.payload.device.configuration}` : `removed:${e.payload.configuration}`));
}

/** Resolves with the first matching event emitted from now on. */
function nextEvent<K extends EventName>(name: K, match: (p: EventMap[K]) => boolean, timeoutMs = 5000): Promise<EventMap[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out waiting for ${name}`));
    }, timeoutMs);
    const off = bus.on(name, (payload) => {
      if (!match(payload)) return;
      clearTimeout(timer);
      off();
      resolve(payload);
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("listYamlFiles", () => {
  it("lists top-level .yaml/.yml files sorted, without secrets, dot-files, other files or subdirectories", async () => {
    const files = [
      "zeta.yaml",
      "Alpha.yml",
      "beta.yaml",
      "secrets.yaml",
      "secrets.yml",
      ".hidden.yaml",
      "notes.txt",
      "backup.yaml.bak",
      "upper.YAML",
    ];
    for (const f of files) await fs.writeFile(path.join(dir, f), "logger:\n");
    await fs.mkdir(path.join(dir, "packages"));
    await fs.writeFile(path.join(dir, "packages", "wifi.yaml"), "wifi:\n");
    await fs.mkdir(path.join(dir, ".esphome"));
    await fs.writeFile(path.join(dir, ".esphome", "x.yaml"), "x:\n");
    await fs.mkdir(path.join(dir, "dir.yaml"));
    await fs.symlink(path.join(dir, "beta.yaml"), path.join(dir, "linked.yaml"));

    expect(await listYamlFiles(dir)).toEqual(["Alpha.yml", "beta.yaml", "linked.yaml", "zeta.yaml"]);
  });

  it("rejects when the directory does not exist", async () => {
    await expect(listYamlFiles(path.join(dir, "missing"))).rejects.toMatchObject({ code: "ENOENT" });
  });
});

describe("DeviceScanner (explicit rescans)", () => {
  it("does nothing before start and lists devices sorted after it", async () => {
    await write("b.yaml", "esphome:\n  name: bee\n");
    await write("a.yml", "esphome:\n  name: ay\nesp32:\n  board: esp32dev\n");
    await write("secrets.yaml", "wifi_password: x\n");
    const s = make();
    expect(s.list()).toEqual([]);
    await s.start();
    expect(s.list().map((d) => d.configuration)).toEqual(["a.yml", "b.yaml"]);
    expect(s.get("a.yml")).toMatchObject({ name: "ay", platform: "esp32", path: path.join(dir, "a.yml") });
    expect(s.get("secrets.yaml")).toBeUndefined();
    expect(s.get("missing.yaml")).toBeUndefined();
  });

  it("announces every device found by the initial scan", async () => {
    await write("a.yaml", "logger:\n");
    await write("b.yaml", "logger:\n");
    await make().start();
    expect(names()).toEqual(["updated:a.yaml", "updated:b.yaml"]);
  });

  it("emits nothing when nothing changed", async () => {
    await write("a.yaml", "logger:\n");
    const s = make();
    await s.start();
    events.length = 0;
    await s.rescan();
    await s.rescan();
    expect(events).toEqual([]);
  });

  it("does not re-read files whose mtime, size and inode are unchanged", async () => {
    await write("a.yaml", "logger:\n");
    await write("b.yaml", "logger:\n");
    const s = make();
    await s.start();
    const readFile = vi.spyOn(fs, "readFile");
    await s.rescan();
    expect(readFile).not.toHaveBeenCalled();
    await write("b.yaml", "logger:\napi:\n");
    await s.rescan();
    expect(readFile.mock.calls.map((c) => path.basename(c[0] as string))).toEqual(["b.yaml"]);
  });

  it("emits device_updated for a new file and for a changed device, device_removed for a deleted one", async () => {
    await write("a.yaml", "esphome:\n  name: one\n");
    await write("b.yaml", "esphome:\n  name: bee\n");
    const s = make();
    await s.start();
    events.length = 0;

    await write("a.yaml", "esphome:\n  name: uno\n");
    await write("c.yaml", "esphome:\n  name: sea\n");
    await fs.rm(path.join(dir, "b.yaml"));
    await s.rescan();

    expect(names()).toEqual(["updated:a.yaml", "updated:c.yaml", "removed:b.yaml"]);
    const updated = events.find((e) => e.name === "device_updated")?.payload as { device: Device };
    expect(updated.device.name).toBe("uno");
    expect(s.list().map((d) => d.name)).toEqual(["uno", "sea"]);
  });

  it("stays quiet when a file changes without changing the device", async () => {
    await write("a.yaml", "esphome:\n  name: one\n");
    const s = make();
    await s.start();
    const before = s.get("a.yaml");
    events.length = 0;
    await write("a.yaml", "# a comment now\nesphome:\n  name: one\n");
    await s.rescan();
    expect(events).toEqual([]);
    expect(s.get("a.yaml")).toBe(before);
  });

  it("lists a broken YAML with its error and updates it once fixed", async () => {
    await write("bad.yaml", "esphome:\n  name: [oops\n");
    const s = make();
    await s.start();
    expect(s.get("bad.yaml")).toMatchObject({ name: "bad", address: "bad.local" });
    expect(s.get("bad.yaml")?.error).toMatch(/YAML syntax error/);
    events.length = 0;
    await write("bad.yaml", "esphome:\n  name: good\n");
    await s.rescan();
    expect(s.get("bad.yaml")).toMatchObject({ name: "good", error: null });
    expect(names()).toEqual(["updated:bad.yaml"]);
  });

  it("ignores subdirectories, dot-files and directories named like YAML", async () => {
    await fs.mkdir(path.join(dir, "packages"));
    await fs.writeFile(path.join(dir, "packages", "p.yaml"), "wifi:\n");
    await fs.mkdir(path.join(dir, "folder.yaml"));
    await write(".hidden.yaml", "logger:\n");
    await write("real.yaml", "logger:\n");
    const s = make();
    await s.start();
    expect(s.list().map((d) => d.configuration)).toEqual(["real.yaml"]);
  });

  it("treats a file that vanishes before it is read (a dangling symlink) as absent, without a warning", async () => {
    await fs.symlink(path.join(dir, "gone.yaml"), path.join(dir, "dangling.yaml"));
    await write("ok.yaml", "logger:\n");
    const s = make();
    await s.start();
    expect(s.list().map((d) => d.configuration)).toEqual(["ok.yaml"]);
    expect(logs.filter((l) => l.includes("WARNING"))).toEqual([]);
  });

  it("skips an unreadable file with one warning, not one per rescan", async () => {
    // A symlink loop fails with ELOOP even for root.
    await fs.symlink("loop.yaml", path.join(dir, "loop.yaml"));
    await write("ok.yaml", "logger:\n");
    const s = make();
    await s.start();
    await s.rescan();
    expect(s.list().map((d) => d.configuration)).toEqual(["ok.yaml"]);
    const warnings = logs.filter((l) => l.includes("WARNING") && l.includes("loop.yaml"));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/skipping/);
  });

  it.skipIf(process.getuid?.() === 0)("skips a file without read permission", async () => {
    await write("locked.yaml", "logger:\n");
    await fs.chmod(path.join(dir, "locked.yaml"), 0o000);
    const s = make();
    await s.start();
    expect(s.get("locked.yaml")).toBeUndefined();
    expect(logs.some((l) => l.includes("WARNING") && l.includes("cannot read"))).toBe(true);
  });

  it("removes a device whose file became unreadable", async () => {
    await write("flaky.yaml", "logger:\n");
    const s = make();
    await s.start();
    events.length = 0;
    await fs.rm(path.join(dir, "flaky.yaml"));
    await fs.symlink("flaky.yaml", path.join(dir, "flaky.yaml"));
    await s.rescan();
    expect(names()).toEqual(["removed:flaky.yaml"]);
  });

  it("coalesces concurrent rescans into one follow-up scan that sees the latest state", async () => {
    const s = make();
    await s.start();
    const readdir = vi.spyOn(fs, "readdir");
    await write("a.yaml", "logger:\n");
    const first = s.rescan();
    await write("b.yaml", "logger:\n");
    const second = s.rescan();
    const third = s.rescan();
    expect(third).toBe(second);
    await Promise.all([first, second, third]);
    expect(readdir).toHaveBeenCalledTimes(2);
    expect(s.list().map((d) => d.configuration)).toEqual(["a.yaml", "b.yaml"]);
    expect(names()).toEqual(["updated:a.yaml", "updated:b.yaml"]);
  });

  it("treats a deleted config dir as no devices", async () => {
    await write("a.yaml", "logger:\n");
    const s = make();
    await s.start();
    events.length = 0;
    await fs.rm(dir, { recursive: true });
    await s.rescan();
    expect(s.list()).toEqual([]);
    expect(names()).toEqual(["removed:a.yaml"]);
  });

  it("treats a config dir path that is not a directory as having no devices", async () => {
    const file = path.join(dir, "not-a-dir");
    await fs.writeFile(file, "");
    scanner = new DeviceScanner({ configDir: path.join(file, "x"), bus, watch: false });
    await scanner.start();
    expect(scanner.list()).toEqual([]);
  });

  it("rejects start when the config dir cannot be listed, and keeps the index on a failed rescan", async () => {
    await write("a.yaml", "logger:\n");
    const eio = Object.assign(new Error("EIO: i/o error, scandir"), { code: "EIO" });
    const readdir = vi.spyOn(fs, "readdir").mockRejectedValueOnce(eio);
    const s = make();
    await expect(s.start()).rejects.toThrow("EIO");
    await s.start();
    expect(s.list().map((d) => d.configuration)).toEqual(["a.yaml"]);
    events.length = 0;
    readdir.mockRejectedValueOnce(eio);
    await expect(s.rescan()).rejects.toThrow("EIO");
    expect(s.list().map((d) => d.configuration)).toEqual(["a.yaml"]);
    expect(events).toEqual([]);
  });

  it("lists a huge file with an error instead of parsing it", async () => {
    await write("huge.yaml", "# " + "x".repeat(4 * 1024 * 1024) + "\n");
    const s = make();
    await s.start();
    expect(s.get("huge.yaml")?.error).toMatch(/larger than/);
  });

  it("hands out frozen devices", async () => {
    await write("a.yaml", "logger:\n");
    const s = make();
    await s.start();
    const d = s.get("a.yaml")!;
    expect(Object.isFrozen(d)).toBe(true);
    expect(Object.isFrozen(d.loaded_integrations)).toBe(true);
  });
});

describe("DeviceScanner (live watcher)", () => {
  it("picks up added, changed and removed files on its own", async () => {
    await write("existing.yaml", "esphome:\n  name: existing\n");
    const s = make({ watch: true, debounceMs: 20 });
    await s.start();
    expect(s.list().map((d) => d.name)).toEqual(["existing"]);

    const added = nextEvent("device_updated", (p) => p.device.configuration === "new.yaml");
    await write("new.yaml", "esphome:\n  name: fresh\nesp8266:\n  board: d1_mini\n");
    expect((await added).device).toMatchObject({ name: "fresh", platform: "esp8266", board: "d1_mini" });
    expect(s.get("new.yaml")?.name).toBe("fresh");

    const changed = nextEvent("device_updated", (p) => p.device.configuration === "new.yaml" && p.device.name === "renamed");
    await write("new.yaml", "esphome:\n  name: renamed\n");
    expect((await changed).device.platform).toBeNull();

    const removed = nextEvent("device_removed", (p) => p.configuration === "existing.yaml");
    await fs.rm(path.join(dir, "existing.yaml"));
    await removed;
    expect(s.list().map((d) => d.configuration)).toEqual(["new.yaml"]);
  });

  it("follows an editor-style atomic save (write a temp file, rename over)", async () => {
    await write("dev.yaml", "esphome:\n  name: before\n");
    const s = make({ watch: true, debounceMs: 20 });
    await s.start();
    const changed = nextEvent("device_updated", (p) => p.device.name === "after");
    await write(".dev.yaml.tmp", "esphome:\n  name: after\n");
    await fs.rename(path.join(dir, ".dev.yaml.tmp"), path.join(dir, "dev.yaml"));
    await changed;
    expect(s.get("dev.yaml")?.name).toBe("after");
  });

  it("debounces a burst of writes into one update", async () => {
    const s = make({ watch: true, debounceMs: 300 });
    await s.start();
    const done = nextEvent("device_updated", (p) => p.device.name === "v9");
    for (let i = 0; i <= 9; i++) await write("burst.yaml", `esphome:\n  name: v${i}\n`);
    await done;
    await sleep(350);
    expect(names()).toEqual(["updated:burst.yaml"]);
  });

  it("ignores changes to dot-files and secrets", async () => {
    await write("a.yaml", "logger:\n");
    const s = make({ watch: true, debounceMs: 20 });
    await s.start();
    events.length = 0;
    const rescan = vi.spyOn(s, "rescan");
    await write(".a.yaml.swp", "x");
    await write("secrets.yaml", "k: v\n");
    await fs.mkdir(path.join(dir, ".esphome"));
    await sleep(150);
    expect(rescan).not.toHaveBeenCalled();
    expect(events).toEqual([]);
  });

  it("stops watching after stop()", async () => {
    const s = make({ watch: true, debounceMs: 20 });
    await s.start();
    await s.stop();
    await write("late.yaml", "logger:\n");
    await sleep(150);
    expect(events).toEqual([]);
    expect(s.get("late.yaml")).toBeUndefined();
  });

  it("drops a pending debounced rescan on stop()", async () => {
    const s = make({ watch: true, debounceMs: 200 });
    await s.start();
    await write("pending.yaml", "logger:\n");
    await sleep(50); // the watcher fired; the rescan is waiting out the debounce
    await s.stop();
    await sleep(300);
    expect(events).toEqual([]);
  });

  it("logs a failed background rescan instead of crashing", async () => {
    const s = make({ watch: true, debounceMs: 20 });
    await s.start();
    vi.spyOn(fs, "readdir").mockRejectedValue(Object.assign(new Error("EIO: i/o error"), { code: "EIO" }));
    await write("x.yaml", "logger:\n");
    for (let i = 0; i < 100 && !logs.some((l) => l.includes("ERROR")); i++) await sleep(20);
    expect(logs.some((l) => l.includes("ERROR") && l.includes("rescan") && l.includes("EIO"))).toBe(true);
    expect(events).toEqual([]);
  });

  it("still starts when the directory cannot be watched, with a warning", async () => {
    scanner = new DeviceScanner({ configDir: path.join(dir, "missing"), bus, watch: true, debounceMs: 20 });
    await scanner.start();
    expect(scanner.list()).toEqual([]);
    expect(logs.some((l) => l.includes("WARNING") && l.includes("cannot watch"))).toBe(true);
  });
});
