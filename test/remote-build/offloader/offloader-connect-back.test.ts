/**
 * The offloader's connect-back hooks in offloader.ts, with a real build
 * server on loopback: the port it announces, what connect-back may see of a
 * pairing, and the move of a pairing (a loop backing off is woken, a loop
 * that gave up is started again, the move is written down).
 */
import { readFile } from "node:fs/promises";
import { describe, expect, it, onTestFinished } from "vitest";
import { EventBus, type EventMap } from "../../../src/events.ts";
import { FirmwareQueue } from "../../../src/firmware/queue.ts";
import { resolvePaths } from "../../../src/paths.ts";
import { IdentityStore } from "../../../src/remote-build/transport/identity.ts";
import { Offloader } from "../../../src/remote-build/offloader/offloader.ts";
import { Receiver } from "../../../src/remote-build/build-server/receiver.ts";
import { startProxy } from "../../helpers/proxy.ts";
import { ScriptedRunner } from "../../helpers/scripted-runner.ts";
import { tempDir, waitFor } from "../../helpers/tmp.ts";

async function buildServer() {
  const paths = resolvePaths({ configDir: await tempDir() });
  const bus = new EventBus();
  const queue = new FirmwareQueue({ bus, paths, runner: new ScriptedRunner() });
  await queue.start();
  const r = new Receiver({ bus, queue, paths, identity: new IdentityStore({ keyFile: paths.peerLinkKeyFile, idFile: paths.identityFile }), host: "127.0.0.1", port: 0, label: () => "server", esphomeVersion: () => "2026.11.0", defaultEnabled: true });
  await r.start();
  onTestFinished(async () => { await r.stop(); await queue.stop(); });
  return r;
}

/** An offloader whose retries wait a minute: only a wake-up reconnects it within a test. */
async function offloader(dir: string, announce: number | null = 4321) {
  const paths = resolvePaths({ configDir: dir });
  const bus = new EventBus();
  const events: { name: keyof EventMap; payload: unknown }[] = [];
  bus.onAny((name, payload) => events.push({ name, payload }));
  const identity = new IdentityStore({ keyFile: paths.peerLinkKeyFile, idFile: paths.identityFile });
  const o = new Offloader({ bus, paths, identity, label: () => "client", timings: { backoffInitialMs: 60_000, backoffMaxMs: 60_000, stepTimeoutMs: 1000 }, connectBackPort: () => Promise.resolve(announce) });
  await o.start();
  onTestFinished(() => o.stop());
  return { o, identity, events, paths };
}

async function pair(r: Receiver, ox: Awaited<ReturnType<typeof offloader>>, port: number): Promise<string> {
  r.setPairingWindow("c", true);
  const preview = await ox.o.previewPair("127.0.0.1", port);
  const pending = await ox.o.requestPair("127.0.0.1", port, preview.pin_sha256);
  expect(ox.o.connectBackPairing(preview.pin_sha256)).toEqual({ approved: false, connected: false });
  expect(pending.status).toBe("pending");
  expect(ox.o.hasApprovedPairings()).toBe(false);
  r.approve((await ox.identity.load()).dashboard_id);
  await waitFor(() => ox.o.session(preview.pin_sha256) !== undefined, 5000, "the session");
  return preview.pin_sha256;
}

describe("the offloader's connect-back hooks", () => {
  it("announces its listener port, and a pairing moved by connect-back reconnects at once and is written down", async () => {
    const r = await buildServer();
    const proxy = await startProxy(r.port!);
    const ox = await offloader(await tempDir());
    const pin = await pair(r, ox, proxy.port);
    expect(ox.o.hasApprovedPairings()).toBe(true);
    expect(ox.o.connectBackPairing(pin)).toEqual({ approved: true, connected: true });
    expect(ox.o.connectBackPairing("0".repeat(64))).toBeUndefined();
    expect(r.connectBackPeers()[0]).toMatchObject({ connect_back_port: 4321, connected: true });

    // The build server "moves": the old address goes dead, the loop backs off for a minute.
    await proxy.close();
    await waitFor(() => ox.o.connectBackPairing(pin)?.connected === false, 5000, "the session to end");
    await new Promise((res) => setTimeout(res, 200));
    expect(ox.o.session(pin)).toBeUndefined();

    ox.o.rebindFromConnectBack(pin, "127.0.0.1", r.port!);
    await waitFor(() => ox.o.session(pin) !== undefined, 3000, "the session at the new address");
    expect(ox.o.pairings()[0]).toMatchObject({ receiver_hostname: "127.0.0.1", receiver_port: r.port!, connected: true, last_connect_error: "" });
    expect(ox.events.some((e) => e.name === "offloader_pairing_changed" && (e.payload as { pairing: { receiver_port: number } }).pairing.receiver_port === r.port)).toBe(true);
    await waitFor(async () => (JSON.parse(await readFile(ox.paths.offloaderFile, "utf8")) as { pairings: { receiver_port: number }[] }).pairings[0]?.receiver_port === r.port, 3000, "offloader.json");
  });

  it("starts again a session loop that had given up (superseded), and ignores unknown or pending pins", async () => {
    const r = await buildServer();
    const dir = await tempDir();
    const first = await offloader(dir, null);
    const pin = await pair(r, first, r.port!);
    expect(r.connectBackPeers()[0]?.connect_back_port).toBe(0); // nothing bound: nothing announced
    await waitFor(async () => (await readFile(first.paths.offloaderFile, "utf8").catch(() => "")).includes(pin), 3000, "offloader.json");
    // The same identity connects from elsewhere: the first loop is superseded and stops for good.
    const second = await offloader(dir, null);
    await waitFor(() => second.o.session(pin) !== undefined, 5000, "the second session");
    await waitFor(() => first.o.session(pin) === undefined, 5000, "the first to be superseded");
    await second.o.stop();
    await new Promise((res) => setTimeout(res, 300));
    expect(first.o.session(pin)).toBeUndefined();

    first.o.rebindFromConnectBack("0".repeat(64), "127.0.0.1", 1);
    first.o.rebindFromConnectBack(pin, "127.0.0.1", r.port!);
    await waitFor(() => first.o.session(pin) !== undefined, 3000, "the restarted loop's session");
  });

  it("does not move a pairing after the offloader stopped", async () => {
    const r = await buildServer();
    const ox = await offloader(await tempDir());
    const pin = await pair(r, ox, r.port!);
    await ox.o.stop();
    ox.o.rebindFromConnectBack(pin, "192.0.2.1", 9);
    expect(ox.o.pairings()[0]).toMatchObject({ receiver_port: r.port! });
  });
});
