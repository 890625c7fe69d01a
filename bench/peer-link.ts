/**
 * Peer-link benchmarks, on loopback, in one run:
 * (a) artifact download of ~1, 16 and 64 MiB from a build server running as
 *     its own process (pack, chunk, encrypt, decrypt, verify) vs the same
 *     bytes over a plain WebSocket without encryption from another process,
 *     and vs the floor of the wire format itself (its hashing, framing and
 *     encryption on one core, no I/O);
 * (b) Noise XX handshake time (a full `preview` round trip, connect included);
 * (c) cancel latency: `cancelJob` on the offloader until the build server's
 *     process has been signalled and the build server confirms the cancel.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createCipheriv, createDecipheriv, createHash, createSecretKey, randomBytes } from "node:crypto";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { readFile } from "node:fs/promises";
import { WebSocket } from "ws";
import type { Builder } from "../src/builder.ts";
import { initiate } from "../src/remote-build/transport/channel.ts";
import { CHUNK_SIZE, encodeChunkFrame } from "../src/remote-build/transport/chunks.ts";
import { storedGzipSize, writeStoredGzip } from "../src/remote-build/transport/tar-writer.ts";
import { STAND_IN, builder, deviceFolder, tempDir, waitUntil, ROOT } from "./lib.ts";

process.env.ESPHOME_STANDIN_COMPILE_SECONDS = "0";
process.env.ESPHOME_STANDIN_UPLOAD_SECONDS = "0";
process.env.ESPHOME_STANDIN_FAIL = "";

/**
 * The limit: the same bytes in 32 KiB binary messages over a plain loopback
 * WebSocket, sent by another process (as the build server is one).
 */
async function plainWebSocket(size: number): Promise<number> {
  const child = spawn(process.execPath, [path.join(ROOT, "bench", "plain-ws-server.ts"), String(size)], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    const port = await new Promise<number>((resolve) => {
      child.stdout.once("data", (d: Buffer) => { resolve(Number(d.toString().trim())); });
    });
    let best = Infinity;
    for (let i = 0; i < 5; i++) {
      const ws = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false });
      await new Promise((r) => ws.once("open", r));
      let received = 0;
      const t = performance.now();
      await new Promise<void>((resolve) => {
        ws.on("message", (d: Buffer) => {
          received += d.length;
          if (received >= size) resolve();
        });
        ws.send("go");
      });
      best = Math.min(best, performance.now() - t);
      ws.close();
    }
    return best;
  } finally {
    child.kill("SIGTERM");
  }
}

/**
 * The wire format's own work for `size` bytes, with no I/O: what any
 * implementation must do at least. The build server wraps the bytes in a gzip
 * tarball (stored: one copy and a CRC-32, the cheapest gzip there is), hashes
 * it, and per 32 KiB chunk frames base64 in JSON and encrypts; the offloader
 * decrypts, parses the JSON, decodes the base64 and hashes. Each side best of
 * five; with each side on its own core the transfer cannot beat the slower.
 */
function formatFloor(size: number): { sender: number; receiver: number } {
  const bytes = randomBytes(size);
  const key = createSecretKey(randomBytes(32));
  const nonce = Buffer.alloc(12);
  let sender = Infinity;
  let frames: { ct: Buffer; tag: Buffer }[] = [];
  for (let round = 0; round < 5; round++) {
    const t = performance.now();
    const tarball = Buffer.allocUnsafe(storedGzipSize(size));
    writeStoredGzip([bytes], size, tarball, 0);
    createHash("sha256").update(tarball).digest();
    frames = [];
    for (let off = 0, i = 0; off < tarball.length; off += CHUNK_SIZE, i++) {
      const frame = encodeChunkFrame("artifacts_chunk", "job", i, tarball.subarray(off, off + CHUNK_SIZE), off + CHUNK_SIZE >= tarball.length);
      const enc = createCipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
      const ct = enc.update(frame);
      enc.final();
      frames.push({ ct, tag: enc.getAuthTag() });
    }
    sender = Math.min(sender, performance.now() - t);
  }
  let receiver = Infinity;
  for (let round = 0; round < 5; round++) {
    const t = performance.now();
    const target = Buffer.allocUnsafe(storedGzipSize(size));
    let at = 0;
    for (const { ct, tag } of frames) {
      const dec = createDecipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
      dec.setAuthTag(tag);
      const plain = dec.update(ct);
      dec.final();
      const message = JSON.parse(plain.toString("utf8")) as { data_b64: string };
      at += target.write(message.data_b64, at, "base64");
    }
    createHash("sha256").update(target.subarray(0, at)).digest();
    receiver = Math.min(receiver, performance.now() - t);
  }
  return { sender, receiver };
}

/** Spawns a builder as its own process (a build server on loopback); resolves with its ports. */
async function spawnBuildServer(env: Record<string, string>): Promise<{ child: ChildProcess; port: number; peerLinkPort: number }> {
  const dir = await deviceFolder([]);
  const child = spawn(process.execPath, [path.join(ROOT, "src", "main.ts"), "--config-dir", dir, "--port", "0", "--peer-link-port", "0", "--peer-link-host", "127.0.0.1", "--esphome", STAND_IN, "--no-mdns", "--log-level", "error"], {
    env: { ...process.env, ...env },
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
  return { child, port: listening.port, peerLinkPort: listening.peer_link_port };
}

/** Pairs offloader `a` with a build server process through its panel API; resolves with the pin. */
async function pairWithProcess(a: Builder, server: { port: number; peerLinkPort: number }): Promise<string> {
  const { ApiClient } = await import("../test/helpers/api-client.ts");
  const api = await ApiClient.connect(server.port);
  await api.call("remote_build/set_pairing_window", { open: true });
  const preview = await a.remote.offloader.previewPair("127.0.0.1", server.peerLinkPort);
  await a.remote.offloader.requestPair("127.0.0.1", server.peerLinkPort, preview.pin_sha256);
  await api.call("remote_build/approve_peer", { dashboard_id: a.remote.identityView().dashboard_id });
  api.close();
  await waitUntil(() => a.remote.offloader.session(preview.pin_sha256)?.queueStatus?.idle === true, 10_000);
  return preview.pin_sha256;
}

async function downloads(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const mib of [1, 16, 64]) {
    // The stand-in writes four images of this size (firmware, OTA and factory images, ELF).
    const server = await spawnBuildServer({ ESPHOME_STANDIN_FIRMWARE_BYTES: String(Math.floor((mib * 1024 * 1024) / 4.2)) });
    const a = await builder(await deviceFolder(["kitchen"]), "A");
    try {
      const pin = await pairWithProcess(a, server);
      // Routed to the idle build server: the compile and its artifacts are there.
      const job = await a.queue.enqueue({ configuration: "kitchen.yaml", job_type: "compile" });
      await waitUntil(() => a.queue.get(job.job_id)?.status === "completed", 60_000);
      const session = a.remote.offloader.session(pin);
      if (session === undefined) throw new Error("no session");
      let best = Infinity;
      let size = 0;
      for (let i = 0; i < 5; i++) {
        const t = performance.now();
        size = (await session.downloadArtifacts(job.job_id)).length;
        best = Math.min(best, performance.now() - t);
      }
      const plain = await plainWebSocket(size);
      const floor = formatFloor(size);
      out[`download_${mib}_mib_bytes`] = size;
      out[`download_${mib}_mib_ms`] = best;
      out[`plain_${mib}_mib_ms`] = plain;
      out[`floor_sender_${mib}_mib_ms`] = floor.sender;
      out[`floor_receiver_${mib}_mib_ms`] = floor.receiver;
      out[`download_${mib}_mib_vs_plain`] = plain / best;
      // Both sides on their own cores: the slower side sets the pace.
      out[`floor_${mib}_mib_vs_plain`] = plain / Math.max(floor.sender, floor.receiver);
      out[`download_${mib}_mib_vs_floor`] = Math.max(floor.sender, floor.receiver) / best;
    } finally {
      await a.stop();
      server.child.kill("SIGTERM");
    }
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
  const server = await spawnBuildServer({ ESPHOME_STANDIN_FAIL: "hang" });
  const a = await builder(await deviceFolder(["kitchen"]), "A");
  const pin = await pairWithProcess(a, server);
  const session = a.remote.offloader.session(pin)!;
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
  await a.stop();
  server.child.kill("SIGTERM");
  samples.sort((x, y) => x - y);
  return { cancel_round_trip_median_ms: samples[Math.floor(samples.length / 2)]!, cancel_round_trip_max_ms: samples.at(-1)! };
}

const result = { ...(await handshake()), ...(await cancelLatency()), ...(await downloads()) };
process.stdout.write(JSON.stringify(result) + "\n");
