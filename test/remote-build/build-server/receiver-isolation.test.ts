/**
 * Peer folder isolation on a build server (a real builder process): a peer's
 * bundles, build caches and jobs are keyed by its pin, never by the
 * dashboard_id it chooses. Two approved offloaders that choose alike
 * dashboard_ids (the same first 8 characters, which mDNS shows; or the very
 * same id, approved one after the other) never share a folder and cannot
 * cancel, supersede or download each other's jobs.
 */
import { mkdir, readdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { FirmwareJob } from "../../../src/api/wire.ts";
import { EventBus } from "../../../src/events.ts";
import { resolvePaths } from "../../../src/paths.ts";
import { readArtifacts } from "../../../src/remote-build/archives/artifacts.ts";
import { IdentityStore } from "../../../src/remote-build/transport/identity.ts";
import { Offloader } from "../../../src/remote-build/offloader/offloader.ts";
import { ApiClient } from "../../helpers/api-client.ts";
import { STAND_IN, configDir, spawnBuilder } from "../../helpers/builder.ts";
import { tempDir, waitFor } from "../../helpers/tmp.ts";
import { standInBundle } from "../../helpers/pairing.ts";
import { watchJob } from "../../helpers/remote-job.ts";

async function startBuildServer(): Promise<{ api: ApiClient; dir: string; peerPort: number }> {
  const dir = await configDir();
  const proc = await spawnBuilder(
    ["--config-dir", dir, "--port", "0", "--peer-link-port", "0", "--peer-link-host", "127.0.0.1", "--esphome", STAND_IN, "--no-mdns", "--log-level", "warning"],
    { ESPHOME_STANDIN_COMPILE_SECONDS: "2.5", ESPHOME_STANDIN_FAIL: "" },
  );
  const listening = JSON.parse(proc.stdout.join("").split("\n").find((l) => l.includes("listening")) ?? "{}") as { peer_link_port: number };
  return { api: await ApiClient.connect(proc.port), dir, peerPort: listening.peer_link_port };
}

/** An offloader whose dashboard_id is chosen (as a hostile peer would choose it). */
async function offloaderWithId(dashboardId: string) {
  const paths = resolvePaths({ configDir: await tempDir() });
  await mkdir(path.dirname(paths.identityFile), { recursive: true });
  await writeFile(paths.identityFile, JSON.stringify({ dashboard_id: dashboardId }));
  const bus = new EventBus();
  const identity = new IdentityStore({ keyFile: paths.peerLinkKeyFile, idFile: paths.identityFile });
  const offloader = new Offloader({ bus, paths, identity, label: () => dashboardId.slice(0, 12), timings: { backoffInitialMs: 50, backoffMaxMs: 200, stepTimeoutMs: 2000 } });
  await offloader.start();
  expect((await identity.load()).dashboard_id).toBe(dashboardId);
  return { offloader, identity, pin: (await identity.load()).pin_sha256 };
}

type TestOffloader = Awaited<ReturnType<typeof offloaderWithId>>;

/** Pairs through the build server's API; returns the build server's pin. */
async function pair(server: Awaited<ReturnType<typeof startBuildServer>>, o: TestOffloader): Promise<string> {
  await server.api.call("remote_build/set_pairing_window", { open: true });
  const preview = await o.offloader.previewPair("127.0.0.1", server.peerPort);
  await o.offloader.requestPair("127.0.0.1", server.peerPort, preview.pin_sha256, "Build box");
  const id = (await o.identity.load()).dashboard_id;
  await server.api.call("remote_build/approve_peer", { dashboard_id: id });
  await waitFor(() => o.offloader.session(preview.pin_sha256) !== undefined, 10_000, "the session");
  return preview.pin_sha256;
}

async function jobsOn(server: Awaited<ReturnType<typeof startBuildServer>>): Promise<FirmwareJob[]> {
  return server.api.call<FirmwareJob[]>("firmware/get_jobs");
}

describe("two approved peers with alike dashboard_ids", () => {
  it("sharing the first 8 characters: separate folders, and neither can cancel, supersede or download the other's build", { timeout: 60_000 }, async () => {
    const server = await startBuildServer();
    const a = await offloaderWithId(`SAMEPREF${"a".repeat(24)}`);
    const b = await offloaderWithId(`SAMEPREF${"b".repeat(24)}`);
    const serverPin = await pair(server, a);
    await pair(server, b);
    const sa = a.offloader.session(serverPin)!;
    const sb = b.offloader.session(serverPin)!;
    const bundle = await standInBundle(server.dir);

    // Same configuration name and the same job id from both peers.
    const aJob = watchJob(sa, "job000000001");
    const bJob = watchJob(sb, "job000000001");
    expect(await sa.submitJob("job000000001", "compile", "kitchen.yaml", bundle, "kitchen")).toEqual({ accepted: true });
    await waitFor(() => aJob.statuses().includes("running"), 10_000, "A's build to run");
    expect(await sb.submitJob("job000000001", "compile", "kitchen.yaml", bundle, "kitchen")).toEqual({ accepted: true });
    await waitFor(async () => (await jobsOn(server)).some((j) => j.remote_job_id === "job000000001" && j.remote_peer === b.pin), 10_000, "B's job to be queued");
    // B cancels "job000000001" and asks for its artifacts: that is only ever B's own job.
    expect(sb.cancelJob("job000000001")).toBe(true);
    await waitFor(() => bJob.statuses().includes("cancelled"), 10_000, "B's own job to be cancelled");
    await waitFor(() => aJob.statuses().includes("completed"), 20_000, "A's build to complete");
    expect(aJob.statuses()).not.toContain("cancelled");
    await expect(sb.downloadArtifacts("job000000001")).rejects.toMatchObject({ code: "job_not_completed" });
    const artifacts = await readArtifacts(await sa.downloadArtifacts("job000000001"));
    expect(artifacts.storage).toMatchObject({ name: "kitchen" });

    // Each peer has its own folder, named by its pin.
    const remoteBuilds = path.join(server.dir, ".esphome", ".remote_builds");
    expect((await readdir(remoteBuilds)).sort()).toEqual([a.pin, b.pin].sort());
    const jobs = (await jobsOn(server)).filter((j) => j.remote_job_id === "job000000001");
    expect(jobs.map((j) => [j.remote_peer, j.configuration.split("/")[0], j.status]).sort()).toEqual(
      [
        [a.pin, a.pin, "completed"],
        [b.pin, b.pin, "cancelled"],
      ].sort(),
    );
    await a.offloader.stop();
    await b.offloader.stop();
    server.api.close();
  });

  it("the very same id, approved one after the other: the later peer cannot touch the earlier one's running build", { timeout: 60_000 }, async () => {
    const server = await startBuildServer();
    const id = `TAKENid_${"x".repeat(24)}`;
    const a = await offloaderWithId(id);
    const serverPin = await pair(server, a);
    const sa = a.offloader.session(serverPin)!;
    const bundle = await standInBundle(server.dir);
    const aJob = watchJob(sa, "job00000000a");
    expect(await sa.submitJob("job00000000a", "compile", "kitchen.yaml", bundle, "kitchen")).toEqual({ accepted: true });
    await waitFor(() => aJob.statuses().includes("running"), 10_000, "A's build to run");

    // While A is still approved, B cannot take its id.
    const b = await offloaderWithId(id);
    await server.api.call("remote_build/set_pairing_window", { open: true });
    await expect(b.offloader.requestPair("127.0.0.1", server.peerPort, serverPin)).rejects.toThrow(/pin_mismatch/);
    // A is removed mid-build; B is then approved under the same id.
    await server.api.call("remote_build/remove_peer", { dashboard_id: id });
    await pair(server, b);
    const sb = b.offloader.session(serverPin)!;
    // Whatever B's session might hear of A's job id (nothing, below).
    const aJobOnB = watchJob(sb, "job00000000a");
    const bJob = watchJob(sb, "job00000000b");
    expect(sb.cancelJob("job00000000a")).toBe(true);
    await expect(sb.downloadArtifacts("job00000000a")).rejects.toMatchObject({ code: "unknown_job" });
    // B's build of the same configuration lands in B's folder and leaves A's build alone.
    expect(await sb.submitJob("job00000000b", "compile", "kitchen.yaml", bundle, "kitchen")).toEqual({ accepted: true });
    await waitFor(async () => (await jobsOn(server)).some((j) => j.remote_job_id === "job00000000a" && j.status === "completed"), 20_000, "A's build to complete");
    await waitFor(() => bJob.statuses().includes("completed"), 20_000, "B's build to complete");
    const jobs = await jobsOn(server);
    expect(jobs.find((j) => j.remote_job_id === "job00000000a")).toMatchObject({ remote_peer: a.pin, status: "completed" });
    expect(jobs.find((j) => j.remote_job_id === "job00000000b")).toMatchObject({ remote_peer: b.pin, status: "completed" });
    expect(aJobOnB.states).toEqual([]); // B never heard of A's job
    expect(aJobOnB.lines).toEqual([]);
    await a.offloader.stop();
    await b.offloader.stop();
    server.api.close();
  });
});
