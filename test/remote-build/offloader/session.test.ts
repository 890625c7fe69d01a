/**
 * Session lifecycle with short timings: heartbeats, reconnect backoff,
 * supersede, and the pairing window.
 */
import net from "node:net";
import { describe, expect, it } from "vitest";
import { EventBus, type EventMap } from "../../../src/events.ts";
import { FirmwareQueue } from "../../../src/firmware/queue.ts";
import { resolvePaths } from "../../../src/paths.ts";
import { IdentityStore } from "../../../src/remote-build/transport/identity.ts";
import { Offloader, type OffloaderTimings } from "../../../src/remote-build/offloader/offloader.ts";
import { Receiver, type ReceiverTimings } from "../../../src/remote-build/build-server/receiver.ts";
import { ScriptedRunner } from "../../helpers/scripted-runner.ts";
import { startProxy } from "../../helpers/proxy.ts";
import { tempDir, waitFor } from "../../helpers/tmp.ts";

type Recorded = { name: keyof EventMap; payload: unknown; at: number };

async function receiver(timings: Partial<ReceiverTimings> = {}) {
  const paths = resolvePaths({ configDir: await tempDir() });
  const bus = new EventBus();
  const events: Recorded[] = [];
  bus.onAny((name, payload) => events.push({ name, payload, at: Date.now() }));
  const queue = new FirmwareQueue({ bus, paths, runner: new ScriptedRunner() });
  await queue.start();
  const r = new Receiver({
    bus,
    queue,
    paths,
    identity: new IdentityStore({ keyFile: paths.peerLinkKeyFile, idFile: paths.identityFile }),
    host: "127.0.0.1",
    port: 0,
    label: () => "server",
    esphomeVersion: () => "2026.11.0",
    defaultEnabled: true,
    timings,
  });
  await r.start();
  return { r, events, bus, queue, paths, stop: async () => { await r.stop(); await queue.stop(); } };
}

async function offloader(timings: Partial<OffloaderTimings> = {}, dir?: string) {
  const paths = resolvePaths({ configDir: dir ?? (await tempDir()) });
  const bus = new EventBus();
  const events: Recorded[] = [];
  bus.onAny((name, payload) => events.push({ name, payload, at: Date.now() }));
  const identity = new IdentityStore({ keyFile: paths.peerLinkKeyFile, idFile: paths.identityFile });
  const o = new Offloader({ bus, paths, identity, label: () => "client", timings: { backoffInitialMs: 40, backoffMaxMs: 160, stepTimeoutMs: 1000, ...timings } });
  await o.start();
  return { o, events, identity, dir: paths.configDir };
}

async function pairUp(rx: Awaited<ReturnType<typeof receiver>>, ox: Awaited<ReturnType<typeof offloader>>, port = rx.r.port!): Promise<string> {
  rx.r.setPairingWindow("c", true);
  const preview = await ox.o.previewPair("127.0.0.1", port);
  await ox.o.requestPair("127.0.0.1", port, preview.pin_sha256);
  rx.r.approve((await ox.identity.load()).dashboard_id);
  await waitFor(() => ox.o.session(preview.pin_sha256) !== undefined, 5000, "session");
  return preview.pin_sha256;
}

const closedReasons = (events: Recorded[]): string[] =>
  events.filter((e) => e.name === "offloader_peer_link_closed").map((e) => (e.payload as { reason: string }).reason);

describe("heartbeat", () => {
  it("answers pings, and both sides end a silent session", async () => {
    const rx = await receiver({ heartbeatIntervalMs: 30, heartbeatTimeoutMs: 120 });
    const ox = await offloader({ heartbeatIntervalMs: 30, heartbeatTimeoutMs: 120 });
    const proxy = await startProxy(rx.r.port!);
    const pin = await pairUp(rx, ox, proxy.port);
    await new Promise((r) => setTimeout(r, 300)); // many heartbeats pass: the link is healthy
    expect(ox.o.session(pin)).toBeDefined();
    proxy.freeze();
    const frozenAt = Date.now();
    await waitFor(() => closedReasons(ox.events).includes("heartbeat_timeout"), 3000, "the offloader's timeout");
    expect(Date.now() - frozenAt).toBeLessThan(1000);
    await waitFor(() => rx.events.some((e) => e.name === "remote_build_peer_session_changed" && (e.payload as { reason: string }).reason === "heartbeat_timeout"), 3000, "the receiver's timeout");
    await ox.o.stop();
    await rx.stop();
  });
});

describe("reconnect", () => {
  it("backs off from 1x to the cap while the build server is unreachable, and resets after a session", async () => {
    const rx = await receiver();
    const ox = await offloader();
    // A listener that takes connections and drops them: every attempt fails.
    const attempts: number[] = [];
    const dropper = net.createServer((s) => { attempts.push(Date.now()); s.destroy(); });
    await new Promise<void>((r) => dropper.listen(0, "127.0.0.1", r));
    const pin = await pairUp(rx, ox);
    const dropPort = (dropper.address() as net.AddressInfo).port;
    // Point the pairing at the dropper by hand (editEndpoint would refuse: it checks the key).
    const state = ox.o.snapshot()[0]!;
    state.stored.receiver_port = dropPort;
    ox.o.session(pin)!.channel.close("transport_error", "test");
    await waitFor(() => attempts.length >= 6, 5000, "six attempts");
    const gaps = attempts.slice(1).map((t, i) => t - attempts[i]!);
    expect(gaps[0]).toBeGreaterThanOrEqual(35);
    expect(gaps[1]!).toBeGreaterThan(gaps[0]! * 1.5);
    expect(Math.max(...gaps)).toBeLessThan(160 * 2);
    await ox.o.stop();
    dropper.close();
    await rx.stop();
  });

  it("does not retry after being superseded by a second connection with the same identity", async () => {
    const rx = await receiver();
    const first = await offloader();
    const pin = await pairUp(rx, first);
    await new Promise((r) => setTimeout(r, 200)); // the approved pairing reaches the disk
    // A second process with the same identity files (say, a copy of the config folder).
    const second = await offloader({}, first.dir);
    await waitFor(() => second.o.session(pin) !== undefined, 5000, "the second session");
    await waitFor(() => closedReasons(first.events).includes("superseded"), 5000, "the supersede");
    await new Promise((r) => setTimeout(r, 400));
    expect(first.o.session(pin)).toBeUndefined();
    expect(first.events.filter((e) => e.name === "offloader_peer_link_opened")).toHaveLength(1);
    await first.o.stop();
    await second.o.stop();
    await rx.stop();
  });

  it("stops reconnecting once the build server removes the pairing", async () => {
    const rx = await receiver();
    const ox = await offloader();
    const pin = await pairUp(rx, ox);
    rx.r.remove((await ox.identity.load()).dashboard_id);
    await waitFor(() => ox.o.alerts().some((a) => a.kind === "peer_revoked"), 5000, "the revoked alert");
    const opened = ox.events.filter((e) => e.name === "offloader_peer_link_opened").length;
    await new Promise((r) => setTimeout(r, 400));
    expect(ox.events.filter((e) => e.name === "offloader_peer_link_opened").length).toBe(opened);
    expect(ox.o.session(pin)).toBeUndefined();
    await ox.o.stop();
    await rx.stop();
  });
});

describe("pairing window", () => {
  it("is kept per client, counts down in events, and clears pending requests when it closes", async () => {
    const rx = await receiver({ pairingWindowMs: 300 });
    const ox = await offloader();
    expect(rx.r.setPairingWindow("panel-1", true)).toEqual({ open: true, expires_in_seconds: 1 });
    rx.r.setPairingWindow("panel-2", true);
    rx.r.setPairingWindow("panel-1", false);
    expect(rx.r.settings().pairing_window_open).toBe(true); // panel-2 still holds it
    const preview = await ox.o.previewPair("127.0.0.1", rx.r.port!);
    const pending = await ox.o.requestPair("127.0.0.1", rx.r.port!, preview.pin_sha256);
    expect(pending.status).toBe("pending");
    await waitFor(() => rx.events.some((e) => e.name === "remote_build_pairing_window_changed" && !(e.payload as { open: boolean }).open), 2000, "the window to expire");
    expect(rx.r.settings().pairing_window_open).toBe(false);
    const windows = rx.events.filter((e) => e.name === "remote_build_pairing_window_changed").map((e) => (e.payload as { open: boolean }).open);
    expect(windows.at(-1)).toBe(false);
    expect(rx.events.some((e) => e.name === "remote_build_pair_status_changed" && (e.payload as { status: string }).status === "removed")).toBe(true);
    expect(rx.r.peers()).toEqual([]);
    // The offloader's long poll learns it at once.
    await waitFor(() => ox.o.pairings().length === 0, 3000, "the offloader to drop the pending pairing");
    await ox.o.stop();
    await rx.stop();
  });

  it("refuses to open while the build server is off", async () => {
    const rx = await receiver();
    await rx.r.setEnabled(false);
    expect(rx.r.port).toBeNull();
    expect(() => rx.r.setPairingWindow("p", true)).toThrow(/Turn the build server on/);
    await rx.r.setEnabled(true);
    expect(rx.r.port).toBeGreaterThan(0);
    await rx.stop();
  });
});

describe("cleanup of peers' build folders", () => {
  it("deletes folders unused for longer than the TTL and keeps those of active jobs", async () => {
    const { mkdir, utimes, readdir } = await import("node:fs/promises");
    const path = await import("node:path");
    const rx = await receiver({ remoteBuildsTtlMs: 1000 });
    const remoteRoot = rx.paths.remoteBuildsDir;
    const old = path.join(remoteRoot, "abcdefgh", "kitchen");
    const active = path.join(remoteRoot, "abcdefgh", "garage");
    await mkdir(old, { recursive: true });
    await mkdir(active, { recursive: true });
    const past = new Date(Date.now() - 10_000);
    for (const p of [old, active, path.join(remoteRoot, "abcdefgh")]) await utimes(p, past, past);
    await rx.queue.enqueue({ configuration: "abcdefgh/garage/garage.yaml", job_type: "compile", remote_peer: "abcdefghijklmnop", remote_job_id: "j1" });
    const removed = await rx.r.cleanup();
    expect(removed).toContain(old);
    expect(await readdir(path.join(remoteRoot, "abcdefgh"))).toEqual(["garage"]);
    await rx.stop();
  });
});
