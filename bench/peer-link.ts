/**
 * Peer-link benchmarks, on loopback, in one run:
 * (a) artifact download of ~1, 16 and 64 MiB through the peer link (pack,
 *     chunk, encrypt, decrypt, verify) vs the same bytes over a plain
 *     WebSocket without encryption;
 * (b) Noise XX handshake time (a full `preview` round trip, connect included);
 * (c) cancel latency: `cancelJob` on the offloader until the build server's
 *     process has been signalled and the build server confirms the cancel.
 */
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { readFile } from "node:fs/promises";
import { WebSocket, WebSocketServer } from "ws";
import { initiate } from "../src/remote-build/channel.ts";
import { STAND_IN, builder, deviceFolder, pair, tempDir, waitUntil, ROOT } from "./lib.ts";

process.env.ESPHOME_STANDIN_COMPILE_SECONDS = "0";
process.env.ESPHOME_STANDIN_UPLOAD_SECONDS = "0";
process.env.ESPHOME_STANDIN_FAIL = "";

/** The limit: the same bytes in 32 KiB binary messages over a plain loopback WebSocket. */
async function plainWebSocket(bytes: Buffer): Promise<number> {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise((r) => wss.once("listening", r));
  const port = (wss.address() as { port: number }).port;
  wss.on("connection", (ws) => {
    for (let off = 0; off < bytes.length; off += 32 * 1024) ws.send(bytes.subarray(off, off + 32 * 1024));
  });
  const t = performance.now();
  const ws = new WebSocket(`ws://127.0.0.1:${port}`);
  let received = 0;
  await new Promise<void>((resolve) => {
    ws.on("message", (d: Buffer) => {
      received += d.length;
      if (received >= bytes.length) resolve();
    });
  });
  const ms = performance.now() - t;
  ws.close();
  wss.close();
  return ms;
}

async function downloads(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const mib of [1, 16, 64]) {
    // The stand-in writes four images of this size (firmware, OTA and factory images, ELF).
    process.env.ESPHOME_STANDIN_FIRMWARE_BYTES = String(Math.floor((mib * 1024 * 1024) / 4.2));
    const a = await builder(await deviceFolder(["kitchen"]), "A");
    const b = await builder(await deviceFolder([]), "B");
    const pin = await pair(a, b);
    const job = await a.queue.enqueue({ configuration: "kitchen.yaml", job_type: "compile" });
    await waitUntil(() => a.queue.get(job.job_id)?.status === "completed", 60_000);
    const session = a.remote.offloader.session(pin);
    if (session === undefined) throw new Error("no session");
    let best = Infinity;
    let size = 0;
    for (let i = 0; i < 3; i++) {
      const t = performance.now();
      size = (await session.downloadArtifacts(job.job_id)).length;
      best = Math.min(best, performance.now() - t);
    }
    let plain = Infinity;
    const same = randomBytes(size);
    for (let i = 0; i < 3; i++) plain = Math.min(plain, await plainWebSocket(same));
    out[`download_${mib}_mib_bytes`] = size;
    out[`download_${mib}_mib_ms`] = best;
    out[`plain_${mib}_mib_ms`] = plain;
    out[`download_${mib}_mib_vs_plain`] = plain / best;
    await a.stop();
    await b.stop();
  }
  return out;
}

async function handshake(): Promise<Record<string, number>> {
  const b = await builder(await deviceFolder([]), "B");
  const a = await builder(await deviceFolder([]), "A");
  const key = a.remote.identity;
  const id = await key.load();
  const times: number[] = [];
  for (let i = 0; i < 60; i++) {
    const t = performance.now();
    const { channel } = await initiate({ host: "127.0.0.1", port: b.remote.receiver.port!, staticPrivateKey: id.privateKey, intent: "preview", payload: {} });
    times.push(performance.now() - t);
    channel.close("done");
  }
  await a.stop();
  await b.stop();
  times.splice(0, 10); // warm-up
  times.sort((x, y) => x - y);
  return { handshake_median_ms: times[Math.floor(times.length / 2)]!, handshake_p90_ms: times[Math.floor(times.length * 0.9)]! };
}

async function cancelLatency(): Promise<Record<string, number>> {
  // The build server runs as its own process with a compile that hangs until signalled.
  const dir = await deviceFolder([]);
  const child = spawn(process.execPath, [path.join(ROOT, "src", "main.ts"), "--config-dir", dir, "--port", "0", "--peer-link-port", "0", "--peer-link-host", "127.0.0.1", "--esphome", STAND_IN, "--no-mdns", "--log-level", "error"], {
    env: { ...process.env, ESPHOME_STANDIN_FAIL: "hang" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const listening = await new Promise<{ port: number; peer_link_port: number }>((resolve) => {
    let buf = "";
    child.stdout.on("data", (d: Buffer) => {
      buf += d.toString();
      const line = buf.split("\n").find((l) => l.includes("listening"));
      if (line !== undefined) resolve(JSON.parse(line) as { port: number; peer_link_port: number });
    });
  });
  const a = await builder(await deviceFolder(["kitchen"]), "A");
  // Pair through the build server's panel API.
  const { ApiClient } = await import("../test/helpers/api-client.ts");
  const api = await ApiClient.connect(listening.port);
  await api.call("remote_build/set_pairing_window", { open: true });
  const preview = await a.remote.offloader.previewPair("127.0.0.1", listening.peer_link_port);
  await a.remote.offloader.requestPair("127.0.0.1", listening.peer_link_port, preview.pin_sha256);
  await api.call("remote_build/approve_peer", { dashboard_id: a.remote.identityView().dashboard_id });
  await waitUntil(() => a.remote.offloader.session(preview.pin_sha256)?.queueStatus?.idle === true, 10_000);
  const session = a.remote.offloader.session(preview.pin_sha256)!;
  const bundleOut = path.join(await tempDir("bench-bundle-"), "b.tar.gz");
  execFileSync(STAND_IN, ["bundle", path.join(a.paths.configDir, "kitchen.yaml"), "-o", bundleOut], { env: { ...process.env, ESPHOME_STANDIN_FAIL: "" }, stdio: "ignore" });
  const bundle = await readFile(bundleOut);
  const samples: number[] = [];
  for (let i = 0; i < 10; i++) {
    const id = `cancel${String(i).padStart(6, "0")}`;
    let state = "";
    const off = a.bus.on("offloader_job_state_changed", (e) => { if (e.job_id === id) state = e.status; });
    await session.submitJob(id, "compile", "kitchen.yaml", bundle, "kitchen");
    await waitUntil(() => state === "running", 10_000);
    await new Promise((r) => setTimeout(r, 300)); // the process is up and hanging
    const t = performance.now();
    session.cancelJob(id);
    await waitUntil(() => state === "cancelled", 10_000, 0);
    samples.push(performance.now() - t);
    off();
  }
  api.close();
  await a.stop();
  child.kill("SIGTERM");
  samples.sort((x, y) => x - y);
  return { cancel_round_trip_median_ms: samples[Math.floor(samples.length / 2)]!, cancel_round_trip_max_ms: samples.at(-1)! };
}

const result = { ...(await handshake()), ...(await cancelLatency()), ...(await downloads()) };
process.stdout.write(JSON.stringify(result) + "\n");
