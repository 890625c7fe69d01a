/**
 * The offloader's answer to `connect_back`: every refusal, the forward probe
 * against real listeners, and the move of the pairing.
 */
import path from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { EventBus } from "../../../src/events.ts";
import { FirmwareQueue } from "../../../src/firmware/queue.ts";
import { resolvePaths } from "../../../src/paths.ts";
import { IdentityStore } from "../../../src/remote-build/transport/identity.ts";
import { ConnectBackAnswerer, endpointIp, probeBuildServer } from "../../../src/remote-build/offloader/connect-back.ts";
import { Receiver } from "../../../src/remote-build/build-server/receiver.ts";
import { ScriptedRunner } from "../../helpers/scripted-runner.ts";
import { tempDir } from "../../helpers/tmp.ts";

const PIN = "a".repeat(64);

/** An answerer over pairings held in a map; probes resolve or throw as the test says. */
function answerer(opts: { pairings?: Record<string, { approved: boolean; connected: boolean }>; probe?: (host: string, port: number, pin: string) => Promise<void> } = {}) {
  const pairings = new Map(Object.entries(opts.pairings ?? { [PIN]: { approved: true, connected: false } }));
  const rebinds: [string, string, number][] = [];
  const probes: [string, number, string][] = [];
  const a = new ConnectBackAnswerer({
    pairing: (pin) => pairings.get(pin),
    probe: (host, port, pin) => {
      probes.push([host, port, pin]);
      return opts.probe?.(host, port, pin) ?? Promise.resolve();
    },
    rebind: (pin, host, port) => { rebinds.push([pin, host, port]); },
  });
  return { a, pairings, rebinds, probes };
}

describe("ConnectBackAnswerer", () => {
  it("ok: probes the caller's address at the announced port forward, then moves the pairing there", async () => {
    const { a, rebinds, probes } = answerer();
    expect(await a.answer(PIN, "::ffff:192.0.2.5", { peer_link_port: 6055 })).toEqual({ intent_response: "ok" });
    expect(probes).toEqual([["192.0.2.5", 6055, PIN]]);
    expect(rebinds).toEqual([[PIN, "192.0.2.5", 6055]]);
  });

  it("an IPv6 caller is probed at its IPv6 address", async () => {
    const { a, rebinds } = answerer();
    expect(await a.answer(PIN, "fe80::1", { peer_link_port: 1 })).toEqual({ intent_response: "ok" });
    expect(rebinds).toEqual([[PIN, "fe80::1", 1]]);
  });

  it.each([
    ["an unknown key", "b".repeat(64)],
    ["a pending pairing", "c".repeat(64)],
  ])("no_approved_peer: %s", async (_what, pin) => {
    const { a, rebinds, probes } = answerer({ pairings: { [PIN]: { approved: true, connected: false }, ["c".repeat(64)]: { approved: false, connected: false } } });
    expect(await a.answer(pin, "192.0.2.5", { peer_link_port: 6055 })).toEqual({ intent_response: "rejected", reason: "no_approved_peer" });
    expect([probes, rebinds]).toEqual([[], []]);
  });

  it.each<[string, Record<string, unknown>, string]>([
    ["port 0", { peer_link_port: 0 }, "192.0.2.5"],
    ["port 65536", { peer_link_port: 65536 }, "192.0.2.5"],
    ["a fractional port", { peer_link_port: 80.5 }, "192.0.2.5"],
    ["a port as text", { peer_link_port: "6055" }, "192.0.2.5"],
    ["no port", {}, "192.0.2.5"],
    ["an address that is not an IP", { peer_link_port: 6055 }, "not-an-ip"],
    ["no address", { peer_link_port: 6055 }, ""],
  ])("bad_endpoint: %s", async (_what, payload, address) => {
    const { a, rebinds, probes } = answerer();
    expect(await a.answer(PIN, address, payload)).toEqual({ intent_response: "rejected", reason: "bad_endpoint" });
    expect([probes, rebinds]).toEqual([[], []]);
  });

  it("already_connected: a forward session is live", async () => {
    const { a, rebinds, probes } = answerer({ pairings: { [PIN]: { approved: true, connected: true } } });
    expect(await a.answer(PIN, "192.0.2.5", { peer_link_port: 6055 })).toEqual({ intent_response: "rejected", reason: "already_connected" });
    expect([probes, rebinds]).toEqual([[], []]);
  });

  it("rebind_in_progress: a probe for that pin is running; once it ends, a new one may run", async () => {
    let release = (): void => undefined;
    const { a, rebinds, probes } = answerer({ probe: () => new Promise<void>((r) => { release = r; }) });
    const first = a.answer(PIN, "192.0.2.5", { peer_link_port: 6055 });
    expect(a.probing(PIN)).toBe(true);
    expect(await a.answer(PIN, "192.0.2.6", { peer_link_port: 7000 })).toEqual({ intent_response: "rejected", reason: "rebind_in_progress" });
    release();
    expect(await first).toEqual({ intent_response: "ok" });
    expect(a.probing(PIN)).toBe(false);
    expect(probes).toHaveLength(1);
    expect(rebinds).toEqual([[PIN, "192.0.2.5", 6055]]);
  });

  it("probe_failed: nothing moves, and the next connect_back may probe again", async () => {
    const { a, rebinds, probes } = answerer({ probe: () => Promise.reject(new Error("the build server's key changed")) });
    expect(await a.answer(PIN, "192.0.2.5", { peer_link_port: 6055 })).toEqual({ intent_response: "rejected", reason: "probe_failed" });
    expect(await a.answer(PIN, "192.0.2.5", { peer_link_port: 6055 })).toEqual({ intent_response: "rejected", reason: "probe_failed" });
    expect(probes).toHaveLength(2);
    expect(rebinds).toEqual([]);
  });

  it("a pairing removed or connected during the probe is not moved", async () => {
    const removed = answerer();
    removed.a = new ConnectBackAnswerer({
      pairing: (pin) => removed.pairings.get(pin),
      probe: () => { removed.pairings.delete(PIN); return Promise.resolve(); },
      rebind: () => { throw new Error("must not move"); },
    });
    expect(await removed.a.answer(PIN, "192.0.2.5", { peer_link_port: 6055 })).toEqual({ intent_response: "rejected", reason: "no_approved_peer" });
    const pairings = new Map([[PIN, { approved: true, connected: false }]]);
    const connected = new ConnectBackAnswerer({
      pairing: (pin) => pairings.get(pin),
      probe: () => { pairings.set(PIN, { approved: true, connected: true }); return Promise.resolve(); },
      rebind: () => { throw new Error("must not move"); },
    });
    expect(await connected.answer(PIN, "192.0.2.5", { peer_link_port: 6055 })).toEqual({ intent_response: "rejected", reason: "already_connected" });
  });
});

describe("endpointIp", () => {
  it.each([
    ["::ffff:10.0.0.2", "10.0.0.2"],
    ["10.0.0.2", "10.0.0.2"],
    ["::1", "::1"],
    ["::ffff:abcd", "::ffff:abcd"],
    ["host.lan", null],
    ["", null],
  ])("%s -> %s", (address, ip) => {
    expect(endpointIp(address)).toBe(ip);
  });
});

/** A real build server (receiver) on loopback. */
async function buildServer(enabled = true) {
  const paths = resolvePaths({ configDir: await tempDir() });
  const bus = new EventBus();
  const queue = new FirmwareQueue({ bus, paths, runner: new ScriptedRunner() });
  await queue.start();
  const identity = new IdentityStore({ keyFile: paths.peerLinkKeyFile, idFile: paths.identityFile });
  const r = new Receiver({ bus, queue, paths, identity, host: "127.0.0.1", port: 0, label: () => "server", esphomeVersion: () => "2026.11.0", defaultEnabled: enabled });
  await r.start();
  onTestFinished(async () => { await r.stop(); await queue.stop(); });
  return { r, pin: (await identity.load()).pin_sha256 };
}

describe("probeBuildServer (a preview with a pin check)", () => {
  async function me() {
    const dir = await tempDir();
    return new IdentityStore({ keyFile: path.join(dir, "key"), idFile: path.join(dir, "id.json") }).load();
  }

  it("passes against the build server with the pinned key", async () => {
    const s = await buildServer();
    await expect(probeBuildServer({ identity: await me(), host: "127.0.0.1", port: s.r.port!, pin: s.pin, stepTimeoutMs: 2000 })).resolves.toBeUndefined();
  });

  it("fails when another key answers there", async () => {
    const s = await buildServer();
    await expect(probeBuildServer({ identity: await me(), host: "127.0.0.1", port: s.r.port!, pin: "0".repeat(64), stepTimeoutMs: 2000 })).rejects.toThrow(/key changed/);
  });

  it("fails when the listener there serves connect-back only (its build server is off)", async () => {
    const s = await buildServer(false);
    const port = await s.r.offloaderListener(true);
    expect(s.r.port).toBeNull();
    await expect(probeBuildServer({ identity: await me(), host: "127.0.0.1", port: port!, pin: s.pin, stepTimeoutMs: 2000 })).rejects.toThrow(/rejected \(bad_intent\)/);
  });

  it("fails when nothing listens, or when this builder has no identity", async () => {
    await expect(probeBuildServer({ identity: await me(), host: "127.0.0.1", port: 1, pin: PIN, stepTimeoutMs: 2000 })).rejects.toThrow(/cannot reach/);
    await expect(probeBuildServer({ identity: undefined, host: "127.0.0.1", port: 1, pin: PIN, stepTimeoutMs: 2000 })).rejects.toThrow(/no identity/);
  });
});
