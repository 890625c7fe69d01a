/**
 * `local_builds` against real build servers on loopback: an offloader with
 * the real router, local runner (stand-in CLI) and remote runner, and build
 * servers whose queues are driven by hand (a scripted runner), so each can be
 * made busy or idle at will. Also: a compile whose build server is lost is
 * dispatched again, and a build server's environment is reset on request.
 */
import { execFileSync } from "node:child_process";
import { mkdir, readFile, readdir, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { esphomeEnv } from "../../src/esphome/cli.ts";
import { EventBus, type EventMap } from "../../src/events.ts";
import type { FirmwareJob } from "../../src/firmware/job.ts";
import { LocalRunner } from "../../src/firmware/local-runner.ts";
import { FirmwareQueue } from "../../src/firmware/queue.ts";
import { RemoteRunner, SourceRoutedRunner } from "../../src/firmware/remote-runner.ts";
import { resolvePaths } from "../../src/paths.ts";
import { IdentityStore } from "../../src/remote-build/transport/identity.ts";
import { intentResponseSchema } from "../../src/remote-build/transport/messages.ts";
import { Offloader } from "../../src/remote-build/offloader/offloader.ts";
import type { LocalBuilds } from "../../src/remote-build/placement/placement.ts";
import { Receiver } from "../../src/remote-build/build-server/receiver.ts";
import { BuildRouter } from "../../src/remote-build/placement/routing.ts";
import { DEVICE_YAML, STAND_IN } from "../helpers/builder.ts";
import { standInBundle } from "../helpers/pairing.ts";
import { watchJob } from "../helpers/remote-job.ts";
import { ScriptedRunner, type ScriptedRun } from "../helpers/scripted-runner.ts";
import { tempDir, waitFor } from "../helpers/tmp.ts";

process.env.ESPHOME_STANDIN_COMPILE_SECONDS = "0";
process.env.ESPHOME_STANDIN_UPLOAD_SECONDS = "0";
process.env.ESPHOME_STANDIN_FAIL = "";

/** A port free now, so a build server switched off and on again comes back where its pairing points. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => { resolve(); }));
  return port;
}

async function buildServer(label: string) {
  const paths = resolvePaths({ configDir: await tempDir() });
  const bus = new EventBus();
  const runner = new ScriptedRunner();
  const queue = new FirmwareQueue({ bus, paths, runner: { runPhase: (ctx) => (ctx.job.job_type === "clean_all" ? new LocalRunner({ esphome: STAND_IN, paths }).runPhase(ctx) : runner.runPhase(ctx)) } });
  await queue.start();
  const receiver = new Receiver({
    bus, queue, paths,
    identity: new IdentityStore({ keyFile: paths.peerLinkKeyFile, idFile: paths.identityFile }),
    host: "127.0.0.1", port: await freePort(), label: () => label, esphomeVersion: () => "2026.10.0", defaultEnabled: true,
  });
  await receiver.start();
  const build = (run: ScriptedRun): void => {
    execFileSync(STAND_IN, ["--dashboard", "compile", paths.jobYaml(run.job)], { env: { ...process.env, ...esphomeEnv(paths.jobDataDir(run.job)) }, stdio: "ignore" });
  };
  /** Makes the build server busy with a job of its own until `release` is called. */
  const occupy = async (): Promise<{ release: () => Promise<void> }> => {
    await writeFile(path.join(paths.configDir, "own.yaml"), DEVICE_YAML("own"));
    const own = await queue.enqueue({ configuration: "own.yaml", job_type: "compile" });
    const run = await runner.next();
    expect(run.job.job_id).toBe(own.job_id);
    return { release: async () => { run.succeed(); await waitFor(() => queue.status().idle, 5000, "the build server idle again"); } };
  };
  return { label, paths, bus, runner, queue, receiver, build, occupy, stop: async () => { await receiver.stop(); await queue.stop(); } };
}
type Server = Awaited<ReturnType<typeof buildServer>>;

async function offloaderBuilder(initial: LocalBuilds, startGraceMs = 0) {
  const dir = await tempDir();
  await writeFile(path.join(dir, "kitchen.yaml"), DEVICE_YAML("kitchen"));
  const paths = resolvePaths({ configDir: dir });
  const bus = new EventBus();
  const events: { name: keyof EventMap; payload: unknown }[] = [];
  bus.onAny((name, payload) => events.push({ name, payload }));
  const identity = new IdentityStore({ keyFile: paths.peerLinkKeyFile, idFile: paths.identityFile });
  const offloader = new Offloader({ bus, paths, identity, label: () => "Pi", timings: { backoffInitialMs: 100, backoffMaxMs: 200 } });
  await offloader.start();
  const remote = new RemoteRunner({ bus, paths, esphome: STAND_IN, offloader, cancelWaitMs: 2000 });
  remote.start();
  const setting = { value: initial };
  const queue = new FirmwareQueue({ bus, paths, runner: new SourceRoutedRunner(new LocalRunner({ esphome: STAND_IN, paths }), remote) });
  const router = new BuildRouter({ offloader, wake: () => { queue.wake(); }, localBuilds: () => setting.value, restoreGraceMs: startGraceMs });
  queue.setRouter(router);
  for (const n of ["offloader_peer_link_opened", "offloader_peer_link_closed", "offloader_queue_status_changed", "offloader_pairing_changed"] as const) bus.on(n, () => { queue.wake(); });
  await queue.start();
  const pair = async (server: Server): Promise<string> => {
    server.receiver.setPairingWindow("t", true);
    const preview = await offloader.previewPair("127.0.0.1", server.receiver.port!);
    await offloader.requestPair("127.0.0.1", server.receiver.port!, preview.pin_sha256, server.label);
    server.receiver.approve((await identity.load()).dashboard_id);
    await waitFor(() => offloader.session(preview.pin_sha256)?.queueStatus?.idle === true, 5000, `a connected, idle ${server.label}`);
    return preview.pin_sha256;
  };
  const job = (id: string): FirmwareJob => queue.get(id)!;
  const done = (id: string): Promise<void> => waitFor(() => ["completed", "failed", "cancelled"].includes(job(id).status), 20_000, `job ${id} to end`);
  const updates = (id: string): FirmwareJob[] =>
    events.filter((e) => e.name === "job_updated" && (e.payload as { job: FirmwareJob }).job.job_id === id).map((e) => (e.payload as { job: FirmwareJob }).job);
  const lifecycle = (id: string): string[] =>
    events.filter((e) => /^job_(queued|started|completed|failed|cancelled)$/.test(e.name) && (e.payload as { job: FirmwareJob }).job.job_id === id).map((e) => e.name);
  const stop = async (): Promise<void> => { await queue.stop(); await remote.stop(); await offloader.stop(); router.stop(); };
  return { paths, bus, events, offloader, queue, setting, pair, job, done, updates, lifecycle, stop };
}

describe("local_builds with real build servers", () => {
  it("fallback: waits for a busy build server, shown as waiting, and sends the compile there once it is idle", async () => {
    const server = await buildServer("Desktop");
    const o = await offloaderBuilder("fallback");
    const pin = await o.pair(server);
    const busy = await server.occupy();
    await waitFor(() => o.offloader.session(pin)?.queueStatus?.idle === false, 5000, "the busy state to reach the offloader");

    const queued = await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "compile" });
    expect(o.job(queued.job_id)).toMatchObject({ status: "queued", source: "local", waiting: { reason: "build_server" } });
    expect(o.updates(queued.job_id).map((j) => j.waiting?.reason)).toEqual(["build_server"]);
    // It waits in the compile lane, but does not make this machine busy for its own peers.
    expect(o.queue.status()).toEqual({ idle: true, running: 0, queue_depth: 1 });

    await busy.release();
    const run = await server.runner.next();
    expect(run.job.remote_job_id).toBe(queued.job_id);
    expect(o.job(queued.job_id)).toMatchObject({ status: "running", source: "remote", source_pin_sha256: pin, source_label: "Desktop" });
    expect(o.job(queued.job_id).waiting).toBeUndefined();
    server.build(run);
    run.succeed();
    await o.done(queued.job_id);
    expect(o.job(queued.job_id)).toMatchObject({ status: "completed", source: "remote" });
    // The waiting reason was set, then cleared before it started: clients saw both.
    expect(o.updates(queued.job_id).map((j) => j.waiting?.reason ?? null)).toEqual(["build_server", null]);
    expect(o.lifecycle(queued.job_id)).toEqual(["job_queued", "job_started", "job_completed"]);
    await o.stop();
    await server.stop();
  });

  it("always: compiles here while the build server is busy", async () => {
    const server = await buildServer("Desktop");
    const o = await offloaderBuilder("always");
    const pin = await o.pair(server);
    const busy = await server.occupy();
    await waitFor(() => o.offloader.session(pin)?.queueStatus?.idle === false, 5000, "the busy state to reach the offloader");
    const queued = await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "compile" });
    await o.done(queued.job_id);
    expect(o.job(queued.job_id)).toMatchObject({ status: "completed", source: "local", source_pin_sha256: "" });
    expect(o.job(queued.job_id).waiting).toBeUndefined();
    expect(o.updates(queued.job_id)).toEqual([]);
    expect(server.runner.runs).toHaveLength(1); // only its own job
    await busy.release();
    await o.stop();
    await server.stop();
  });

  it("fallback: compiles here when no build server is connected", async () => {
    const server = await buildServer("Desktop");
    const o = await offloaderBuilder("fallback");
    const pin = await o.pair(server);
    await server.receiver.setEnabled(false);
    await waitFor(() => o.offloader.session(pin) === undefined, 5000, "the session to close");
    const queued = await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "compile" });
    await o.done(queued.job_id);
    expect(o.job(queued.job_id)).toMatchObject({ status: "completed", source: "local" });
    await o.stop();
    await server.stop();
  });

  it("fallback: right after this builder starts, waits for a paired build server to reconnect, then builds here", async () => {
    const server = await buildServer("Desktop");
    const o = await offloaderBuilder("fallback", 3000);
    const pin = await o.pair(server);
    await server.receiver.setEnabled(false);
    await waitFor(() => o.offloader.session(pin) === undefined, 5000, "the session to close");
    const queued = await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "compile" });
    expect(o.job(queued.job_id)).toMatchObject({ status: "queued", waiting: { reason: "build_server" } });
    // It did not come back: once the start-up grace is over, the job builds here.
    await o.done(queued.job_id);
    expect(o.job(queued.job_id)).toMatchObject({ status: "completed", source: "local" });
    await o.stop();
    await server.stop();
  });

  it("never: waits with no build server connected, can be cancelled, and runs there once one connects", async () => {
    const server = await buildServer("Desktop");
    const o = await offloaderBuilder("never");
    const pin = await o.pair(server);
    await server.receiver.setEnabled(false);
    await waitFor(() => o.offloader.session(pin) === undefined, 5000, "the session to close");

    const cancelled = await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "compile" });
    expect(o.job(cancelled.job_id)).toMatchObject({ status: "queued", waiting: { reason: "build_server" } });
    o.queue.cancel(cancelled.job_id);
    expect(o.job(cancelled.job_id).status).toBe("cancelled");
    expect(o.job(cancelled.job_id).waiting).toBeUndefined();

    const queued = await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "install", port: "OTA" });
    const since = o.job(queued.job_id).waiting?.since;
    expect(since).toBeDefined();
    // Nothing built here while it waited.
    await new Promise((r) => setTimeout(r, 300));
    expect(o.job(queued.job_id)).toMatchObject({ status: "queued", waiting: { reason: "build_server", since } });

    await server.receiver.setEnabled(true);
    const run = await server.runner.next();
    expect(run.job.remote_job_id).toBe(queued.job_id);
    server.build(run);
    run.succeed();
    await o.done(queued.job_id);
    expect(o.job(queued.job_id)).toMatchObject({ status: "completed", source: "remote", source_pin_sha256: pin });
    await o.stop();
    await server.stop();
  });

  it("never: a job that has to build here fails at once, saying why and what to change", async () => {
    const o = await offloaderBuilder("never");
    const queued = await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "compile", force_local: true });
    await o.done(queued.job_id);
    expect(o.job(queued.job_id).status).toBe("failed");
    expect(o.job(queued.job_id).error).toMatch(/local_builds: never; change it under Build servers/);
    // A clean is not a compile: it still runs here.
    const clean = await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "clean" });
    await o.done(clean.job_id);
    expect(o.job(clean.job_id).status).toBe("completed");
    await o.stop();
  });

  it("a setting changed while a job waits takes effect at the next dispatch", async () => {
    const o = await offloaderBuilder("never");
    const queued = await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "compile" });
    expect(o.job(queued.job_id).waiting?.reason).toBe("build_server");
    o.setting.value = "fallback";
    o.queue.wake();
    await o.done(queued.job_id);
    expect(o.job(queued.job_id)).toMatchObject({ status: "completed", source: "local" });
    await o.stop();
  });
});

describe("a build server lost mid-build", () => {
  it("gives the compile to the other build server: one job, one start, its output notes the re-route", async () => {
    const desktop = await buildServer("Desktop");
    const laptop = await buildServer("Laptop");
    const o = await offloaderBuilder("never");
    const desktopPin = await o.pair(desktop);
    const laptopPin = await o.pair(laptop);
    const queued = await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "install", port: "OTA" });
    const first = await desktop.runner.next();
    first.line("[ 30%] Compiling main.cpp.o\n");
    await waitFor(() => o.job(queued.job_id).progress === 30, 5000, "progress from Desktop");
    await desktop.receiver.setEnabled(false);

    const second = await laptop.runner.next();
    expect(second.job.remote_job_id).toBe(queued.job_id); // the same job id, on the other build server
    expect(o.job(queued.job_id)).toMatchObject({ status: "running", source: "remote", source_pin_sha256: laptopPin, source_label: "Laptop", phase: "compile" });
    laptop.build(second);
    second.succeed();
    await o.done(queued.job_id);
    expect(o.job(queued.job_id)).toMatchObject({ status: "completed", source: "remote", source_pin_sha256: laptopPin });
    const output = (await o.queue.output(queued.job_id)).join("");
    expect(output).toContain("*** building on Desktop ***");
    expect(output).toContain("*** build server Desktop was lost mid-build (1x); dispatching the compile again ***");
    expect(output).toContain("*** building on Laptop ***");
    expect(o.lifecycle(queued.job_id)).toEqual(["job_queued", "job_started", "job_completed"]);
    // Clients saw it go back to the pool, then to Laptop.
    expect(o.updates(queued.job_id).map((j) => j.source_pin_sha256)).toEqual(["", laptopPin]);
    expect(desktopPin).not.toBe(laptopPin);
    await o.stop();
    await laptop.stop();
    await desktop.stop();
  });

  it("a build server given the same job id again (an upstream offloader's re-route) ends the older run without telling the peer it was cancelled", async () => {
    const server = await buildServer("Desktop");
    const o = await offloaderBuilder("always");
    const pin = await o.pair(server);
    const session = o.offloader.session(pin)!;
    const bundle = await standInBundle(o.paths.configDir);
    const job = watchJob(session, "0123456789ab");
    expect(await session.submitJob("0123456789ab", "compile", "kitchen.yaml", bundle, "kitchen")).toEqual({ accepted: true });
    const first = await server.runner.next();
    expect(await session.submitJob("0123456789ab", "compile", "kitchen.yaml", bundle, "kitchen")).toEqual({ accepted: true });
    await waitFor(() => first.signal.aborted, 5000, "the older run superseded there");
    const second = await server.runner.next();
    second.succeed();
    await waitFor(() => job.statuses().includes("completed"), 5000, "the job's end");
    expect(job.statuses()).not.toContain("cancelled");
    expect(job.statuses().filter((s) => s === "completed")).toHaveLength(1);
    await o.stop();
    await server.stop();
  });

  it("never: after the fourth lost build server the job fails with the count", async () => {
    const server = await buildServer("Desktop");
    const o = await offloaderBuilder("never");
    const pin = await o.pair(server);
    const queued = await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "compile" });
    for (let loss = 1; loss <= 4; loss++) {
      const run = await server.runner.next();
      await server.receiver.setEnabled(false);
      // The build server's own run of it ends too (so it is idle when it comes back).
      run.fail("the session went away");
      if (loss < 4) {
        await waitFor(() => o.job(queued.job_id).waiting?.reason === "build_server", 5000, `waiting after loss ${loss}`);
        await server.receiver.setEnabled(true);
        await waitFor(() => o.offloader.session(pin) !== undefined, 5000, "the session back");
      }
    }
    await o.done(queued.job_id);
    expect(o.job(queued.job_id)).toMatchObject({ status: "failed", error: "build servers were lost mid-build 4 times; this builder does not compile (local_builds: never; change it under Build servers)" });
    expect(o.job(queued.job_id).waiting).toBeUndefined();
    await o.stop();
    await server.stop();
  });
});

describe("resetting a build server's environment", () => {
  it("wipes this offloader's folders there (not another peer's), as a job here with the build server's output", async () => {
    const server = await buildServer("Desktop");
    const o = await offloaderBuilder("always");
    const pin = await o.pair(server);
    expect(o.offloader.pairings()[0]?.reset_build_env_supported).toBe(true);
    // One build there, so the offloader has a folder; another peer's folder beside it.
    const queued = await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "compile" });
    const run = await server.runner.next();
    server.build(run);
    run.succeed();
    await o.done(queued.job_id);
    const ourPin = (await new IdentityStore({ keyFile: o.paths.peerLinkKeyFile, idFile: o.paths.identityFile }).load()).pin_sha256;
    const ours = path.join(server.paths.remoteBuildsDir, ourPin);
    const theirs = path.join(server.paths.remoteBuildsDir, "c".repeat(64), "other");
    await mkdir(theirs, { recursive: true });
    expect((await readdir(ours)).length).toBeGreaterThan(0);

    const reset = await o.queue.enqueue({ configuration: "", job_type: "clean_all", source: "remote", source_pin_sha256: pin, source_label: "Desktop" });
    await o.done(reset.job_id);
    expect(o.job(reset.job_id)).toMatchObject({ status: "completed", exit_code: 0, source: "remote" });
    await expect(stat(ours)).rejects.toThrow(/ENOENT/);
    expect((await stat(theirs)).isDirectory()).toBe(true);
    const output = (await o.queue.output(reset.job_id)).join("");
    expect(output).toContain(`INFO Deleting ${ours}`);
    expect(output).toContain("INFO Done!");
    // On the build server it was a clean_all of that peer's folder.
    expect(server.queue.list().find((j) => j.job_type === "clean_all")).toMatchObject({ configuration: ourPin, remote_peer: ourPin, remote_job_id: reset.job_id, status: "completed" });
    await o.stop();
    await server.stop();
  });

  it("is refused while one of this offloader's builds runs there, with the reason", async () => {
    const server = await buildServer("Desktop");
    const o = await offloaderBuilder("always");
    const pin = await o.pair(server);
    const compile = await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "compile" });
    const run = await server.runner.next();
    // The queue holds a reset back while our compile runs there; asked directly, the build server says busy.
    const ack = await o.offloader.session(pin)!.resetBuildEnv("0123456789ab");
    expect(ack).toEqual({ accepted: false, reason: "busy" });
    const reset = await o.queue.enqueue({ configuration: "", job_type: "clean_all", source: "remote", source_pin_sha256: pin, source_label: "Desktop" });
    expect(o.job(reset.job_id)).toMatchObject({ status: "queued", waiting: { reason: "build_server" } });
    server.build(run);
    run.succeed();
    await o.done(compile.job_id);
    await o.done(reset.job_id);
    expect(o.job(reset.job_id).status).toBe("completed");
    await o.stop();
    await server.stop();
  });

  it("counts a build server as able to reset only when its intent response says true", () => {
    const flag = (extra: Record<string, unknown>): boolean => intentResponseSchema.parse({ intent_response: "ok", ...extra }).reset_build_env_supported;
    expect(flag({})).toBe(false); // upstream 2026-05-31 and older builders of ours
    expect(flag({ reset_build_env_supported: "yes" })).toBe(false);
    expect(flag({ reset_build_env_supported: false })).toBe(false);
    expect(flag({ reset_build_env_supported: true })).toBe(true);
  });

  it("answers a malformed reset_build_env with invalid_frame and ends the session", async () => {
    const server = await buildServer("Desktop");
    const o = await offloaderBuilder("always");
    const pin = await o.pair(server);
    const acks: unknown[] = [];
    o.offloader.session(pin)!.channel.onMessage((m) => { if (m.type === "reset_build_env_ack") acks.push(m); });
    o.offloader.session(pin)!.channel.send({ type: "reset_build_env", job_id: "../../etc" });
    await waitFor(() => o.offloader.session(pin) === undefined, 5000, "the session to end");
    expect(acks).toEqual([{ type: "reset_build_env_ack", job_id: "../../etc", accepted: false, reason: "invalid_frame" }]);
    expect(server.queue.list()).toEqual([]);
    await o.stop();
    await server.stop();
  });
});

describe("clean all here", () => {
  it("removes ESPHome's build folders for every device and keeps StorageJSON and the builder's own state", async () => {
    const o = await offloaderBuilder("always");
    const compiled = await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "compile" });
    await o.done(compiled.job_id);
    const { dataDir } = o.paths;
    await mkdir(path.join(dataDir, "pio_components", "lib"), { recursive: true });
    await mkdir(path.join(o.paths.remoteBuildsDir, "d".repeat(64)), { recursive: true });
    expect((await stat(o.paths.buildDir("kitchen"))).isDirectory()).toBe(true);
    const storage = await readFile(o.paths.storageJson("kitchen.yaml"), "utf8");

    const job = await o.queue.enqueue({ configuration: "", job_type: "clean_all" });
    await o.done(job.job_id);
    expect(o.job(job.job_id)).toMatchObject({ status: "completed", exit_code: 0, source: "local" });
    for (const gone of ["build", "idedata", "pio_components"]) await expect(stat(path.join(dataDir, gone))).rejects.toThrow(/ENOENT/);
    expect(await readFile(o.paths.storageJson("kitchen.yaml"), "utf8")).toBe(storage);
    expect((await stat(o.paths.peerLinkKeyFile)).isFile()).toBe(true);
    expect((await stat(o.paths.jobsFile)).isFile()).toBe(true);
    expect((await stat(path.join(o.paths.remoteBuildsDir, "d".repeat(64)))).isDirectory()).toBe(true);
    // A second one finds nothing to delete and still succeeds.
    const again = await o.queue.enqueue({ configuration: "", job_type: "clean_all" });
    await o.done(again.job_id);
    expect(o.job(again.job_id).status).toBe("completed");
    await o.stop();
  });

  it("refuses a clean_all that names a device or a folder outside its scope", async () => {
    const o = await offloaderBuilder("always");
    await expect(o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "clean_all" })).resolves.toBeDefined();
    const job = o.queue.list().find((j) => j.job_type === "clean_all")!;
    await o.done(job.job_id);
    expect(o.job(job.job_id)).toMatchObject({ status: "failed" });
    expect(o.job(job.job_id).error).toContain('invalid clean_all scope "kitchen.yaml"');
    await o.stop();
  });
});
