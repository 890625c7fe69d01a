/**
 * Our offloader against upstream's build-server behaviour, replayed from the
 * capture: a listener that speaks the peer link (our own handshake code, a
 * real socket) but answers with the frames upstream sent for `job-kitchen-1`,
 * in upstream's order (`queued`, `queue_status` and `running` before the
 * ack), then streams upstream's real esp32 artifacts tarball. Upstream cannot
 * run here, so its recorded frames stand in for it. Also: upstream's parse
 * policy on our side (malformed known frames are dropped, the session stays),
 * and a serial install that flashes upstream's image set.
 */
import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { WebSocketServer } from "ws";
import { describe, expect, it } from "vitest";
import { EventBus, type EventMap } from "../../../src/events.ts";
import type { FirmwareJob } from "../../../src/firmware/job.ts";
import { LocalRunner } from "../../../src/firmware/local-runner.ts";
import { FirmwareQueue } from "../../../src/firmware/queue.ts";
import { RemoteRunner, SourceRoutedRunner } from "../../../src/firmware/remote-runner.ts";
import { resolvePaths } from "../../../src/paths.ts";
import { readArtifacts } from "../../../src/remote-build/archives/artifacts.ts";
import { type SecureChannel } from "../../../src/remote-build/transport/channel.ts";
import { accept } from "../../../src/remote-build/transport/handshake.ts";
import { splitChunks } from "../../../src/remote-build/transport/chunks.ts";
import { IdentityStore } from "../../../src/remote-build/transport/identity.ts";
import { PEER_LINK_PATH } from "../../../src/remote-build/transport/messages.ts";
import { generateStaticKey } from "../../../src/remote-build/transport/noise-primitives.ts";
import { Offloader } from "../../../src/remote-build/offloader/offloader.ts";
import { BuildRouter } from "../../../src/remote-build/placement/routing.ts";
import { DEVICE_YAML, STAND_IN } from "../../helpers/builder.ts";
import { artifactsHeader, corpusFile, corpusFrames, corpusMissing } from "../../helpers/corpus.ts";
import { tempDir, waitFor } from "../../helpers/tmp.ts";

type Frame = Record<string, unknown>;

/** Upstream's frames for one job after its last chunk, up to the queue_status after its final state. */
function upstreamJobFrames(jobId: string): Frame[] {
  const records = corpusFrames();
  const start = records.findLastIndex((r) => (r.frame as Frame | null)?.["type"] === "submit_job_chunk" && (r.frame as Frame)["job_id"] === jobId);
  const session = records[start]!.session;
  const out: Frame[] = [];
  for (const r of records.slice(start + 1)) {
    if (r.session !== session || r.dir !== "upstream->peer" || r.layer !== "transport") continue;
    const frame = r.frame as Frame;
    out.push(frame);
    if (frame["type"] === "queue_status" && out.some((f) => f["job_id"] === jobId && ["completed", "failed", "cancelled"].includes(String(f["status"])))) break;
  }
  return out;
}

/** Frames of known types with bad fields, as a confused build server might send them. */
const MALFORMED: Frame[] = [
  { type: "queue_status", idle: true, running: 0, queue_depth: 0 },
  { type: "job_output", job_id: "JOB", stream: "bogus", line: "dropped\n" },
  { type: "submit_job_ack", job_id: "JOB" },
  { type: "job_state_changed", job_id: "JOB", status: "exploded", error_message: "" },
];

async function replayServer(opts: { malformed: boolean; job?: string; holdEnd?: Promise<void> }) {
  const key = generateStaticKey();
  const tarball = await readFile(corpusFile("artifacts-esp32.tar.gz"));
  const header = artifactsHeader("esp32");
  const script = upstreamJobFrames(opts.job ?? "job-kitchen-1");
  const received: Frame[] = [];
  const withJob = (f: Frame, job: string): Frame => (f["job_id"] === undefined ? f : { ...f, job_id: job });
  const onFrame = (ch: SecureChannel, f: Frame): void => {
    received.push(f);
    const job = typeof f["job_id"] === "string" ? f["job_id"] : "";
    switch (f["type"]) {
      case "ping":
        ch.send({ type: "pong", nonce: f["nonce"] });
        return;
      case "submit_job_chunk":
        if (f["is_last"] !== true) return;
        for (const [i, frame] of script.entries()) {
          // Malformed frames in the middle of upstream's stream: before the ack, and among the output lines.
          // Sent as captured (and deliberately malformed): raw JSON, not the typed send.
          if (opts.malformed && (i === 1 || i === 6)) for (const bad of MALFORMED) ch.sendEncoded(Buffer.from(JSON.stringify(withJob(bad, job))));
          ch.sendEncoded(Buffer.from(JSON.stringify(withJob(frame, job))));
        }
        return;
      case "download_artifacts":
        ch.send({ type: "artifacts_start", job_id: job, total_bytes: header.total_bytes, num_chunks: header.num_chunks, artifacts_sha256: header.artifacts_sha256, firmware_offset: header.firmware_offset });
        for (const c of splitChunks(tarball)) ch.send({ type: "artifacts_chunk", job_id: job, ...c });
        void (opts.holdEnd ?? Promise.resolve()).then(() => ch.send({ type: "artifacts_end", job_id: job, accepted: true }));
        return;
    }
  };
  const server = http.createServer();
  const wss = new WebSocketServer({ server, path: PEER_LINK_PATH, perMessageDeflate: false });
  wss.on("connection", (ws, req) => {
    void accept(ws, req, { staticPrivateKey: key }).then((a) => {
      const base = { esphome_version: "2026.6.5" };
      if (a.intent === "preview") a.respond({ intent_response: "ok", ...base }).close("done");
      else if (a.intent === "pair_request") a.respond({ intent_response: "approved", ...base }).close("done");
      else {
        const ch = a.respond({ intent_response: "ok", ...base });
        ch.send({ type: "queue_status", idle: true, running: false, queue_depth: 0 });
        ch.onMessage((m) => { onFrame(ch, m); });
      }
    }, () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    key,
    received,
    tarball,
    stop: async () => {
      for (const c of wss.clients) c.terminate();
      await new Promise((r) => server.close(r));
    },
  };
}

async function offloaderAgainst(port: number) {
  const dir = await tempDir();
  await writeFile(path.join(dir, "kitchen.yaml"), DEVICE_YAML("kitchen"));
  await writeFile(path.join(dir, "secrets.yaml"), "wifi_ssid: a\nwifi_password: b\n");
  const paths = resolvePaths({ configDir: dir });
  const bus = new EventBus();
  const events: { name: keyof EventMap; payload: unknown }[] = [];
  bus.onAny((name, payload) => events.push({ name, payload }));
  const identity = new IdentityStore({ keyFile: paths.peerLinkKeyFile, idFile: paths.identityFile });
  const offloader = new Offloader({ bus, paths, identity, label: () => "Pi" });
  await offloader.start();
  const remote = new RemoteRunner({ bus, paths, esphome: STAND_IN, offloader });
  remote.start();
  const queue = new FirmwareQueue({ bus, paths, runner: new SourceRoutedRunner(new LocalRunner({ esphome: STAND_IN, paths }), remote) });
  queue.setRouter(new BuildRouter({ offloader, wake: () => { queue.wake(); } }));
  for (const n of ["offloader_peer_link_opened", "offloader_queue_status_changed"] as const) bus.on(n, () => { queue.wake(); });
  await queue.start();
  const preview = await offloader.previewPair("127.0.0.1", port);
  await offloader.requestPair("127.0.0.1", port, preview.pin_sha256, "upstream");
  await waitFor(() => offloader.session(preview.pin_sha256)?.queueStatus?.idle === true, 5000, "a connected, idle build server");
  const finished = (id: string): Promise<FirmwareJob> =>
    waitFor(() => ["completed", "failed", "cancelled"].includes(queue.get(id)!.status), 20_000, `job ${id}`).then(() => queue.get(id)!);
  return {
    dir, paths, events, queue, finished, offloader, pin: preview.pin_sha256,
    stop: async () => { await queue.stop(); await remote.stop(); await offloader.stop(); },
  };
}

describe.skipIf(corpusMissing())("our offloader against upstream's recorded build server", () => {
  it("takes queued, queue_status and running before the ack, upstream's output and its artifacts, and materialises them", async () => {
    const up = await replayServer({ malformed: false });
    const o = await offloaderAgainst(up.port);
    const job = await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "compile" });
    const done = await o.finished(job.job_id);
    expect(done).toMatchObject({ status: "completed", source: "remote", exit_code: 0 });
    expect((await o.queue.output(job.job_id)).join("")).toContain("INFO ESPHome 2026.6.5");
    // Upstream's images, byte for byte, at their build-tree paths here.
    const read = await readArtifacts(up.tarball);
    for (const [member, data] of read.files) {
      if (member.startsWith(".pioenvs/")) expect(await readFile(path.join(o.paths.buildDir("kitchen"), member)), member).toEqual(data);
    }
    expect(up.received.find((f) => f["type"] === "submit_job")).toMatchObject({ configuration_filename: "kitchen.yaml", device_name: "kitchen", device_friendly_name: "kitchen" });
    await o.stop();
    await up.stop();
  });

  it("ends a download at artifacts_end, as upstream's offloader does, not at the last chunk", async () => {
    let release = (): void => undefined;
    const up = await replayServer({ malformed: false, holdEnd: new Promise<void>((r) => { release = r; }) });
    const o = await offloaderAgainst(up.port);
    const session = o.offloader.session(o.pin)!;
    let done = false;
    const download = session.downloadArtifacts("job-one").then((b) => { done = true; return b; });
    await waitFor(() => up.received.some((f) => f["type"] === "download_artifacts"), 5000, "the request");
    // Every chunk is in and verified; the end frame is held back.
    await new Promise((r) => setTimeout(r, 300));
    expect(done).toBe(false);
    release();
    expect((await download).equals(up.tarball)).toBe(true);
    await o.stop();
    await up.stop();
  });

  it("takes upstream's failure: a 20,012-character output line and an empty error_message", async () => {
    const up = await replayServer({ malformed: false, job: "job-longline-1" });
    const o = await offloaderAgainst(up.port);
    const job = await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "compile" });
    const done = await o.finished(job.job_id);
    // Upstream says nothing in error_message for an ordinary failure; the user still reads why.
    expect(done).toMatchObject({ status: "failed", source: "remote", error: "remote build on upstream: compile failed" });
    const long = upstreamJobFrames("job-longline-1").find((f) => String(f["line"]).length > 20_000)!;
    expect((await o.queue.output(job.job_id)).join("")).toContain(String(long["line"]).slice(0, 2000));
    expect(o.events.filter((e) => e.name === "offloader_peer_link_closed")).toEqual([]);
    await o.stop();
    await up.stop();
  });

  it("drops malformed known frames with a log line and keeps the session, as upstream does", async () => {
    const up = await replayServer({ malformed: true });
    const o = await offloaderAgainst(up.port);
    const job = await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "compile" });
    expect(await o.finished(job.job_id)).toMatchObject({ status: "completed" });
    expect(o.events.filter((e) => e.name === "offloader_peer_link_closed")).toEqual([]);
    expect((await o.queue.output(job.job_id)).join("")).not.toContain("dropped");
    // Nothing we sent was a terminate.
    expect(up.received.filter((f) => f["type"] === "terminate")).toEqual([]);
    await o.stop();
    await up.stop();
  });

  it("installs over a serial port with upstream's whole esp32 image set, at its offsets, idedata from the cache", async () => {
    const up = await replayServer({ malformed: false });
    const record = path.join(await tempDir(), "record.jsonl");
    Object.assign(process.env, { ESPHOME_STANDIN_SERIAL_OK: "1", ESPHOME_STANDIN_NO_TOOLCHAIN: "1", ESPHOME_STANDIN_RECORD: record, ESPHOME_STANDIN_UPLOAD_SECONDS: "0", ESPHOME_STANDIN_FAIL: "" });
    try {
      const o = await offloaderAgainst(up.port);
      const job = await o.queue.enqueue({ configuration: "kitchen.yaml", job_type: "install", port: "/dev/ttyUSB0" });
      expect(await o.finished(job.job_id)).toMatchObject({ status: "completed", source: "remote" });
      const calls = (await readFile(record, "utf8")).trim().split("\n").map((l) => JSON.parse(l) as { command: string; argv: string[]; images: unknown[]; idedata_source: string });
      const upload = calls.find((c) => c.command === "upload")!;
      expect(upload.argv).not.toContain("--file");
      expect(upload.idedata_source).toBe("cache");
      const read = await readArtifacts(up.tarball);
      const sha = (member: string): string => createHash("sha256").update(read.files.get(member)!).digest("hex");
      const at = (name: string): string => path.join(o.paths.buildDir("kitchen"), ".pioenvs", "kitchen", name);
      expect(upload.images).toEqual([
        { offset: "0x10000", path: at("firmware.bin"), sha256: sha(".pioenvs/kitchen/firmware.bin") },
        { offset: "0x1000", path: at("bootloader.bin"), sha256: sha(".pioenvs/kitchen/bootloader.bin") },
        { offset: "0x8000", path: at("partitions.bin"), sha256: sha(".pioenvs/kitchen/partitions.bin") },
        { offset: "0xe000", path: at("ota_data_initial.bin"), sha256: sha(".pioenvs/kitchen/ota_data_initial.bin") },
      ]);
      await o.stop();
    } finally {
      for (const k of ["ESPHOME_STANDIN_SERIAL_OK", "ESPHOME_STANDIN_NO_TOOLCHAIN", "ESPHOME_STANDIN_RECORD"]) Reflect.deleteProperty(process.env, k);
      await up.stop();
    }
  });
});
