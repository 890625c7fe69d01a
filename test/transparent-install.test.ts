/**
 * The whole transparent install across two real builder processes: A
 * offloads its compile to build server B, fetches B's firmware and flashes
 * it itself.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { FirmwareJob } from "../src/firmware/job.ts";
import { ApiClient, type Frame } from "./helpers/api-client.ts";
import { STAND_IN, configDir, spawnBuilder } from "./helpers/builder.ts";
import { waitFor } from "./helpers/tmp.ts";
import { pairBuilders } from "./helpers/pairing.ts";

interface Call {
  argv: string[];
  command: string;
  host: string;
  file?: string | null;
  file_sha256?: string | null;
  images?: { offset: string; path: string; sha256: string }[];
  idedata_source?: string | null;
}

const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("hex");

async function calls(record: string): Promise<Call[]> {
  const text = await readFile(record, "utf8").catch(() => "");
  return text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Call).filter((c) => c.command !== "version");
}

async function builder(name: string, env: Record<string, string> = {}) {
  const dir = await configDir({ kitchen: "", garage: "" });
  const record = path.join(dir, "record.jsonl");
  const proc = await spawnBuilder(
    ["--config-dir", dir, "--port", "0", "--peer-link-port", "0", "--peer-link-host", "127.0.0.1", "--esphome", STAND_IN, "--no-mdns", "--label", name, "--log-level", "warning"],
    { ESPHOME_STANDIN_COMPILE_SECONDS: "0.5", ESPHOME_STANDIN_UPLOAD_SECONDS: "0.1", ESPHOME_STANDIN_FAIL: "", ESPHOME_STANDIN_HOST: name, ESPHOME_STANDIN_RECORD: record, ...env },
  );
  const line = proc.stdout.join("").split("\n").find((l) => l.includes("listening")) ?? "{}";
  const peerPort = (JSON.parse(line) as { peer_link_port: number }).peer_link_port;
  const api = await ApiClient.connect(proc.port);
  return { proc, api, dir, record, peerPort, name };
}


async function install(api: ApiClient, args: Record<string, unknown>): Promise<{ job: FirmwareJob; events: Frame[]; result: Frame; final: FirmwareJob }> {
  const sub = api.stream("subscribe_events");
  await sub.until((f) => f.event === "initial_state");
  const job = await api.call<FirmwareJob>("firmware/install", args);
  const follow = api.stream("firmware/follow_job", { job_id: job.job_id });
  const result = await follow.until((f) => f.event === "result", 30_000);
  const final = await api.call<FirmwareJob>("firmware/get_job", { job_id: job.job_id });
  const events = sub.frames.filter((f) => (f.data as { job?: { job_id: string } } | undefined)?.job?.job_id === job.job_id);
  return { job, events, result, final };
}

const lifecycle = (events: Frame[]): (string | undefined)[] => events.map((f) => f.event);

describe("transparent install across two builders", () => {
  it("compiles on the idle build server, flashes here with its bytes, and reports it like a local install", async () => {
    const a = await builder("Pi in the closet");
    const b = await builder("Desktop PC");
    const pin = await pairBuilders(a, b);

    const remote = await install(a.api, { configuration: "kitchen.yaml", port: "OTA" });
    expect(remote.result.data).toEqual({ status: "completed", exit_code: 0, error: null });
    expect(remote.final).toMatchObject({ source: "remote", source_pin_sha256: pin, source_label: "Desktop PC", exit_code: 0 });
    expect(remote.final.output.join("")).toContain("building on Desktop PC");
    expect(remote.final.output.join("")).toContain("Successfully compiled program.");

    const onB = await calls(b.record);
    expect(onB.map((c) => c.command)).toEqual(["compile"]);
    const onA = await calls(a.record);
    expect(onA.map((c) => c.command)).toEqual(["bundle", "upload"]);
    const upload = onA[1]!;
    // As the upstream offloader: B's build is in A's build tree, and the upload finds it there (no --file).
    expect(upload.argv).not.toContain("--file");
    expect(upload.argv).toContain("OTA");
    expect(upload.file).toBe(path.join(a.dir, ".esphome", "build", "kitchen", ".pioenvs", "kitchen", "firmware.bin"));
    // The bytes A flashed are the ones B built (the stand-in stamps the compiling host into them).
    const jobOnB = (await b.api.call<FirmwareJob[]>("firmware/get_jobs", {}))[0]!;
    expect(jobOnB).toMatchObject({ remote_peer_label: "Pi in the closet", status: "completed" });
    const built = await readFile(path.join(b.dir, ".esphome", ".remote_builds", path.dirname(jobOnB.configuration), ".esphome", "build", "kitchen", ".pioenvs", "kitchen", "firmware.bin"));
    expect(upload.file_sha256).toBe(sha256(built));
    expect(built.includes(Buffer.from("Desktop PC"))).toBe(true);

    // The same events as a local install of the same device.
    const local = await install(a.api, { configuration: "kitchen.yaml", port: "OTA", force_local: true });
    expect(local.final).toMatchObject({ source: "local", source_label: "", status: "completed" });
    expect(lifecycle(remote.events)).toEqual(lifecycle(local.events));
    expect(lifecycle(local.events)).toEqual(["job_queued", "job_started", "job_completed"]);
    expect((await calls(a.record)).map((c) => c.command)).toEqual(["bundle", "upload", "compile", "upload"]);
  });

  it("installs a remote build over a serial port: the whole image set from B at its offsets, idedata from the cache", async () => {
    // A has no toolchain: a stale or missing idedata cache would fail the upload instead of being regenerated.
    const a = await builder("Pi", { ESPHOME_STANDIN_SERIAL_OK: "1", ESPHOME_STANDIN_NO_TOOLCHAIN: "1" });
    const b = await builder("Desktop");
    await pairBuilders(a, b);

    const serial = await install(a.api, { configuration: "kitchen.yaml", port: "/dev/ttyUSB0" });
    expect(serial.final).toMatchObject({ source: "remote", status: "completed" });
    const upload = (await calls(a.record)).find((c) => c.command === "upload")!;
    expect(upload.argv).toEqual(["--dashboard", "upload", path.join(a.dir, "kitchen.yaml"), "--device", "/dev/ttyUSB0"]);
    expect(upload.idedata_source).toBe("cache");
    const jobOnB = (await b.api.call<FirmwareJob[]>("firmware/get_jobs", {}))[0]!;
    const onB = path.join(b.dir, ".esphome", ".remote_builds", path.dirname(jobOnB.configuration), ".esphome", "build", "kitchen", ".pioenvs", "kitchen");
    const onA = path.join(a.dir, ".esphome", "build", "kitchen", ".pioenvs", "kitchen");
    const expected = [
      ["0x10000", "firmware.bin"],
      ["0x1000", "bootloader.bin"],
      ["0x8000", "partitions.bin"],
      ["0xe000", "ota_data_initial.bin"],
    ];
    expect(upload.images).toEqual(
      await Promise.all(expected.map(async ([offset, name]) => ({ offset, path: path.join(onA, name!), sha256: sha256(await readFile(path.join(onB, name!))) }))),
    );
  });

  it("builds here when the build server is busy or disconnected", async () => {
    const a = await builder("Pi");
    const b = await builder("Desktop", { ESPHOME_STANDIN_COMPILE_SECONDS: "3" });
    await pairBuilders(a, b);

    // Busy: B compiles something of its own.
    await b.api.call("firmware/compile", { configuration: "garage.yaml" });
    await waitFor(async () => {
      const s = await a.api.call<{ pairings: { idle: boolean | null }[] }>("remote_build/get_offloader_settings");
      return s.pairings[0]?.idle === false;
    }, 10_000, "B busy");
    const busy = await install(a.api, { configuration: "kitchen.yaml", port: "OTA" });
    expect(busy.final).toMatchObject({ source: "local", status: "completed" });

    // Disconnected: B is gone.
    b.proc.child.kill("SIGKILL");
    await waitFor(async () => {
      const s = await a.api.call<{ pairings: { connected: boolean }[] }>("remote_build/get_offloader_settings");
      return s.pairings[0]?.connected === false;
    }, 10_000, "B disconnected");
    const gone = await install(a.api, { configuration: "kitchen.yaml", port: "OTA" });
    expect(gone.final).toMatchObject({ source: "local", status: "completed" });
    expect((await calls(a.record)).filter((c) => c.command === "bundle")).toEqual([]);
  });
});

describe("restart recovery of a remote build", () => {
  function offloaderArgs(dir: string, grace: string): string[] {
    return ["--config-dir", dir, "--port", "0", "--peer-link-port", "0", "--peer-link-host", "127.0.0.1", "--esphome", STAND_IN, "--no-mdns", "--label", "Pi", "--log-level", "warning", "--remote-restore-grace", grace];
  }

  it("sends the job back to its build server when it reconnects within the grace period", async () => {
    const a = await builder("Pi");
    const b = await builder("Desktop", { ESPHOME_STANDIN_COMPILE_SECONDS: "2" });
    const pin = await pairBuilders(a, b);
    const job = await a.api.call<FirmwareJob>("firmware/install", { configuration: "kitchen.yaml", port: "OTA" });
    await waitFor(async () => (await b.api.call<FirmwareJob[]>("firmware/get_jobs", {})).some((j) => j.status === "running"), 10_000, "B compiling");
    await new Promise((r) => setTimeout(r, 400)); // the running state reaches A's job log and index
    a.api.close();
    a.proc.child.kill("SIGKILL");
    await a.proc.exited;
    const again = await spawnBuilder(offloaderArgs(a.dir, "30"), { ESPHOME_STANDIN_COMPILE_SECONDS: "0.5", ESPHOME_STANDIN_UPLOAD_SECONDS: "0.1", ESPHOME_STANDIN_FAIL: "", ESPHOME_STANDIN_HOST: "Pi", ESPHOME_STANDIN_RECORD: a.record });
    const api = await ApiClient.connect(again.port);
    const follow = api.stream("firmware/follow_job", { job_id: job.job_id });
    const result = await follow.until((f) => f.event === "result", 30_000);
    expect(result.data).toMatchObject({ status: "completed" });
    const final = await api.call<FirmwareJob>("firmware/get_job", { job_id: job.job_id });
    expect(final).toMatchObject({ source: "remote", source_pin_sha256: pin, source_label: "Desktop" });
    expect(final.output.join("")).toContain("builder restarted mid-build");
    expect((await calls(a.record)).map((c) => c.command)).toEqual(["bundle", "bundle", "upload"]);
    api.close();
  });

  it("builds here, saying so, when the build server does not come back in time", async () => {
    const a = await builder("Pi");
    const b = await builder("Desktop", { ESPHOME_STANDIN_COMPILE_SECONDS: "3" });
    await pairBuilders(a, b);
    const job = await a.api.call<FirmwareJob>("firmware/install", { configuration: "kitchen.yaml", port: "OTA" });
    await waitFor(async () => (await b.api.call<FirmwareJob[]>("firmware/get_jobs", {})).some((j) => j.status === "running"), 10_000, "B compiling");
    await new Promise((r) => setTimeout(r, 400));
    a.api.close();
    a.proc.child.kill("SIGKILL");
    b.proc.child.kill("SIGKILL");
    await a.proc.exited;
    const again = await spawnBuilder(offloaderArgs(a.dir, "1"), { ESPHOME_STANDIN_COMPILE_SECONDS: "0.2", ESPHOME_STANDIN_UPLOAD_SECONDS: "0.1", ESPHOME_STANDIN_FAIL: "", ESPHOME_STANDIN_HOST: "Pi", ESPHOME_STANDIN_RECORD: a.record });
    const api = await ApiClient.connect(again.port);
    const follow = api.stream("firmware/follow_job", { job_id: job.job_id });
    const result = await follow.until((f) => f.event === "result", 30_000);
    expect(result.data).toMatchObject({ status: "completed" });
    const final = await api.call<FirmwareJob>("firmware/get_job", { job_id: job.job_id });
    expect(final).toMatchObject({ source: "local", source_pin_sha256: "" });
    expect(final.output.join("")).toContain("build server Desktop did not come back within 1 s; building on this machine instead");
    expect((await calls(a.record)).map((c) => c.command)).toEqual(["bundle", "compile", "upload"]);
    api.close();
  });
});

describe("a bulk install with two build servers", () => {
  it("spreads twelve compiles over both build servers and this machine, one compile per builder at a time", async () => {
    const devices = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`device${i}`, ""]));
    const dir = await configDir(devices);
    const record = path.join(dir, "record.jsonl");
    const env = { ESPHOME_STANDIN_COMPILE_SECONDS: "1", ESPHOME_STANDIN_UPLOAD_SECONDS: "0", ESPHOME_STANDIN_FAIL: "" };
    const aProc = await spawnBuilder(
      ["--config-dir", dir, "--port", "0", "--peer-link-port", "0", "--peer-link-host", "127.0.0.1", "--esphome", STAND_IN, "--no-mdns", "--label", "Pi", "--log-level", "warning"],
      { ...env, ESPHOME_STANDIN_HOST: "Pi", ESPHOME_STANDIN_RECORD: record },
    );
    const a = { proc: aProc, api: await ApiClient.connect(aProc.port), dir, record, peerPort: 0, name: "Pi" };
    const b = await builder("Desktop", env);
    const c = await builder("Laptop", env);
    await pairBuilders(a, b);
    await pairBuilders(a, c);
    await waitFor(async () => {
      const s = await a.api.call<{ pairings: { connected: boolean; idle: boolean | null }[] }>("remote_build/get_offloader_settings");
      return s.pairings.length === 2 && s.pairings.every((p) => p.connected && p.idle === true);
    }, 10_000, "both build servers connected and idle");

    const started = Date.now();
    const jobs = await a.api.call<FirmwareJob[]>("firmware/install_bulk", { configurations: "all", port: "OTA" });
    expect(jobs).toHaveLength(12);
    await waitFor(async () => {
      const all = await a.api.call<FirmwareJob[]>("firmware/get_jobs", {});
      return all.filter((j) => j.status === "completed").length === 12;
    }, 60_000, "all twelve installs");
    const took = Date.now() - started;
    const all = await a.api.call<FirmwareJob[]>("firmware/get_jobs", {});
    const where = all.map((j) => (j.source === "remote" ? j.source_label : "Pi"));
    const count = (name: string): number => where.filter((w) => w === name).length;
    expect(count("Desktop")).toBeGreaterThanOrEqual(2);
    expect(count("Laptop")).toBeGreaterThanOrEqual(2);
    expect(count("Pi")).toBeGreaterThanOrEqual(2);
    expect(count("Desktop") + count("Laptop") + count("Pi")).toBe(12);
    // One compile per builder at a time: 12 one-second compiles on three builders take well under 12 s.
    expect(took).toBeLessThan(9000);
  }, 90_000);
});
