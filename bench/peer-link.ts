/**
 * Peer-link benchmarks, on loopback, in one run:
 * (a) artifact download of ~1, 16 and 64 MiB from a build server running as
 *     its own process, packed when its compile completed (chunk, encrypt,
 *     send; receive, decrypt, decode, verify), vs the floor of the wire format
 *     itself (its framing, base64, encryption and hashing, no I/O; see
 *     format-floor.ts), measured each side alone and both sides at once in two
 *     processes, and vs the same bytes over a plain WebSocket;
 * (b) Noise XX handshake time (a full `preview` round trip, connect included);
 * (c) cancel latency: `cancelJob` on the offloader until the build server's
 *     process has been signalled and the build server confirms the cancel.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { WebSocket } from "ws";
import type { Builder } from "../src/builder.ts";
import { initiate } from "../src/remote-build/transport/handshake.ts";
import { concurrentFormatFloor, formatFloor } from "./format-floor.ts";
import { STAND_IN, builder, deviceFolder, tempDir, waitUntil, ROOT } from "./lib.ts";

process.env.ESPHOME_STANDIN_COMPILE_SECONDS = "0";
process.env.ESPHOME_STANDIN_UPLOAD_SECONDS = "0";
process.env.ESPHOME_STANDIN_FAIL = "";

/** Timed rounds per size (BENCH_PEER_LINK_ROUNDS); best and median are reported. */
const ROUNDS = Math.max(1, Number(process.env.BENCH_PEER_LINK_ROUNDS ?? "7"));

/** CPU time (user + system) a process has used so far, in ms, from /proc (Linux). */
function processCpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  // utime and stime are fields 14 and 15 of the line, in clock ticks (100 a second on Linux).
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function median(samples: number[]): number {
  const sorted = [...samples].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/**
 * The plain transport: the same bytes in 32 KiB binary messages over a plain
 * loopback WebSocket, sent by another process (as the build server is one).
 */
async function plainWebSocket(size: number): Promise<number[]> {
  const child = spawn(process.execPath, [path.join(ROOT, "bench", "plain-ws-server.ts"), String(size)], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    const port = await new Promise<number>((resolve) => {
      child.stdout.once("data", (d: Buffer) => { resolve(Number(d.toString().trim())); });
    });
    const samples: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
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
      samples.push(performance.now() - t);
      ws.close();
    }
    return samples;
  } finally {
    child.kill("SIGTERM");
  }
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

/** BENCH_PEER_LINK_SIZES=16,64 measures only those sizes (MiB), for profiling. */
const SIZES = (process.env.BENCH_PEER_LINK_SIZES ?? "1,16,64").split(",").map(Number);

/**
 * Artifact downloads as the issue means them: from `downloadArtifacts` on the
 * offloader until the tarball is assembled and its SHA-256 checked there,
 * from a build server process that packed it when the compile completed (an
 * untimed first download waits for that pack if it is still running; its time
 * is reported on its own). Then ROUNDS timed downloads; best and median.
 */
async function downloads(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const mib of SIZES) {
    // The stand-in writes four images of this size (firmware, OTA and factory images, ELF).
    const server = await spawnBuildServer({ ESPHOME_STANDIN_FIRMWARE_BYTES: String(Math.floor((mib * 1024 * 1024) / 4.2)) });
    const a = await builder(await deviceFolder(["kitchen"]), "A");
    try {
      const pin = await pairWithProcess(a, server);
      // Routed to the idle build server: the compile and its artifacts are there.
      const job = await a.queue.enqueue({ configuration: "kitchen.yaml", job_type: "compile" });
      await waitUntil(() => a.queue.get(job.job_id)?.status === "completed", 60_000, 0);
      const session = a.remote.offloader.session(pin);
      if (session === undefined) throw new Error("no session");
      let t = performance.now();
      const size = (await session.downloadArtifacts(job.job_id)).length;
      out[`download_${mib}_mib_first_ms`] = performance.now() - t;
      const samples: number[] = [];
      const cpu = { ours: process.cpuUsage(), theirs: processCpuMs(server.child.pid!) };
      for (let i = 0; i < ROUNDS; i++) {
        t = performance.now();
        if ((await session.downloadArtifacts(job.job_id)).length !== size) throw new Error("the tarball changed between downloads");
        samples.push(performance.now() - t);
      }
      const ours = process.cpuUsage(cpu.ours);
      // CPU per download on each side (the build server's in 10 ms ticks: a rough figure at 1 MiB).
      out[`download_${mib}_mib_offloader_cpu_ms`] = (ours.user + ours.system) / 1000 / ROUNDS;
      out[`download_${mib}_mib_build_server_cpu_ms`] = (processCpuMs(server.child.pid!) - cpu.theirs) / ROUNDS;
      const plain = await plainWebSocket(size);
      const floor = formatFloor(size);
      // Both sides on their own cores: the slower side sets the pace.
      const floorMs = Math.max(floor.sender, floor.receiver);
      // Both sides at once in two processes, sharing the machine as a real download does.
      const both = await concurrentFormatFloor(size, ROUNDS);
      out[`floor_concurrent_${mib}_mib_ms`] = both.best;
      out[`floor_concurrent_${mib}_mib_median_ms`] = both.median;
      out[`floor_concurrent_sender_${mib}_mib_ms`] = both.sender;
      out[`floor_concurrent_receiver_${mib}_mib_ms`] = both.receiver;
      out[`download_${mib}_mib_vs_concurrent_floor`] = both.best / Math.min(...samples);
      out[`download_${mib}_mib_median_vs_concurrent_floor`] = both.median / median(samples);
      out[`download_${mib}_mib_bytes`] = size;
      out[`download_${mib}_mib_ms`] = Math.min(...samples);
      out[`download_${mib}_mib_median_ms`] = median(samples);
      out[`plain_${mib}_mib_ms`] = Math.min(...plain);
      out[`floor_sender_${mib}_mib_ms`] = floor.sender;
      out[`floor_receiver_${mib}_mib_ms`] = floor.receiver;
      out[`download_${mib}_mib_vs_plain`] = Math.min(...plain) / Math.min(...samples);
      out[`floor_${mib}_mib_vs_plain`] = Math.min(...plain) / floorMs;
      out[`download_${mib}_mib_vs_floor`] = floorMs / Math.min(...samples);
      out[`download_${mib}_mib_median_vs_floor`] = floorMs / median(samples);
    } finally {
      await a.stop();
      server.child.kill("SIGTERM");
    }
  }
  out.rounds = ROUNDS;
  out.load_average_1m = os.loadavg()[0]!;
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
    // The job's own handle, as the remote runner holds it: taken before the submit, so no state is missed.
    const job = session.track(id);
    let state = "";
    job.onState((status) => { state = status; });
    await session.submitJob(id, "compile", "kitchen.yaml", bundle, "kitchen");
    await waitUntil(() => state === "running", 10_000);
    await new Promise((r) => setTimeout(r, 300)); // the process is up and hanging
    const t = performance.now();
    session.cancelJob(id);
    await waitUntil(() => state === "cancelled", 10_000, 0);
    samples.push(performance.now() - t);
    job.close();
  }
  await a.stop();
  server.child.kill("SIGTERM");
  samples.sort((x, y) => x - y);
  return { cancel_round_trip_median_ms: samples[Math.floor(samples.length / 2)]!, cancel_round_trip_max_ms: samples.at(-1)! };
}

// BENCH_PEER_LINK_PARTS=download (comma-separated: handshake, cancel, download) runs only those parts, for profiling.
const parts = (process.env.BENCH_PEER_LINK_PARTS ?? "handshake,cancel,download").split(",");
const result = {
  ...(parts.includes("handshake") ? await handshake() : {}),
  ...(parts.includes("cancel") ? await cancelLatency() : {}),
  ...(parts.includes("download") ? await downloads() : {}),
};
process.stdout.write(JSON.stringify(result) + "\n");
