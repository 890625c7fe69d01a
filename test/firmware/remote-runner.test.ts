/**
 * The source-routed runner against a real build server on loopback. The
 * build server's queue is driven by hand (a scripted runner) so each outcome
 * can be chosen; its build outputs are made by the stand-in CLI.
 */
import { execFileSync } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { esphomeEnv } from "../../src/esphome/cli.ts";
import { EventBus, type EventMap } from "../../src/events.ts";
import { listBinaries } from "../../src/firmware/binaries.ts";
import type { FirmwareJob } from "../../src/firmware/job.ts";
import { LocalRunner } from "../../src/firmware/local-runner.ts";
import { OUTPUT_LINE_KEPT_BYTES, lineCutNotice } from "../../src/firmware/output.ts";
import { FirmwareQueue } from "../../src/firmware/queue.ts";
import { RemoteRunner, SourceRoutedRunner } from "../../src/firmware/remote-runner.ts";
import { resolvePaths } from "../../src/paths.ts";
import { IdentityStore } from "../../src/remote-build/transport/identity.ts";
import { Offloader } from "../../src/remote-build/offloader/offloader.ts";
import { Receiver } from "../../src/remote-build/build-server/receiver.ts";
import { BuildRouter } from "../../src/remote-build/placement/routing.ts";
import type { LocalBuilds } from "../../src/domain/policy.ts";
import { DEVICE_YAML, STAND_IN, configDir } from "../helpers/builder.ts";
import { standInBundle } from "../helpers/pairing.ts";
import { watchJob } from "../helpers/remote-job.ts";
import { ScriptedRunner, type ScriptedRun } from "../helpers/scripted-runner.ts";
import { tempDir, waitFor } from "../helpers/tmp.ts";

process.env.ESPHOME_STANDIN_COMPILE_SECONDS = "0";
process.env.ESPHOME_STANDIN_UPLOAD_SECONDS = "0.2";
process.env.ESPHOME_STANDIN_FAIL = "";

/** A build server whose queue is driven by hand; `compileConcurrency` compiles run there at once. */
async function buildServer(compileConcurrency = 1) {
  const paths = resolvePaths({ configDir: await tempDir() });
  const bus = new EventBus();
  const runner = new ScriptedRunner();
  runner.endOnAbort = true;
  const queue = new FirmwareQueue({ bus, paths, runner, options: { compileConcurrency } });
  await queue.start();
  const receiver = new Receiver({
    bus, queue, paths,
    identity: new IdentityStore({ keyFile: paths.peerLinkKeyFile, idFile: paths.identityFile }),
    host: "127.0.0.1", port: 0, label: () => "Desktop", esphomeVersion: () => "2026.11.0", defaultEnabled: true,
  });
  await receiver.start();
  /** Makes the job's real build outputs with the stand-in, where the receiver packs them from. */
  const build = (run: ScriptedRun): void => {
    execFileSync(STAND_IN, ["--dashboard", "compile", paths.jobYaml(run.job)], { env: { ...process.env, ...esphomeEnv(paths.jobDataDir(run.job)) }, stdio: "ignore" });
  };
  return { paths, bus, runner, queue, receiver, build, stop: async () => { await receiver.stop(); await queue.stop(); } };
}

async function offloaderBuilder(server: Awaited<ReturnType<typeof buildServer>>, localBuilds: LocalBuilds = "always") {
  const dir = await tempDir();
  await writeFile(path.join(dir, "kitchen.yaml"), DEVICE_YAML("kitchen"));
  const paths = resolvePaths({ configDir: dir });
  const bus = new EventBus();
  const events: { name: keyof EventMap; payload: unknown }[] = [];
  bus.onAny((name, payload) => events.push({ name, payload }));
  const identity = new IdentityStore({ keyFile: paths.peerLinkKeyFile, idFile: paths.identityFile });
  const offloader = new Offloader({ bus, paths, identity, label: () => "Pi" });
  await offloader.start();
  const remote = new RemoteRunner({ bus, paths, esphome: STAND_IN, offloader, cancelWaitMs: 2000 });
  remote.start();
  const queue = new FirmwareQueue({ bus, paths, runner: new SourceRoutedRunner(new LocalRunner({ esphome: STAND_IN, paths }), remote) });
  queue.setRouter(new BuildRouter({ offloader, wake: () => { queue.wake(); }, localBuilds: () => localBuilds }));
  for (const n of ["offloader_peer_link_opened", "offloader_queue_status_changed"] as const) bus.on(n, () => { queue.wake(); });
  await queue.start();
  // Pair with the build server.
  server.receiver.setPairingWindow("t", true);
  const preview = await offloader.previewPair("127.0.0.1", server.receiver.port!);
  await offloader.requestPair("127.0.0.1", server.receiver.port!, preview.pin_sha256, "Desktop");
  server.receiver.approve((await identity.load()).dashboard_id);
  await waitFor(() => offloader.session(preview.pin_sha256)?.queueStatus?.idle === true, 5000, "a connected, idle build server");
  const job = (id: string): FirmwareJob => queue.get(id)!;
  const done = (id: string): Promise<void> => waitFor(() => ["completed", "failed", "cancelled"].includes(job(id).status), 20_000, `job ${id} to end`);
  const lifecycle = (id: string): string[] =>
    events.filter((e) => /^job_(queued|started|completed|failed|cancelled)$/.test(e.name) && (e.payload as { job: FirmwareJob }).job.job_id === id).map((e) => e.name);
  return { paths, bus, events, offloader, queue, remote, pin: preview.pin_sha256, job, done, lifecycle, stop: async () => { await queue.stop(); await remote.stop(); await offloader.stop(); } };
}

async function setup(opts: { localBuilds?: LocalBuilds; serverCompiles?: number } = {}) {
  const server = await buildServer(opts.serverCompiles ?? 1);
  const o = await offloaderBuilder(server, opts.localBuilds ?? "always");
  return { server, o, stop: async () => { await o.stop(); await server.stop(); } };
}

describe("a compile on a build server", () => {
  it("relays output and progress, ends with exit code 0 and keeps the firmware here", async () => {
    const { server, o, stop } = await setup({ serverCompiles: 2 });
    const queued = await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "compile" });
    const run = await server.runner.next();
    expect(run.job).toMatchObject({ remote_job_id: queued.job_id, remote_peer_label: "Pi", job_type: "compile" });
    expect(o.job(queued.job_id)).toMatchObject({ source: "remote", source_pin_sha256: o.pin, source_label: "Desktop", status: "running" });
    // Another job on the same build server, over the same session, prints and fails meanwhile: none of it is this job's.
    const session = o.offloader.session(o.pin)!;
    const other = watchJob(session, "000000000000");
    const garage = await standInBundle(await configDir({ garage: "" }), "garage.yaml");
    expect(await session.submitJob("000000000000", "compile", "garage.yaml", garage, "garage")).toEqual({ accepted: true });
    (await server.runner.next()).line("stray\n").fail("not yours");
    await waitFor(() => other.statuses().includes("failed"), 5000, "the other job's end here");
    expect(other.lines).toContain("stray\n");
    expect(other.states.at(-1)?.error).toContain("not yours");
    expect(o.job(queued.job_id).status).toBe("running");
    run.line("[ 42%] Compiling main.cpp.o\n");
    server.build(run);
    run.succeed();
    await o.done(queued.job_id);
    const job = o.job(queued.job_id);
    expect(job).toMatchObject({ status: "completed", exit_code: 0, error: null });
    const output = (await o.queue.output(queued.job_id)).join("");
    expect(output).toContain("[ 42%] Compiling main.cpp.o");
    expect(output).not.toContain("stray");
    expect(o.events.some((e) => e.name === "job_progress" && (e.payload as { progress: number }).progress === 42)).toBe(true);
    expect((await listBinaries(o.paths, "kitchen.yaml", "kitchen")).map((b) => b.file)).toContain("firmware.bin");
    // Materialised as the upstream offloader does: images at their build-folder paths here, StorageJSON re-rooted.
    const storage = JSON.parse(await readFile(o.paths.storageJson("kitchen.yaml"), "utf8")) as { build_path: string; firmware_bin_path: string };
    expect(storage).toMatchObject({ build_path: o.paths.buildDir("kitchen"), firmware_bin_path: path.join(o.paths.firmwareDir("kitchen"), "firmware.bin") });
    expect((await readFile(storage.firmware_bin_path)).length).toBeGreaterThan(0);
    expect(o.lifecycle(queued.job_id)).toEqual(["job_queued", "job_started", "job_completed"]);
    await stop();
  });

  it("takes a build server's line as long as a frame allows and cuts it like local output", async () => {
    const { server, o, stop } = await setup();
    const queued = await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "compile" });
    const run = await server.runner.next();
    // Upstream build servers send lines of 20,000+ characters; the session stays up.
    const long = `In file included from src/main.cpp:1: ${"x".repeat(20_012)}\n`;
    run.line("before\n").line(long).line("progress 50%\r").line("after\n");
    server.build(run);
    run.succeed();
    await o.done(queued.job_id);
    expect(o.job(queued.job_id).status).toBe("completed");
    const output = await o.queue.output(queued.job_id);
    const cut = `${long.slice(0, OUTPUT_LINE_KEPT_BYTES)}${lineCutNotice(long.length - 1 - OUTPUT_LINE_KEPT_BYTES)}\n`;
    expect(output).toEqual(expect.arrayContaining(["before\n", cut, "after\n"]));
    expect(output.indexOf(cut)).toBe(output.indexOf("before\n") + 1);
    expect(output).not.toContain("progress 50%\r"); // overwritten by the next line, as locally
    expect(o.events.filter((e) => e.name === "offloader_peer_link_closed")).toEqual([]);
    await stop();
  });

  it("fails with the build server's message", async () => {
    const { server, o, stop } = await setup();
    const queued = await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "install" });
    (await server.runner.next()).fail("src/main.cpp:1: error: boom");
    await o.done(queued.job_id);
    expect(o.job(queued.job_id)).toMatchObject({ status: "failed", error: "remote build on Desktop: src/main.cpp:1: error: boom" });
    await stop();
  });

  it("builds here instead when the build server cannot send what it built, saying why in the log", async () => {
    const { server, o, stop } = await setup();
    const queued = await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "install" });
    (await server.runner.next()).succeed(); // nothing was built: the build server has nothing to send
    await o.done(queued.job_id);
    // local_builds `always`: the compile went again, here, and the install went on.
    expect(o.job(queued.job_id)).toMatchObject({ status: "completed", source: "local", source_pin_sha256: "", error: null });
    const output = (await o.queue.output(queued.job_id)).join("");
    // The reason, and the build server's detail (newer upstream's artifacts_end.detail): what is missing.
    expect(output).toMatch(/\*\*\* build server Desktop could not send what it built \(the build server could not send the artifacts \(build_dir_missing: no build information for kitchen\.yaml \(\S+kitchen\.yaml\.json is missing\)\)\); building on this machine instead \*\*\*/);
    expect(o.lifecycle(queued.job_id)).toEqual(["job_queued", "job_started", "job_completed"]);
    await stop();
  });

  it("fails with the build server's reason when this builder may not compile (local_builds: never)", async () => {
    const { server, o, stop } = await setup({ localBuilds: "never" });
    const queued = await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "install" });
    (await server.runner.next()).succeed();
    await o.done(queued.job_id);
    expect(o.job(queued.job_id).status).toBe("failed");
    // Why it came back first, then why it cannot build here.
    expect(o.job(queued.job_id).error).toMatch(/^remote build: downloading the artifacts from Desktop failed: the build server could not send the artifacts \(build_dir_missing: .*\); this builder does not compile \(local_builds: never; change it under Build servers\), and this job must build here \(.*given back by a build server that could not build or send it\)$/);
    expect((await o.queue.output(queued.job_id)).join("")).toMatch(/build server Desktop could not send what it built \(.*build_dir_missing/);
    await stop();
  });

  it("gives the compile back to the queue when the session is lost mid-build, saying so in the log (here it then builds locally)", async () => {
    const { server, o, stop } = await setup();
    const queued = await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "compile" });
    await server.runner.next();
    await server.receiver.setEnabled(false);
    await o.done(queued.job_id);
    // No other build server, and local_builds is `always` (the router's default): it compiled here.
    expect(o.job(queued.job_id)).toMatchObject({ status: "completed", source: "local", source_pin_sha256: "", error: null });
    const output = (await o.queue.output(queued.job_id)).join("");
    expect(output).toContain("*** remote build session closed (server_shutting_down");
    expect(output).toContain("*** build server Desktop was lost mid-build (1x); dispatching the compile again ***");
    expect(o.lifecycle(queued.job_id)).toEqual(["job_queued", "job_started", "job_completed"]);
    expect(o.events.filter((e) => e.name === "job_updated").length).toBeGreaterThan(0);
    await stop();
  });

  it("fails with the reason when the build server refuses the job", async () => {
    const { o, stop } = await setup();
    const session = o.offloader.session(o.pin)!;
    // Announce a bundle over the 128 MiB cap: the build server refuses it before any chunk.
    const real = session.submitJob.bind(session);
    session.submitJob = (jobId, target, name) => real(jobId, target, name, Buffer.alloc(129 * 1024 * 1024));
    const queued = await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "compile" });
    await o.done(queued.job_id);
    expect(o.job(queued.job_id).error).toBe("remote build: Desktop refused the job (oversized)");
    await stop();
  });

  it("fails clearly when the build server is not connected any more", async () => {
    const { o, stop } = await setup();
    const runner = new RemoteRunner({ bus: o.bus, paths: o.paths, esphome: STAND_IN, offloader: { session: () => undefined, label: () => "Desktop" } });
    const result = await runner.runPhase({
      job: { ...o.job((await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "compile", force_local: true })).job_id), source: "remote", source_pin_sha256: o.pin, source_label: "Desktop" },
      phase: "compile",
      signal: new AbortController().signal,
      onLine: () => undefined,
    });
    expect(result.error).toBe("remote build: build server Desktop is not connected");
    await stop();
  });
});

describe("an install built on a build server", () => {
  it("uploads here from the build tree the build server's artifacts filled (no --file)", async () => {
    const { server, o, stop } = await setup();
    const queued = await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "install", port: "OTA" });
    const run = await server.runner.next();
    server.build(run);
    run.succeed();
    await o.done(queued.job_id);
    expect(o.job(queued.job_id)).toMatchObject({ status: "completed", source: "remote", exit_code: 0 });
    const progress = o.events.filter((e) => e.name === "job_progress" && (e.payload as { job_id: string }).job_id === queued.job_id).map((e) => (e.payload as { progress: number }).progress);
    expect(progress).toContain(0);
    expect((await o.queue.output(queued.job_id)).join("")).toContain("OTA successful");
    await stop();
  });

  it("fails cleanly when the local upload exits non-zero", async () => {
    const { server, o, stop } = await setup();
    process.env.ESPHOME_STANDIN_FAIL = "upload";
    try {
      const queued = await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "install", port: "OTA" });
      const run = await server.runner.next();
      server.build(run);
      run.succeed();
      await o.done(queued.job_id);
      expect(o.job(queued.job_id)).toMatchObject({ status: "failed", error: expect.stringMatching(/^esphome upload failed \(exit code 1\): \S/) as unknown, exit_code: 1 });
    } finally {
      process.env.ESPHOME_STANDIN_FAIL = "";
    }
    await stop();
  });
});

describe("cancel", () => {
  it("becomes a cancel_job on the wire and stops the build server's run", async () => {
    const { server, o, stop } = await setup();
    const queued = await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "install" });
    const run = await server.runner.next();
    o.queue.cancel(queued.job_id);
    await waitFor(() => run.signal.aborted, 5000, "the build server's run to be signalled");
    await o.done(queued.job_id);
    expect(o.job(queued.job_id).status).toBe("cancelled");
    expect(o.lifecycle(queued.job_id)).toEqual(["job_queued", "job_started", "job_cancelled"]);
    await stop();
  });

  it("that arrives before the runner starts sends nothing", async () => {
    const { server, o, stop } = await setup();
    o.bus.on("job_started", ({ job }) => { o.queue.cancel(job.job_id); });
    const queued = await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "install" });
    await o.done(queued.job_id);
    expect(o.job(queued.job_id).status).toBe("cancelled");
    expect(server.runner.runs).toHaveLength(0);
    await stop();
  });

  it("wins over a completion from the build server that races it", async () => {
    const { server, o, stop } = await setup();
    const queued = await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "install" });
    const run = await server.runner.next();
    server.build(run);
    run.succeed();
    o.queue.cancel(queued.job_id); // before the completed frame can arrive
    await o.done(queued.job_id);
    expect(o.job(queued.job_id).status).toBe("cancelled");
    await stop();
  });

  it("during the local upload stops the upload", async () => {
    const { server, o, stop } = await setup();
    try {
      const queued = await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "install", port: "OTA" });
      const run = await server.runner.next();
      server.build(run);
      process.env.ESPHOME_STANDIN_FAIL = "hang"; // the upload here will hang
      run.succeed();
      await waitFor(() => o.job(queued.job_id).phase === "upload" && o.job(queued.job_id).status === "running", 10_000, "the upload");
      await new Promise((r) => setTimeout(r, 300));
      o.queue.cancel(queued.job_id);
      await o.done(queued.job_id);
      expect(o.job(queued.job_id).status).toBe("cancelled");
    } finally {
      process.env.ESPHOME_STANDIN_FAIL = "";
    }
    await stop();
  });

  it("by a shutdown ends the remote job as cancelled and cancels it on the build server", async () => {
    const { server, o, stop } = await setup();
    const queued = await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "install" });
    const run = await server.runner.next();
    await o.queue.stop();
    expect(o.job(queued.job_id)).toMatchObject({ status: "cancelled", error: "the builder was stopped" });
    await waitFor(() => run.signal.aborted, 5000, "the build server's run to be signalled");
    await stop();
  });
});
