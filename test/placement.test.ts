/**
 * Where compiles run, across real builder processes paired over loopback:
 * `--local-builds never` keeps a compile waiting until a build server
 * connects, and a compile whose build server process is killed mid-build is
 * dispatched again to another build server.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { FirmwareJob, InitialState } from "../src/api/wire.ts";
import { ApiClient } from "./helpers/api-client.ts";
import { STAND_IN, configDir, spawnBuilder, startBuilder } from "./helpers/builder.ts";
import { pairBuilders } from "./helpers/pairing.ts";
import { waitFor } from "./helpers/tmp.ts";

async function commands(record: string): Promise<string[]> {
  const text = await readFile(record, "utf8").catch(() => "");
  return text.split("\n").filter((l) => l !== "").map((l) => (JSON.parse(l) as { command: string }).command).filter((c) => c !== "version");
}

async function builder(name: string, extra: string[] = [], env: Record<string, string> = {}) {
  const dir = await configDir({ kitchen: "" });
  const record = path.join(dir, "record.jsonl");
  const proc = await spawnBuilder(
    ["--config-dir", dir, "--port", "0", "--peer-link-port", "0", "--peer-link-host", "127.0.0.1", "--esphome", STAND_IN, "--no-mdns", "--label", name, "--log-level", "warning", ...extra],
    { ESPHOME_STANDIN_COMPILE_SECONDS: "0.5", ESPHOME_STANDIN_UPLOAD_SECONDS: "0.1", ESPHOME_STANDIN_FAIL: "", ESPHOME_STANDIN_HOST: name, ESPHOME_STANDIN_RECORD: record, ...env },
  );
  const line = proc.stdout.join("").split("\n").find((l) => l.includes("listening")) ?? "{}";
  const peerPort = (JSON.parse(line) as { peer_link_port: number }).peer_link_port;
  const api = await ApiClient.connect(proc.port);
  return { proc, api, dir, record, peerPort, name };
}

describe("local_builds: never, across processes", () => {
  it("keeps an install waiting for a build server, says so, and runs it there once one is paired", async () => {
    const a = await builder("Pi", ["--local-builds", "never"]);
    const sub = a.api.stream("subscribe_events");
    const initial = (await sub.until((f) => f.event === "initial_state")).data as InitialState;
    expect(initial.remote_build.local_builds).toBe("never");

    const job = await a.api.call<FirmwareJob>("firmware/install", { configuration: "kitchen.yaml", port: "OTA" });
    await sub.until((f) => f.event === "job_updated" && (f.data as { job: FirmwareJob }).job.job_id === job.job_id);
    const waiting = await a.api.call<FirmwareJob>("firmware/get_job", { job_id: job.job_id });
    expect(waiting).toMatchObject({ status: "queued", waiting: { reason: "build_server" } });

    const b = await builder("Desktop");
    await pairBuilders(a, b, { idle: false }); // B may be busy with A's job by the time the helper looks
    const follow = a.api.stream("firmware/follow_job", { job_id: job.job_id });
    const result = await follow.until((f) => f.event === "result", 30_000);
    expect(result.data).toEqual({ status: "completed", exit_code: 0, error: null });
    const final = await a.api.call<FirmwareJob>("firmware/get_job", { job_id: job.job_id });
    expect(final).toMatchObject({ source: "remote", source_label: "Desktop" });
    expect(final.waiting).toBeUndefined();
    expect(await commands(a.record)).toEqual(["bundle", "upload"]);
    expect(await commands(b.record)).toEqual(["compile"]);

    // The panel's setting: changed for everyone, and kept.
    await a.api.call("remote_build/set_local_builds", { local_builds: "fallback" });
    await sub.until((f) => f.event === "local_builds_changed" && (f.data as { local_builds: string }).local_builds === "fallback");
    await expect(a.api.call("remote_build/set_local_builds", { local_builds: "sometimes" })).rejects.toThrow(/local_builds/);
    a.api.close();
    b.api.close();
  }, 60_000);
});

describe("a build server process killed mid-build", () => {
  it("loses the session, and the compile is dispatched again to the other build server", async () => {
    const a = await builder("Pi", ["--local-builds", "never"]);
    const desktop = await builder("Desktop", [], { ESPHOME_STANDIN_COMPILE_SECONDS: "6" });
    const laptop = await builder("Laptop");
    await pairBuilders(a, desktop);
    await pairBuilders(a, laptop);

    const job = await a.api.call<FirmwareJob>("firmware/install", { configuration: "kitchen.yaml", port: "OTA" });
    await waitFor(async () => (await desktop.api.call<FirmwareJob[]>("firmware/get_jobs", {})).some((j) => j.status === "running"), 10_000, "Desktop compiling");
    desktop.api.close();
    desktop.proc.child.kill("SIGKILL");

    const follow = a.api.stream("firmware/follow_job", { job_id: job.job_id });
    const result = await follow.until((f) => f.event === "result", 30_000);
    expect(result.data).toEqual({ status: "completed", exit_code: 0, error: null });
    const final = await a.api.call<FirmwareJob>("firmware/get_job", { job_id: job.job_id });
    expect(final).toMatchObject({ source: "remote", source_label: "Laptop" });
    const output = final.output.join("");
    expect(output).toContain("*** building on Desktop ***");
    expect(output).toMatch(/\*\*\* remote build session closed \(/);
    expect(output).toContain("*** build server Desktop was lost mid-build (1x); dispatching the compile again ***");
    expect(output).toContain("*** building on Laptop ***");
    // Nothing compiled on this machine; the bundle went out twice, the firmware came from Laptop.
    expect(await commands(a.record)).toEqual(["bundle", "bundle", "upload"]);
    expect(await commands(laptop.record)).toEqual(["compile"]);
    a.api.close();
    laptop.api.close();
  }, 60_000);
});

describe("placement commands refuse bad input, naming the fix, and change nothing", () => {
  it("set_local_builds, clean_all and reset_build_env", async () => {
    const { builder, port } = await startBuilder();
    const api = await ApiClient.connect(port);
    await expect(api.call("remote_build/set_local_builds", { local_builds: "sometimes" })).rejects.toThrow(/^invalid_args/);
    await expect(api.call("remote_build/set_local_builds", {})).rejects.toThrow(/^invalid_args/);
    await expect(api.call("remote_build/set_local_builds", { local_builds: "never", extra: 1 })).rejects.toThrow(/^invalid_args/);
    expect(builder.remote.placement.localBuilds).toBe("always");
    await expect(api.call("firmware/clean_all", { configuration: "kitchen.yaml" })).rejects.toThrow(/^invalid_args/);
    await expect(api.call("remote_build/reset_build_env", { pin_sha256: "not a pin" })).rejects.toThrow(/^invalid_args/);
    await expect(api.call("remote_build/reset_build_env", { pin_sha256: "ab".repeat(32) })).rejects.toThrow(/^not_found: No pairing with/);
    expect(builder.queue.list()).toEqual([]);

    // A pairing that is not connected: unavailable, saying when it will work.
    const server = await startBuilder({ label: "Desktop" });
    server.builder.remote.receiver.setPairingWindow("t", true);
    const peerPort = server.builder.remote.receiver.port!;
    const preview = await builder.remote.offloader.previewPair("127.0.0.1", peerPort);
    await builder.remote.offloader.requestPair("127.0.0.1", peerPort, preview.pin_sha256);
    server.builder.remote.receiver.approve(builder.remote.identityView().dashboard_id);
    await waitFor(() => builder.remote.offloader.session(preview.pin_sha256) !== undefined, 10_000, "connected");
    await server.builder.remote.receiver.setEnabled(false);
    await waitFor(() => builder.remote.offloader.session(preview.pin_sha256) === undefined, 10_000, "disconnected");
    await expect(api.call("remote_build/reset_build_env", { pin_sha256: preview.pin_sha256 })).rejects.toThrow(/^unavailable: Desktop is not connected; reset its build environment once it is/);
    expect(builder.queue.list()).toEqual([]);
    api.close();
  }, 30_000);
});
