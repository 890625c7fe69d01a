/**
 * Memory and time bounds of the build server's peer-link listener before an
 * intent is answered (docs/THREAT_MODEL.md, "Memory bounds"): a flood on an
 * unauthenticated `pair_status` long poll is cut off after a few frames, the
 * builder stays responsive, and a long poll ends after its time limit.
 */
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import { describe, expect, it } from "vitest";
import WebSocket from "ws";
import { Builder } from "../../../src/builder.ts";
import { PRE_ANSWER_MAX_BYTES, PRE_ANSWER_MAX_FRAMES } from "../../../src/remote-build/transport/socket-frames.ts";
import { MAX_STATUS_WAITERS_PER_REQUEST } from "../../../src/remote-build/build-server/pairing.ts";
import { NoiseHandshake } from "../../../src/remote-build/transport/noise.ts";
import { generateStaticKey } from "../../../src/remote-build/transport/noise-primitives.ts";
import { ApiClient } from "../../helpers/api-client.ts";
import { configDir, spawnBuilder, STAND_IN, testConfig } from "../../helpers/builder.ts";
import { waitFor } from "../../helpers/tmp.ts";

const FLOOD_SCRIPT = path.resolve(import.meta.dirname, "../../helpers/peer-link-flood.ts");
const ID = "floodFLOODfloodFLOODfloodFLOOD01";
const MiB = 1024 * 1024;

interface Raw {
  ws: WebSocket;
  /** Decrypted frames, in order. */
  frames: Record<string, unknown>[];
  closed: Promise<{ code: number; at: number }>;
  send(data: Buffer): void;
}

/** A hand-driven handshake that does not wait for the intent response. */
async function open(port: number, key: Uint8Array, intent: string, payload: unknown): Promise<Raw> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/remote-build/peer-link`, { perMessageDeflate: false });
  const inbound: Buffer[] = [];
  let wake: (() => void) | null = null;
  ws.on("message", (d: Buffer) => { inbound.push(d); wake?.(); });
  const closed = new Promise<{ code: number; at: number }>((resolve) => ws.on("close", (code) => { resolve({ code, at: Date.now() }); wake?.(); }));
  await new Promise((resolve, reject) => { ws.once("open", resolve); ws.once("error", reject); });
  const hs = NoiseHandshake.initiator(key);
  ws.send(hs.writeMessage(Buffer.from(JSON.stringify({ intent }))));
  while (inbound.length === 0) await new Promise<void>((r) => { wake = r; });
  hs.readMessage(inbound.shift()!);
  ws.send(hs.writeMessage(Buffer.from(JSON.stringify(payload))));
  const { receive } = hs.split();
  const frames: Record<string, unknown>[] = [];
  ws.removeAllListeners("message");
  ws.on("message", (d: Buffer) => { frames.push(JSON.parse(Buffer.from(receive.decrypt(d)).toString()) as Record<string, unknown>); });
  return { ws, frames, closed, send: (data) => { ws.send(data); } };
}

async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmRSS for ${pid}`);
  return Number(kb) * 1024;
}

/** GET /ping on the builder's HTTP port; resolves with the round trip in ms. */
function ping(port: number): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/ping", agent: false }, (res) => {
      res.resume();
      res.on("end", () => {
        if (res.statusCode === 200) resolve(performance.now() - started);
        else reject(new Error(`/ping answered ${res.statusCode}`));
      });
    });
    req.on("error", reject);
  });
}

describe("a flood on an open pairing window", () => {
  it("cuts the connection off after a few frames: RSS stays bounded and /ping answers within 100 ms", { timeout: 60_000 }, async () => {
    const dir = await configDir();
    const proc = await spawnBuilder(["--config-dir", dir, "--port", "0", "--peer-link-port", "0", "--peer-link-host", "127.0.0.1", "--esphome", STAND_IN, "--no-mdns", "--log-level", "warning"]);
    const listening = JSON.parse(proc.stdout.join("").split("\n").find((l) => l.includes("listening")) ?? "{}") as { peer_link_port: number };
    const pid = proc.child.pid!;
    const api = await ApiClient.connect(proc.port);
    await api.call("remote_build/set_pairing_window", { open: true });
    const key = generateStaticKey();
    const request = await open(listening.peer_link_port, key, "pair_request", { dashboard_id: ID, label: "flood" });
    await request.closed;
    expect(request.frames[0]).toMatchObject({ intent_response: "pending" });

    for (let i = 0; i < 5; i++) await ping(proc.port); // warm
    const baseline = await rssBytes(pid);
    const flooder = new Promise<{ sent: number; connections: number; replies: Record<string, number> }>((resolve, reject) => {
      const config = { port: listening.peer_link_port, dashboardId: ID, keyHex: Buffer.from(key).toString("hex"), durationMs: 4000, connections: 3, maxBytes: 768 * MiB };
      execFile(process.execPath, [FLOOD_SCRIPT, JSON.stringify(config)], { timeout: 30_000 }, (err, stdout, stderr) => {
        if (err !== null) reject(new Error(`${err.message}\n${stderr}`));
        else resolve(JSON.parse(stdout.trim()) as { sent: number; connections: number; replies: Record<string, number> });
      });
    });
    const flooding = { done: false };
    void flooder.finally(() => { flooding.done = true; });
    const latencies: number[] = [];
    let peak = baseline;
    while (!flooding.done) {
      latencies.push(await ping(proc.port));
      peak = Math.max(peak, await rssBytes(pid));
      await new Promise((r) => setTimeout(r, 25));
    }
    const result = await flooder;
    const growth = peak - baseline;
    console.log(`flood: ${(result.sent / MiB).toFixed(0)} MiB sent over ${result.connections} connections; builder RSS ${(baseline / MiB).toFixed(0)} -> peak ${(peak / MiB).toFixed(0)} MiB (+${(growth / MiB).toFixed(1)}); /ping max ${Math.max(...latencies).toFixed(1)} ms over ${latencies.length}`);
    // The flooder really flooded: many connections, each answered by a terminate, not an intent response.
    expect(result.connections).toBeGreaterThan(3);
    expect(result.replies["terminate:malformed_frame"]).toBe(result.connections);
    expect(latencies.length).toBeGreaterThan(20);
    expect(growth).toBeLessThan(48 * MiB);
    expect(Math.max(...latencies)).toBeLessThan(100);

    // The builder still serves the pairing the flooder's key asked for.
    const poll = await open(listening.peer_link_port, key, "pair_status", { dashboard_id: ID });
    await api.call("remote_build/approve_peer", { dashboard_id: ID });
    await poll.closed;
    expect(poll.frames[0]).toMatchObject({ intent_response: "approved" });
    api.ws.close();
  });
});

describe("before the intent is answered", () => {
  async function inProcess(receiverTimings: { pairStatusMaxWaitMs?: number } = {}): Promise<{ builder: Builder; peerPort: number }> {
    const builder = new Builder(testConfig(await configDir()), { receiverTimings });
    await builder.start();
    return { builder, peerPort: builder.remote.receiver.port! };
  }

  async function pending(builder: Builder, peerPort: number, key: Uint8Array): Promise<void> {
    builder.remote.receiver.setPairingWindow("test", true);
    const r = await open(peerPort, key, "pair_request", { dashboard_id: ID });
    await r.closed;
    expect(r.frames[0]).toMatchObject({ intent_response: "pending" });
  }

  it(`takes at most ${PRE_ANSWER_MAX_FRAMES} frames or ${PRE_ANSWER_MAX_BYTES} bytes, then terminates as malformed_frame`, async () => {
    const { builder, peerPort } = await inProcess();
    try {
      const key = generateStaticKey();
      await pending(builder, peerPort, key);
      // Small frames: the frame count trips.
      const few = await open(peerPort, key, "pair_status", { dashboard_id: ID });
      for (let i = 0; i < PRE_ANSWER_MAX_FRAMES; i++) few.send(Buffer.alloc(16));
      await new Promise((r) => setTimeout(r, 200));
      expect(few.ws.readyState).toBe(WebSocket.OPEN); // within the bound: still waiting
      few.send(Buffer.alloc(16));
      expect((await few.closed).code).toBe(1000);
      expect(few.frames).toEqual([{ type: "terminate", reason: "malformed_frame" }]);
      // Big frames: the byte count trips before the frame count.
      const big = await open(peerPort, key, "pair_status", { dashboard_id: ID });
      big.send(Buffer.alloc(PRE_ANSWER_MAX_BYTES - 10));
      big.send(Buffer.alloc(20));
      await big.closed;
      expect(big.frames).toEqual([{ type: "terminate", reason: "malformed_frame" }]);
      // The request itself is untouched.
      expect(builder.remote.receiver.peers()).toMatchObject([{ dashboard_id: ID, status: "pending" }]);
    } finally {
      await builder.stop();
    }
  });

  it("ends a pair_status long poll after its time limit without an answer", async () => {
    const { builder, peerPort } = await inProcess({ pairStatusMaxWaitMs: 300 });
    try {
      const key = generateStaticKey();
      await pending(builder, peerPort, key);
      const started = Date.now();
      const poll = await open(peerPort, key, "pair_status", { dashboard_id: ID });
      const { code, at } = await poll.closed;
      expect(code).toBe(1000);
      expect(at - started).toBeGreaterThanOrEqual(290);
      expect(at - started).toBeLessThan(3000);
      expect(poll.frames).toEqual([]); // no answer: the offloader simply asks again
      expect(builder.remote.receiver.peers()).toMatchObject([{ dashboard_id: ID, status: "pending" }]);
    } finally {
      await builder.stop();
    }
  });

  it(`keeps at most ${MAX_STATUS_WAITERS_PER_REQUEST} long polls per request; a newer one ends the oldest`, async () => {
    const { builder, peerPort } = await inProcess();
    try {
      const key = generateStaticKey();
      await pending(builder, peerPort, key);
      const polls: Raw[] = [];
      for (let i = 0; i <= MAX_STATUS_WAITERS_PER_REQUEST; i++) {
        polls.push(await open(peerPort, key, "pair_status", { dashboard_id: ID }));
        await new Promise((r) => setTimeout(r, 20));
      }
      await polls[0]!.closed;
      expect(polls[0]!.frames).toEqual([]);
      builder.remote.receiver.approve(ID);
      for (const poll of polls.slice(1)) {
        await poll.closed;
        expect(poll.frames).toMatchObject([{ intent_response: "approved" }]);
      }
    } finally {
      await builder.stop();
    }
  });

  it("still answers ordinary intents at once", async () => {
    const { builder, peerPort } = await inProcess();
    try {
      const preview = await open(peerPort, generateStaticKey(), "preview", {});
      await waitFor(() => preview.frames.length > 0, 5000, "the preview answer");
      expect(preview.frames[0]).toMatchObject({ intent_response: "ok" });
    } finally {
      await builder.stop();
    }
  });
});
