/**
 * The local runner end to end: real ESPHome command lines, run by the stand-in
 * CLI in real process groups, through the real queue and API.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ESPHOME_ENV, cleanArgs, compileArgs, uploadArgs } from "../../src/esphome/cli.ts";
import type { FirmwareJob } from "../../src/firmware/job.ts";
import { LocalRunner, phaseArgs } from "../../src/firmware/local-runner.ts";
import type { SpawnFn } from "../../src/firmware/process.ts";
import { resolvePaths } from "../../src/paths.ts";
import { ApiClient, type Frame } from "../helpers/api-client.ts";
import { STAND_IN, startBuilder } from "../helpers/builder.ts";
import { tempDir, waitFor } from "../helpers/tmp.ts";

interface Invocation {
  argv: string[];
  command: string;
  pid: number;
  device?: string | null;
  file_sha256?: string | null;
  exit_code: number | null;
}

async function readRecord(file: string): Promise<Invocation[]> {
  const text = await readFile(file, "utf8").catch(() => "");
  return text.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l) as Invocation);
}

function withStandIn(env: Record<string, string>): void {
  for (const [k, v] of Object.entries(env)) process.env[k] = v;
}

async function setup(env: Record<string, string> = {}) {
  const record = path.join(await tempDir("record-"), "esphome.jsonl");
  withStandIn({
    ESPHOME_STANDIN_COMPILE_SECONDS: "0.2",
    ESPHOME_STANDIN_UPLOAD_SECONDS: "0.1",
    ESPHOME_STANDIN_FAIL: "",
    ESPHOME_STANDIN_RECORD: record,
    ...env,
  });
  const { builder, port } = await startBuilder();
  const client = await ApiClient.connect(port);
  return { builder, port, client, record };
}

async function runToEnd(client: ApiClient, command: string, args: object): Promise<{ job: FirmwareJob; frames: Frame[]; result: Frame }> {
  const job = await client.call<FirmwareJob>(command, args);
  const follow = client.stream("firmware/follow_job", { job_id: job.job_id });
  const result = await follow.until((f) => f.event === "result", 30_000);
  return { job, frames: follow.frames, result };
}

describe("command lines", () => {
  it("are exactly the contract of DESIGN §4", () => {
    expect(compileArgs("/c/k.yaml")).toEqual(["--dashboard", "compile", "/c/k.yaml"]);
    expect(uploadArgs("/c/k.yaml", "OTA")).toEqual(["--dashboard", "upload", "/c/k.yaml", "--device", "OTA"]);
    expect(uploadArgs("/c/k.yaml", "")).toEqual(["--dashboard", "upload", "/c/k.yaml", "--device", "OTA"]);
    expect(uploadArgs("/c/k.yaml", "/dev/ttyUSB0", "/t/firmware.bin")).toEqual([
      "--dashboard", "upload", "/c/k.yaml", "--device", "/dev/ttyUSB0", "--file", "/t/firmware.bin",
    ]);
    expect(cleanArgs("/c/k.yaml")).toEqual(["--dashboard", "clean", "/c/k.yaml"]);
    expect(ESPHOME_ENV).toEqual({
      PLATFORMIO_FORCE_ANSI: "true",
      FORCE_COLOR: "1",
      CLICOLOR_FORCE: "1",
      PYTHONUNBUFFERED: "1",
      PYTHONUTF8: "1",
      PYTHONIOENCODING: "utf-8",
    });
  });

  it("spawn with the ESPHome environment, the data dir and the config dir as cwd", async () => {
    const dir = await tempDir();
    const paths = resolvePaths({ configDir: dir });
    const seen: { file: string; args: readonly string[]; cwd: string; env: Record<string, string> }[] = [];
    const spawn: SpawnFn = (file, args, opts) => {
      seen.push({ file, args, ...opts });
      return { pid: undefined, stdout: null, stderr: null, exited: Promise.resolve({ exitCode: 0, signal: null, spawnError: null }) };
    };
    const runner = new LocalRunner({ esphome: STAND_IN, paths, spawn });
    const job = { configuration: "k.yaml", port: "192.168.1.20", remote_peer: "" } as FirmwareJob;
    const result = await runner.runPhase({ job, phase: "upload", signal: new AbortController().signal, onLine: () => undefined });
    expect(result).toEqual({ exitCode: 0, error: null });
    expect(seen[0]).toMatchObject({
      file: STAND_IN,
      args: phaseArgs(job, "upload", path.join(dir, "k.yaml")),
      cwd: dir,
      env: { ...ESPHOME_ENV, ESPHOME_DATA_DIR: paths.dataDir },
    });
  });
});

describe("local jobs with the stand-in CLI", () => {
  it("installs: compile then upload in one job, with output, progress and the firmware to download", async () => {
    const { client, record, port } = await setup();
    const sub = client.stream("subscribe_events");
    await sub.until((f) => f.event === "initial_state");
    const { job, frames, result } = await runToEnd(client, "firmware/install", { configuration: "kitchen.yaml", port: "OTA" });
    expect(result.data).toEqual({ status: "completed", exit_code: 0, error: null });
    const lines = frames.filter((f) => f.event === "output").map((f) => (f.data as { line: string }).line).join("");
    expect(lines).toContain("Successfully compiled program.");
    expect(lines).toContain("OTA successful");
    const progress = sub.frames.filter((f) => f.event === "job_progress").map((f) => (f.data as { progress: number }).progress);
    const reset = progress.indexOf(0);
    expect(reset).toBeGreaterThan(0);
    expect(progress.slice(0, reset)).toEqual([...progress.slice(0, reset)].sort((a, b) => a - b));
    expect(progress.at(-1)).toBe(100);
    const calls = await readRecord(record);
    expect(calls.filter((c) => c.command !== "version").map((c) => c.argv.slice(0, 2))).toEqual([["--dashboard", "compile"], ["--dashboard", "upload"]]);
    expect(calls.find((c) => c.command === "upload")?.argv).toContain("OTA");
    const lifecycle = sub.frames.map((f) => f.event).filter((e) => e === "job_queued" || e === "job_started" || e === "job_completed" || e === "job_failed");
    expect(lifecycle).toEqual(["job_queued", "job_started", "job_completed"]);

    const binaries = await client.call<{ file: string; size: number }[]>("firmware/get_binaries", { configuration: "kitchen.yaml" });
    expect(binaries.map((b) => b.file)).toContain("firmware.factory.bin");
    const grant = await client.call<{ url: string; filename: string }>("firmware/download_token", { configuration: "kitchen.yaml", file: "firmware.bin" });
    expect(grant.filename).toBe("kitchen.bin");
    const res = await fetch(`http://127.0.0.1:${port}/${grant.url}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-disposition")).toContain("kitchen.bin");
    const body = Buffer.from(await res.arrayBuffer());
    expect(body.length).toBe(binaries.find((b) => b.file === "firmware.bin")?.size);
    const again = await fetch(`http://127.0.0.1:${port}/${grant.url}`);
    expect(again.status).toBe(403); // single use
    const stored = await client.call<FirmwareJob>("firmware/get_job", { job_id: job.job_id });
    expect(stored.output.join("")).toContain("Successfully compiled program.");
  });

  it("reports a failing compile with its exit code and leaves the upload unrun", async () => {
    const { client, record } = await setup({ ESPHOME_STANDIN_FAIL: "compile" });
    const { result } = await runToEnd(client, "firmware/install", { configuration: "kitchen.yaml" });
    // ESPHome's own reason follows the exit code (here the compiler's first error).
    expect(result.data).toEqual({
      status: "failed",
      exit_code: 1,
      error: "esphome compile failed (exit code 1): src/main.cpp:12:3: error: 'standin_undefined_function' was not declared in this scope",
    });
    expect((await readRecord(record)).map((c) => c.command).filter((c) => c !== "version")).toEqual(["compile"]);
  });

  it("fails an exit-0 run whose output shows a broken install", async () => {
    const { client } = await setup({ ESPHOME_STANDIN_FAIL: "exit0-error" });
    const { result } = await runToEnd(client, "firmware/compile", { configuration: "kitchen.yaml" });
    expect(result.data).toMatchObject({ status: "failed", exit_code: 0 });
    expect((result.data as { error: string }).error).toMatch(/ModuleNotFoundError/);
  });

  it("reports an invalid configuration (exit 2) as failed", async () => {
    const { client } = await setup({ ESPHOME_STANDIN_FAIL: "config" });
    const { result } = await runToEnd(client, "firmware/compile", { configuration: "kitchen.yaml" });
    expect(result.data).toMatchObject({ status: "failed", exit_code: 2 });
  });

  it("cleans", async () => {
    const { client, record } = await setup();
    await runToEnd(client, "firmware/compile", { configuration: "kitchen.yaml" });
    const { result } = await runToEnd(client, "firmware/clean", { configuration: "kitchen.yaml" });
    expect(result.data).toMatchObject({ status: "completed" });
    expect((await readRecord(record)).map((c) => c.command).filter((c) => c !== "version")).toEqual(["compile", "clean"]);
  });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("cancel reaches the process group", () => {
  it("stops a hanging build with SIGTERM", async () => {
    const { client, record } = await setup({ ESPHOME_STANDIN_FAIL: "hang" });
    const job = await client.call<FirmwareJob>("firmware/compile", { configuration: "kitchen.yaml" });
    const follow = client.stream("firmware/follow_job", { job_id: job.job_id });
    await follow.until((f) => f.event === "output");
    await waitFor(async () => (await readRecord(record)).some((c) => c.command === "compile"), 5000, "the stand-in's record");
    const call = (await readRecord(record)).find((c) => c.command === "compile");
    const started = Date.now();
    await client.call("firmware/cancel", { job_id: job.job_id });
    const result = await follow.until((f) => f.event === "result");
    expect(Date.now() - started).toBeLessThan(2000);
    expect(result.data).toMatchObject({ status: "cancelled", error: "cancelled by user" });
    expect(alive(call!.pid)).toBe(false);
  });

  it("kills a build that ignores SIGTERM after the 3 s grace", async () => {
    const { client, record } = await setup({ ESPHOME_STANDIN_FAIL: "ignore-sigterm" });
    const job = await client.call<FirmwareJob>("firmware/compile", { configuration: "kitchen.yaml" });
    const follow = client.stream("firmware/follow_job", { job_id: job.job_id });
    await follow.until((f) => f.event === "output");
    await waitFor(async () => (await readRecord(record)).some((c) => c.command === "compile"), 5000, "the stand-in's record");
    const call = (await readRecord(record)).find((c) => c.command === "compile");
    const started = Date.now();
    await client.call("firmware/cancel", { job_id: job.job_id });
    const result = await follow.until((f) => f.event === "result", 10_000);
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(2900);
    expect(took).toBeLessThan(5000);
    expect(result.data).toMatchObject({ status: "cancelled" });
    expect(alive(call!.pid)).toBe(false);
  });
});

describe("streaming a job's output", () => {
  it("batches lines for a viewer that asks, with the same lines in the same order", async () => {
    const { client } = await setup({ ESPHOME_STANDIN_EXTRA_LINES: "3000" });
    const job = await client.call<FirmwareJob>("firmware/compile", { configuration: "kitchen.yaml" });
    const single = client.stream("firmware/follow_job", { job_id: job.job_id });
    const batched = client.stream("firmware/follow_job", { job_id: job.job_id, batch: true });
    await single.until((f) => f.event === "result", 30_000);
    await batched.until((f) => f.event === "result", 30_000);
    const one = single.frames.filter((f) => f.event === "output").map((f) => (f.data as { line: string }).line);
    const many = batched.frames.filter((f) => f.event === "output_batch");
    expect(many.length).toBeLessThan(one.length / 10);
    expect(many.flatMap((f) => (f.data as { lines: string[] }).lines)).toEqual(one);
    expect(batched.frames.at(-1)?.event).toBe("result");
  });

  it("leaves out job_output for a subscriber that does not want it", async () => {
    const { client } = await setup();
    const quiet = client.stream("subscribe_events", { job_output: false });
    const loud = client.stream("subscribe_events");
    await client.call("firmware/compile", { configuration: "kitchen.yaml" });
    await quiet.until((f) => f.event === "job_completed", 30_000);
    await loud.until((f) => f.event === "job_completed", 30_000);
    expect(quiet.frames.some((f) => f.event === "job_output")).toBe(false);
    expect(quiet.frames.some((f) => f.event === "job_progress")).toBe(true);
    expect(loud.frames.some((f) => f.event === "job_output")).toBe(true);
  });
});
