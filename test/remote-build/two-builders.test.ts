/**
 * A build server running as a real builder process, and an offloader in the
 * test process (the API the install runner uses), on loopback.
 */
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { EventBus } from "../../src/events.ts";
import { resolvePaths } from "../../src/paths.ts";
import { readArtifacts } from "../../src/remote-build/archives/artifacts.ts";
import { IdentityStore } from "../../src/remote-build/transport/identity.ts";
import { Offloader } from "../../src/remote-build/offloader/offloader.ts";
import { ApiClient } from "../helpers/api-client.ts";
import { STAND_IN, configDir, spawnBuilder, type BuilderProcess } from "../helpers/builder.ts";
import { tempDir, waitFor } from "../helpers/tmp.ts";
import { standInBundle } from "../helpers/pairing.ts";
import { watchJob } from "../helpers/remote-job.ts";
import { freePort } from "../helpers/secure-pair.ts";

interface Receiver {
  proc: BuilderProcess;
  api: ApiClient;
  dir: string;
  peerPort: number;
  record: string;
}

async function startReceiver(dir?: string, peerPort?: number, env: Record<string, string> = {}): Promise<Receiver> {
  const config = dir ?? (await configDir());
  const port = peerPort ?? (await freePort());
  const record = path.join(config, "record.jsonl");
  const proc = await spawnBuilder(
    ["--config-dir", config, "--port", "0", "--peer-link-port", String(port), "--peer-link-host", "127.0.0.1", "--esphome", STAND_IN, "--no-mdns", "--label", "Build box", "--log-level", "warning"],
    { ESPHOME_STANDIN_COMPILE_SECONDS: "0.3", ESPHOME_STANDIN_FAIL: "", ESPHOME_STANDIN_RECORD: record, ...env },
  );
  const listening = JSON.parse(proc.stdout.join("").split("\n").find((l) => l.includes("listening")) ?? "{}") as { peer_link_port: number };
  expect(listening.peer_link_port).toBe(port);
  const api = await ApiClient.connect(proc.port);
  return { proc, api, dir: config, peerPort: port, record };
}

async function startOffloader(dir?: string) {
  const paths = resolvePaths({ configDir: dir ?? (await tempDir()) });
  const bus = new EventBus();
  const events: { name: string; payload: unknown }[] = [];
  bus.onAny((name, payload) => events.push({ name, payload }));
  const identity = new IdentityStore({ keyFile: paths.peerLinkKeyFile, idFile: paths.identityFile });
  const offloader = new Offloader({
    bus,
    paths,
    identity,
    label: () => "Laptop",
    timings: { backoffInitialMs: 50, backoffMaxMs: 200, stepTimeoutMs: 2000 },
  });
  await offloader.start();
  return { offloader, bus, events, paths, identity };
}

async function pair(r: Receiver, o: Awaited<ReturnType<typeof startOffloader>>): Promise<string> {
  await r.api.call("remote_build/set_pairing_window", { open: true });
  const preview = await o.offloader.previewPair("127.0.0.1", r.peerPort);
  const pending = await o.offloader.requestPair("127.0.0.1", r.peerPort, preview.pin_sha256, "Build box");
  expect(pending.status).toBe("pending");
  const settings = await r.api.call<{ peers: { dashboard_id: string; status: string }[] }>("remote_build/get_settings");
  const id = (await o.identity.load()).dashboard_id;
  expect(settings.peers).toEqual([expect.objectContaining({ dashboard_id: id, status: "pending" })]);
  await r.api.call("remote_build/approve_peer", { dashboard_id: id });
  await waitFor(() => o.offloader.session(preview.pin_sha256) !== undefined, 10_000, "the session");
  return preview.pin_sha256;
}

/** Stand-in compiles running for a peer (their YAML sits under .remote_builds). */
async function remoteCompiles(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    if (cmdline.includes("esphome-stand-in") && cmdline.includes("compile") && cmdline.includes(".remote_builds") && cmdline.includes(dir)) pids.push(Number(entry));
  }
  return pids;
}

describe("a build server process and an offloader", () => {
  it("compiles there, streams output back, cancels there, and returns matching artifacts", async () => {
    const r = await startReceiver(undefined, undefined, { ESPHOME_STANDIN_COMPILE_SECONDS: "1.5" });
    const o = await startOffloader();
    const pin = await pair(r, o);
    const session = o.offloader.session(pin)!;
    const bundle = await standInBundle(r.dir);

    const first = watchJob(session, "job000000001");
    const second = watchJob(session, "job000000002");
    expect(await session.submitJob("job000000001", "compile", "kitchen.yaml", bundle, "kitchen")).toEqual({ accepted: true });
    await waitFor(() => first.statuses().includes("completed"), 20_000, "the compile");
    expect(first.lines.join("")).toContain("Successfully compiled program.");
    const artifacts = await readArtifacts(await session.downloadArtifacts("job000000001"));
    expect(artifacts.firmware.length).toBe(65536);
    expect(artifacts.storage).toMatchObject({ name: "kitchen" });
    expect([...artifacts.files.keys()]).toContain(".pioenvs/kitchen/firmware.elf");
    // An install asks for the app image only (StorageJSON's image always comes).
    const slim = await readArtifacts(await session.downloadArtifacts("job000000001", []));
    expect([...slim.files.keys()]).toEqual(["storage.json", ".pioenvs/kitchen/firmware.bin"]);
    expect(Buffer.compare(slim.firmware, artifacts.firmware)).toBe(0);

    // Cancel mid-build reaches the build server's process.
    expect(await session.submitJob("job000000002", "compile", "kitchen.yaml", bundle, "kitchen")).toEqual({ accepted: true });
    await waitFor(() => second.statuses().includes("running"), 10_000, "the second compile to start");
    await waitFor(async () => (await remoteCompiles(r.dir)).length > 0, 5000, "the compile process on the build server");
    expect(session.cancelJob("job000000002")).toBe(true);
    await waitFor(() => second.statuses().includes("cancelled"), 10_000, "the cancel");
    expect(await remoteCompiles(r.dir)).toEqual([]);
    await o.offloader.stop();
  });

  it("builds a peer's YAML without the build server's secrets or its owner's variables", async () => {
    const r = await startReceiver(undefined, undefined, {
      ESPHOME_BUILDER_HA_URL: "http://127.0.0.1:9",
      ESPHOME_BUILDER_HA_TOKEN: "ha-token",
      HASSIO_TOKEN: "old-sv-token",
      OWNER_SECRET: "the owner's",
    });
    const o = await startOffloader();
    const pin = await pair(r, o);
    const session = o.offloader.session(pin)!;
    const job = watchJob(session, "job000000009");
    expect(await session.submitJob("job000000009", "compile", "kitchen.yaml", await standInBundle(r.dir), "kitchen")).toEqual({ accepted: true });
    await waitFor(() => job.statuses().includes("completed"), 20_000, "the compile");
    const runs = (await readFile(r.record, "utf8")).trim().split("\n").map((l) => JSON.parse(l) as { command: string; configuration: string; env_names: string[] });
    const compile = runs.find((run) => run.command === "compile" && run.configuration.includes(".remote_builds"));
    expect(compile?.env_names).toContain("PATH");
    expect(compile?.env_names).toContain("ESPHOME_DATA_DIR");
    for (const name of ["ESPHOME_BUILDER_HA_TOKEN", "ESPHOME_BUILDER_HA_URL", "HASSIO_TOKEN", "OWNER_SECRET"]) expect(compile?.env_names).not.toContain(name);
    await o.offloader.stop();
  });

  it("reports a killed build server within seconds and reconnects when it is back", async () => {
    const r = await startReceiver();
    const o = await startOffloader();
    const pin = await pair(r, o);
    const session = o.offloader.session(pin)!;
    const job = watchJob(session, "job000000003");
    const pendingAck = session.submitJob("job000000003", "compile", "kitchen.yaml", await standInBundle(r.dir), "kitchen");
    await waitFor(() => job.states.length > 0, 10_000, "the build to start");
    const killedAt = Date.now();
    r.proc.child.kill("SIGKILL");
    await waitFor(() => o.events.some((e) => e.name === "offloader_peer_link_closed"), 10_000, "the session loss");
    expect(Date.now() - killedAt).toBeLessThan(5000); // "within seconds", with room for a loaded CI machine
    await expect(pendingAck).resolves.toEqual({ accepted: true }); // acknowledged before the kill
    expect(o.offloader.session(pin)).toBeUndefined();

    const again = await startReceiver(r.dir, r.peerPort);
    await waitFor(() => o.offloader.session(pin) !== undefined, 10_000, "the reconnect");
    expect(o.events.filter((e) => e.name === "offloader_peer_link_opened")).toHaveLength(2);
    again.api.close();
    await o.offloader.stop();
  });

  it("refuses a build server whose key changed, alerts, and does not reconnect", async () => {
    const r = await startReceiver();
    const o = await startOffloader();
    const pin = await pair(r, o);
    const rotated = await r.api.call<{ pin_sha256: string }>("remote_build/rotate_identity");
    expect(rotated.pin_sha256).not.toBe(pin);
    await waitFor(() => o.offloader.alerts().length > 0, 10_000, "the alert");
    expect(o.offloader.alerts()[0]).toMatchObject({ kind: "pin_mismatch", pin_sha256: pin, observed_pin: rotated.pin_sha256 });
    const opened = o.events.filter((e) => e.name === "offloader_peer_link_opened").length;
    await new Promise((res) => setTimeout(res, 600)); // several backoff periods
    expect(o.events.filter((e) => e.name === "offloader_peer_link_opened").length).toBe(opened);
    expect(o.offloader.session(pin)).toBeUndefined();
    await o.offloader.stop();
  });

  it("forgets a pending request when the build server restarts", async () => {
    const r = await startReceiver();
    const o = await startOffloader();
    await r.api.call("remote_build/set_pairing_window", { open: true });
    const preview = await o.offloader.previewPair("127.0.0.1", r.peerPort);
    await o.offloader.requestPair("127.0.0.1", r.peerPort, preview.pin_sha256);
    r.api.close();
    r.proc.child.kill("SIGTERM");
    await r.proc.exited;
    const again = await startReceiver(r.dir, r.peerPort);
    const settings = await again.api.call<{ peers: unknown[] }>("remote_build/get_settings");
    expect(settings.peers).toEqual([]);
    // The offloader's long poll learns the request is gone.
    await waitFor(() => o.events.some((e) => e.name === "offloader_pairing_removed"), 10_000, "the removal");
    expect(o.offloader.pairings()).toEqual([]);
    await o.offloader.stop();
  });

  it("rejects a peer_link from an offloader that was never approved", async () => {
    const r = await startReceiver();
    const o = await startOffloader();
    const { initiate } = await import("../../src/remote-build/transport/handshake.ts");
    const id = await o.identity.load();
    const { channel, response } = await initiate({
      host: "127.0.0.1",
      port: r.peerPort,
      staticPrivateKey: id.privateKey,
      intent: "peer_link",
      payload: { dashboard_id: id.dashboard_id },
    });
    channel.close("done");
    expect(response).toMatchObject({ intent_response: "rejected", reason: "no_approved_peer" });
    await o.offloader.stop();
  });
});

