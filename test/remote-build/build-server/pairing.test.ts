/**
 * Two builders on loopback, paired through the panel API, then a compile
 * sent through the offloader API that runs on the build server.
 */
import { execFileSync } from "node:child_process";
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { EventMap } from "../../../src/events.ts";
import { readArtifacts } from "../../../src/remote-build/archives/artifacts.ts";
import { ApiClient } from "../../helpers/api-client.ts";
import { STAND_IN, startBuilder } from "../../helpers/builder.ts";
import { watchJob } from "../../helpers/remote-job.ts";
import { tempDir, waitFor } from "../../helpers/tmp.ts";

process.env.ESPHOME_STANDIN_COMPILE_SECONDS = "0.3";
process.env.ESPHOME_STANDIN_UPLOAD_SECONDS = "0";
process.env.ESPHOME_STANDIN_FAIL = "";

async function pairedBuilders() {
  const a = await startBuilder({ label: "Offloader A" });
  const b = await startBuilder({ label: "Build server B" });
  const apiA = await ApiClient.connect(a.port);
  const apiB = await ApiClient.connect(b.port);
  const bPort = b.builder.remote.receiver.port;
  if (bPort === null) throw new Error("B's receiver is off");
  const idB = await apiB.call<{ pin_sha256: string; fingerprint_emoji: string[] }>("remote_build/get_identity");

  await apiB.call("remote_build/set_pairing_window", { open: true });
  const preview = await apiA.call<{ pin_sha256: string; fingerprint_emoji: string[]; label: string }>("remote_build/preview_pair", { hostname: "127.0.0.1", port: bPort });
  expect(preview.pin_sha256).toBe(idB.pin_sha256);
  expect(preview.fingerprint_emoji).toEqual(idB.fingerprint_emoji);
  expect(preview.label).toBe("Build server B");

  const bEvents = apiB.stream("subscribe_events");
  await bEvents.until((f) => f.event === "initial_state");
  const requested = await apiA.call<{ status: string }>("remote_build/request_pair", { hostname: "127.0.0.1", port: bPort, pin_sha256: preview.pin_sha256, label: "B" });
  expect(requested.status).toBe("pending");
  const request = await bEvents.until((f) => f.event === "remote_build_pair_request_received");
  const req = request.data as EventMap["remote_build_pair_request_received"];
  const idA = await apiA.call<{ pin_sha256: string; dashboard_id: string }>("remote_build/get_identity");
  expect(req).toMatchObject({ dashboard_id: idA.dashboard_id, pin_sha256: idA.pin_sha256, label: "Offloader A", peer_ip: "127.0.0.1" });
  await apiB.call("remote_build/approve_peer", { dashboard_id: req.dashboard_id });
  await waitFor(() => a.builder.remote.offloader.session(idB.pin_sha256) !== undefined, 10_000, "A's session with B");
  return { a, b, apiA, apiB, idA, idB, bPort };
}

describe("pairing two builders through the panel API", () => {
  it("pairs, persists on both sides and connects", async () => {
    const { a, b, apiA, apiB, idA, idB } = await pairedBuilders();
    const offloader = await apiA.call<{ pairings: { pin_sha256: string; status: string; connected: boolean; label: string }[] }>("remote_build/get_offloader_settings");
    expect(offloader.pairings).toEqual([expect.objectContaining({ pin_sha256: idB.pin_sha256, status: "approved", connected: true, label: "B" })]);
    await waitFor(async () => {
      const s = await apiB.call<{ peers: { dashboard_id: string; connected: boolean; status: string }[] }>("remote_build/get_settings");
      return s.peers.some((p) => p.dashboard_id === idA.dashboard_id && p.connected && p.status === "approved");
    }, 5000, "B to see A connected");
    await a.builder.remote.offloader.stop();
    await b.builder.remote.receiver.flush();
    for (const file of [a.builder.paths.offloaderFile, b.builder.paths.receiverFile, a.builder.paths.peerLinkKeyFile]) {
      expect((await stat(file)).mode & 0o777).toBe(0o600);
    }
    expect(await readFile(a.builder.paths.offloaderFile, "utf8")).toContain(idB.pin_sha256);
    expect(await readFile(b.builder.paths.receiverFile, "utf8")).toContain(idA.pin_sha256);
  });

  it("compiles on the build server, streams its output back and returns the artifacts", async () => {
    const { a, b, idB } = await pairedBuilders();
    const session = a.builder.remote.offloader.session(idB.pin_sha256)!;
    await waitFor(() => session.queueStatus !== null, 5000, "queue status");
    expect(session.queueStatus).toEqual({ idle: true, running: false, queue_depth: 0 });
    const out = path.join(await tempDir(), "kitchen.tar.gz");
    execFileSync(STAND_IN, ["bundle", path.join(a.dir, "kitchen.yaml"), "-o", out], { stdio: "ignore" });
    const bundle = await readFile(out);
    const job = watchJob(session, "aaaaaaaaaaaa");
    const ack = await session.submitJob("aaaaaaaaaaaa", "compile", "kitchen.yaml", bundle, "kitchen");
    expect(ack).toEqual({ accepted: true });
    await waitFor(() => job.statuses().includes("completed") || job.statuses().includes("failed"), 20_000, "the remote compile");
    expect(job.statuses()).toEqual(["queued", "running", "completed"]); // `queued` first, as upstream
    expect(job.lines.join("")).toContain("Successfully compiled program.");
    const onB = b.builder.queue.list().find((j) => j.remote_job_id === "aaaaaaaaaaaa");
    expect(onB).toMatchObject({ remote_peer: expect.any(String) as unknown, remote_peer_label: "Offloader A", job_type: "compile", status: "completed" });
    const tarball = await session.downloadArtifacts("aaaaaaaaaaaa");
    const artifacts = await readArtifacts(tarball);
    const jobPaths = b.builder.paths;
    const yaml = jobPaths.jobYaml(onB!);
    const built = await readFile(path.join(jobPaths.jobDataDir(onB!), "build", "kitchen", ".pioenvs", "kitchen", "firmware.bin"));
    expect(yaml).toContain(".remote_builds");
    expect(Buffer.compare(artifacts.firmware, built)).toBe(0);
  });
});


describe("managing a pairing through the panel API", () => {
  it("edits the endpoint only after the builder there proves the same key", async () => {
    const { apiA, idB, bPort } = await pairedBuilders();
    const other = await startBuilder({ label: "Someone else" });
    const otherPort = other.builder.remote.receiver.port!;
    const refused = await apiA.request("remote_build/edit_pairing_endpoint", { pin_sha256: idB.pin_sha256, hostname: "127.0.0.1", port: otherPort });
    expect(refused.error_code).toBe("invalid_args");
    expect(refused.details).toMatch(/different key.*not changed/);
    let settings = await apiA.call<{ pairings: { receiver_port: number }[] }>("remote_build/get_offloader_settings");
    expect(settings.pairings[0]?.receiver_port).toBe(bPort);
    const moved = await apiA.call<{ receiver_hostname: string }>("remote_build/edit_pairing_endpoint", { pin_sha256: idB.pin_sha256, hostname: "localhost", port: bPort });
    expect(moved.receiver_hostname).toBe("localhost");
    settings = await apiA.call("remote_build/get_offloader_settings");
    expect(settings.pairings[0]?.receiver_port).toBe(bPort);
  });

  it("switches a pairing off and back on, and unpairs", async () => {
    const { a, apiA, idB } = await pairedBuilders();
    const off = await apiA.call<{ enabled: boolean }>("remote_build/set_pairing_enabled", { pin_sha256: idB.pin_sha256, enabled: false });
    expect(off.enabled).toBe(false);
    const job = await apiA.call<{ job_id: string }>("firmware/compile", { configuration: "kitchen.yaml" });
    await waitFor(() => ["completed", "failed"].includes(a.builder.queue.get(job.job_id)?.status ?? ""), 20_000, "the compile");
    expect(a.builder.queue.get(job.job_id)?.source).toBe("local");
    await apiA.call("remote_build/set_offloader_settings", { remote_builds_enabled: false });
    expect((await apiA.call<{ remote_builds_enabled: boolean }>("remote_build/get_offloader_settings")).remote_builds_enabled).toBe(false);
    expect(await apiA.call("remote_build/unpair", { pin_sha256: idB.pin_sha256 })).toEqual({ removed: true });
    expect((await apiA.call<{ pairings: unknown[] }>("remote_build/get_offloader_settings")).pairings).toEqual([]);
    expect((await apiA.request("remote_build/unpair", { pin_sha256: idB.pin_sha256 })).error_code).toBe("not_found");
  });

  it.each([
    ["a serial path as hostname", "remote_build/preview_pair", { hostname: "/dev/ttyUSB0", port: 6055 }],
    ["a port out of range", "remote_build/preview_pair", { hostname: "127.0.0.1", port: 70000 }],
    ["a short pin", "remote_build/request_pair", { hostname: "127.0.0.1", port: 6055, pin_sha256: "abc" }],
    ["a bad dashboard_id", "remote_build/approve_peer", { dashboard_id: "../x" }],
    ["a string for a boolean", "remote_build/set_settings", { enabled: "false" }],
  ])("refuses %s with invalid_args", async (_what, command, args) => {
    const a = await startBuilder();
    const api = await ApiClient.connect(a.port);
    expect((await api.request(command, args)).error_code).toBe("invalid_args");
  });

  it("answers a preview of a port where nothing listens with unavailable", async () => {
    const a = await startBuilder();
    const api = await ApiClient.connect(a.port);
    const reply = await api.request("remote_build/preview_pair", { hostname: "127.0.0.1", port: 1 });
    expect(reply.error_code).toBe("unavailable");
    expect(reply.details).toMatch(/cannot reach 127\.0\.0\.1:1/);
  });
});
