/**
 * The build server's side of connect-back in receiver.ts: the offloader's
 * announced port and address stored with the approved peer (a missing or 0
 * port never overwrites), receiver.json rows with and without the new field,
 * and the listener's offloader-only mode.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { EventBus } from "../../../src/events.ts";
import { FirmwareQueue } from "../../../src/firmware/queue.ts";
import { resolvePaths, type Paths } from "../../../src/paths.ts";
import { initiate } from "../../../src/remote-build/transport/handshake.ts";
import { IdentityStore } from "../../../src/remote-build/transport/identity.ts";
import { Offloader } from "../../../src/remote-build/offloader/offloader.ts";
import { Receiver } from "../../../src/remote-build/build-server/receiver.ts";
import { ScriptedRunner } from "../../helpers/scripted-runner.ts";
import { tempDir, waitFor } from "../../helpers/tmp.ts";

async function receiver(opts: { enabled?: boolean; paths?: Paths; port?: number } = {}) {
  const paths = opts.paths ?? resolvePaths({ configDir: await tempDir() });
  const bus = new EventBus();
  const queue = new FirmwareQueue({ bus, paths, runner: new ScriptedRunner() });
  await queue.start();
  const identity = new IdentityStore({ keyFile: paths.peerLinkKeyFile, idFile: paths.identityFile });
  const r = new Receiver({ bus, queue, paths, identity, host: "127.0.0.1", port: opts.port ?? 0, label: () => "server", esphomeVersion: () => "2026.11.0", defaultEnabled: opts.enabled ?? true });
  await r.start();
  onTestFinished(async () => { await r.stop(); await queue.stop(); });
  return { r, paths };
}

async function offloader(dir: string, connectBackPort: number | null) {
  const paths = resolvePaths({ configDir: dir });
  const identity = new IdentityStore({ keyFile: paths.peerLinkKeyFile, idFile: paths.identityFile });
  const o = new Offloader({ bus: new EventBus(), paths, identity, label: () => "client", timings: { backoffInitialMs: 40, backoffMaxMs: 160, stepTimeoutMs: 1000 }, connectBackPort: () => Promise.resolve(connectBackPort) });
  await o.start();
  onTestFinished(() => o.stop());
  return { o, identity };
}

async function stored(paths: Paths): Promise<Record<string, unknown>[]> {
  return (JSON.parse(await readFile(paths.receiverFile, "utf8")) as { peers: Record<string, unknown>[] }).peers;
}

describe("the offloader's connect-back port on the build server", () => {
  it("is stored with the approved peer and the address its session came from; a missing or 0 port keeps the stored one", async () => {
    const { r, paths } = await receiver();
    const dir = await tempDir();
    const first = await offloader(dir, 4321);
    r.setPairingWindow("c", true);
    const preview = await first.o.previewPair("127.0.0.1", r.port!);
    await first.o.requestPair("127.0.0.1", r.port!, preview.pin_sha256);
    const me = await first.identity.load();
    r.approve(me.dashboard_id);
    await waitFor(() => r.connectBackPeers()[0]?.connected === true, 5000, "the session");
    expect(r.connectBackPeers()).toEqual([{ dashboard_id: me.dashboard_id, pin_sha256: me.pin_sha256, peer_ip: "127.0.0.1", connect_back_port: 4321, connected: true }]);
    await r.flush();
    expect((await stored(paths))[0]).toMatchObject({ peer_ip: "127.0.0.1", connect_back_port: 4321 });
    await first.o.stop();
    await waitFor(() => r.connectBackPeers()[0]?.connected === false, 5000, "the session to end");

    // Not announced (its listener is not bound), 0, or not a port: the stored port stays.
    for (const payload of [{}, { connect_back_port: 0 }, { connect_back_port: 70000 }, { connect_back_port: "5555" }, { connect_back_port: 12.5 }]) {
      const { channel, response } = await initiate({ host: "127.0.0.1", port: r.port!, staticPrivateKey: me.privateKey, intent: "peer_link", expectedPin: preview.pin_sha256, payload: { dashboard_id: me.dashboard_id, ...payload }, stepTimeoutMs: 2000 });
      expect(response.intent_response).toBe("ok");
      channel.close("client_stopped");
      expect(r.connectBackPeers()[0]?.connect_back_port).toBe(4321);
    }
    // A new port replaces it.
    const second = await offloader(dir, 5555);
    await waitFor(() => r.connectBackPeers()[0]?.connect_back_port === 5555, 5000, "the new port");
    await second.o.stop();
    await r.flush();
    expect((await stored(paths))[0]).toMatchObject({ connect_back_port: 5555 });
  });
});

describe("receiver.json rows", () => {
  const row = (extra: Record<string, unknown>) => ({
    dashboard_id: "0123456789abcdef0123456789abcdef",
    pin_sha256: "a".repeat(64),
    public_key: "AAAA",
    label: "Laptop",
    paired_at: "2026-11-01T00:00:00.000Z",
    ...extra,
  });

  async function load(peers: unknown[]) {
    const paths = resolvePaths({ configDir: await tempDir() });
    await mkdir(path.dirname(paths.receiverFile), { recursive: true });
    await writeFile(paths.receiverFile, JSON.stringify({ enabled: true, peers }));
    return receiver({ paths });
  }

  it("an older file without connect_back_port still loads (port 0: not dialled)", async () => {
    const { r } = await load([row({})]);
    expect(r.problems).toEqual([]);
    expect(r.connectBackPeers()).toEqual([expect.objectContaining({ connect_back_port: 0, peer_ip: "" })]);
  });

  it("a stored port and address are read back", async () => {
    const { r } = await load([row({ peer_ip: "192.0.2.4", connect_back_port: 6055 })]);
    expect(r.connectBackPeers()).toEqual([expect.objectContaining({ connect_back_port: 6055, peer_ip: "192.0.2.4" })]);
  });

  it.each([[-1], [65536], ["6055"], [1.5]])("a row with connect_back_port %j is skipped and reported, the others kept", async (bad) => {
    const { r } = await load([row({ connect_back_port: bad }), row({ dashboard_id: "fedcba9876543210fedcba9876543210", pin_sha256: "b".repeat(64) })]);
    expect(r.connectBackPeers().map((p) => p.dashboard_id)).toEqual(["fedcba9876543210fedcba9876543210"]);
    expect(r.problems).toEqual([expect.objectContaining({ kind: "receiver_peer", message: expect.stringContaining("connect_back_port") as unknown })]);
  });
});

describe("the listener in offloader-only mode", () => {
  it("binds for connect-back while the build server is off, serves nothing else, and closes when no longer wanted", async () => {
    const { r } = await receiver({ enabled: false });
    expect(r.listenerPort).toBeNull();
    const port = await r.offloaderListener(true);
    expect(port).not.toBeNull();
    expect([r.port, r.listenerPort]).toEqual([null, port]);
    const stranger = await new IdentityStore({ keyFile: path.join(await tempDir(), "k"), idFile: path.join(await tempDir(), "i.json") }).load();
    for (const intent of ["preview", "pair_request", "pair_status", "peer_link", "connect_back", "nonsense"]) {
      const { channel, response } = await initiate({ host: "127.0.0.1", port: port!, staticPrivateKey: stranger.privateKey, intent, payload: { dashboard_id: stranger.dashboard_id, peer_link_port: 1 }, stepTimeoutMs: 2000 });
      channel.close("done");
      // No connect-back answer is wired into this bare receiver: connect_back is bad_intent too.
      expect([intent, response.intent_response, response.reason]).toEqual([intent, "rejected", "bad_intent"]);
    }
    // Turning the build server on keeps the same listener; off again keeps it for connect-back.
    await r.setEnabled(true);
    expect([r.port, r.listenerPort]).toEqual([port, port]);
    await r.setEnabled(false);
    expect([r.port, r.listenerPort]).toEqual([null, port]);
    await r.offloaderListener(false);
    expect(r.listenerPort).toBeNull();
  });

  it("is not closed for connect-back while the build server is on", async () => {
    const { r } = await receiver({ enabled: true });
    const port = r.port;
    expect(await r.offloaderListener(true)).toBe(port);
    await r.offloaderListener(false);
    expect(r.port).toBe(port);
  });

  it("a port that cannot be bound gives null (nothing announced), and binds once it is free", async () => {
    const squatter = net.createServer();
    await new Promise<void>((r) => squatter.listen(0, "127.0.0.1", r));
    const { port } = squatter.address() as net.AddressInfo;
    const { r } = await receiver({ enabled: false, port });
    expect(await r.offloaderListener(true)).toBeNull();
    expect(await r.offloaderListener(true)).toBeNull();
    await new Promise<void>((done) => squatter.close(() => { done(); }));
    expect(await r.offloaderListener(true)).toBe(port);
  });

  it("concurrent requests share one bind", async () => {
    const { r } = await receiver({ enabled: false });
    const ports = await Promise.all([r.offloaderListener(true), r.offloaderListener(true), r.offloaderListener(true)]);
    expect(new Set(ports).size).toBe(1);
    expect(ports[0]).not.toBeNull();
  });
});
