/**
 * Hostile input at the build server's peer-link listener: every bad frame is
 * answered with its documented error (or the session ends as
 * malformed_frame), and nothing is written or queued.
 */
import { createHash } from "node:crypto";
import { readdir } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { Builder } from "../../../src/builder.ts";
import { CHUNK_SIZE, splitChunks } from "../../../src/remote-build/transport/chunks.ts";
import { initiate } from "../../../src/remote-build/transport/handshake.ts";
import { NoiseHandshake } from "../../../src/remote-build/transport/noise.ts";
import { generateStaticKey } from "../../../src/remote-build/transport/noise-primitives.ts";
import { startBuilder } from "../../helpers/builder.ts";
import { MiB, file, tgzOf, zeroMemberBomb } from "../transport/tar-fixtures.ts";

const DASHBOARD_ID = "offloaderAAAAAAAAAAAAAAAAAAAAAAA";

interface Raw {
  ws: WebSocket;
  send(obj: unknown): void;
  sendRaw(data: Buffer | string): void;
  /** Decrypted frames received so far. */
  frames: Record<string, unknown>[];
  closed: Promise<void>;
  next(pred: (f: Record<string, unknown>) => boolean, ms?: number): Promise<Record<string, unknown>>;
}

/** A hand-driven client: handshake by hand so the test can send anything afterwards. */
async function raw(port: number, key: Uint8Array, intent: string, payload: unknown): Promise<Raw & { response: Record<string, unknown> }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/remote-build/peer-link`);
  const queue: Buffer[] = [];
  let wake: (() => void) | null = null;
  ws.on("message", (d: Buffer) => { queue.push(d); wake?.(); });
  const closed = new Promise<void>((r) => ws.on("close", () => { r(); wake?.(); }));
  await new Promise((r, j) => { ws.once("open", r); ws.once("error", j); });
  const read = async (): Promise<Buffer> => {
    while (queue.length === 0) await new Promise<void>((r) => { wake = r; setTimeout(r, 50); });
    return queue.shift()!;
  };
  const hs = NoiseHandshake.initiator(key);
  ws.send(hs.writeMessage(Buffer.from(JSON.stringify({ intent }))));
  hs.readMessage(await read());
  ws.send(hs.writeMessage(Buffer.from(JSON.stringify(payload))));
  const { send: tx, receive: rx } = hs.split();
  const response = JSON.parse(Buffer.from(rx.decrypt(await read())).toString()) as Record<string, unknown>;
  const frames: Record<string, unknown>[] = [];
  ws.removeAllListeners("message");
  for (const q of queue.splice(0)) frames.push(JSON.parse(Buffer.from(rx.decrypt(q)).toString()) as Record<string, unknown>);
  const listeners = new Set<() => void>();
  ws.on("message", (d: Buffer) => {
    frames.push(JSON.parse(Buffer.from(rx.decrypt(d)).toString()) as Record<string, unknown>);
    for (const l of [...listeners]) l();
  });
  return {
    ws,
    response,
    frames,
    closed,
    send: (obj) => { ws.send(tx.encrypt(Buffer.from(JSON.stringify(obj)))); },
    sendRaw: (data) => { ws.send(data); },
    next: (pred, ms = 5000) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          const f = frames.find(pred);
          if (f !== undefined) { listeners.delete(check); clearTimeout(timer); resolve(f); }
        };
        const timer = setTimeout(() => { listeners.delete(check); reject(new Error("no such frame")); }, ms);
        listeners.add(check);
        check();
      }),
  };
}

/** One handshake with exactly these msg1 and msg3 payload bytes; the decrypted intent response, or null if the connection closed first. */
async function handshakeBytes(port: number, msg1: Buffer, msg3: Buffer): Promise<Record<string, unknown> | null> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/remote-build/peer-link`);
  const queue: Buffer[] = [];
  let wake: (() => void) | null = null;
  let closed = false;
  ws.on("message", (d: Buffer) => { queue.push(d); wake?.(); });
  ws.on("close", () => { closed = true; wake?.(); });
  await new Promise((r, j) => { ws.once("open", r); ws.once("error", j); });
  const read = async (): Promise<Buffer | null> => {
    while (queue.length === 0 && !closed) await new Promise<void>((r) => { wake = r; });
    return queue.shift() ?? null;
  };
  try {
    const hs = NoiseHandshake.initiator(generateStaticKey());
    ws.send(hs.writeMessage(msg1));
    const msg2 = await read();
    if (msg2 === null) return null;
    hs.readMessage(msg2);
    ws.send(hs.writeMessage(msg3));
    const reply = await read();
    return reply === null ? null : (JSON.parse(Buffer.from(hs.split().receive.decrypt(reply)).toString()) as Record<string, unknown>);
  } finally {
    ws.terminate();
  }
}

async function approvedPeer(builder: Builder, port: number): Promise<Uint8Array> {
  const key = generateStaticKey();
  builder.remote.receiver.setPairingWindow("test", true);
  const r = await raw(port, key, "pair_request", { dashboard_id: DASHBOARD_ID, label: "evil twin?" });
  expect(r.response.intent_response).toBe("pending");
  builder.remote.receiver.approve(DASHBOARD_ID);
  return key;
}

async function session(): Promise<{ builder: Builder; s: Raw; port: number }> {
  const { builder } = await startBuilder();
  const port = builder.remote.receiver.port!;
  const key = await approvedPeer(builder, port);
  const s = await raw(port, key, "peer_link", { dashboard_id: DASHBOARD_ID });
  expect(s.response.intent_response).toBe("ok");
  await s.next((f) => f.type === "queue_status");
  return { builder, s, port };
}

async function remoteBuildsWritten(builder: Builder): Promise<string[]> {
  return readdir(builder.paths.remoteBuildsDir, { recursive: true }).catch(() => []);
}

describe("handshake and intents", () => {
  it("answers an unknown intent with rejected/bad_intent", async () => {
    const { builder } = await startBuilder();
    const r = await raw(builder.remote.receiver.port!, generateStaticKey(), "launch_rockets", {});
    expect(r.response).toMatchObject({ intent_response: "rejected", reason: "bad_intent" });
  });

  it.each([
    ["empty", Buffer.alloc(0)],
    ["not JSON", Buffer.from("hello")],
    ["a JSON array", Buffer.from("[1]")],
    ["without a string intent", Buffer.from(JSON.stringify({ intent: 7 }))],
    ["with an intent over 64 characters", Buffer.from(JSON.stringify({ intent: "p".repeat(65) }))],
  ])("completes the handshake after a msg1 that is %s and answers rejected/bad_intent (upstream's rule)", async (_what, msg1) => {
    const { builder } = await startBuilder();
    builder.remote.receiver.setPairingWindow("t", true);
    const response = await handshakeBytes(builder.remote.receiver.port!, msg1, Buffer.from(JSON.stringify({ dashboard_id: DASHBOARD_ID, label: "x" })));
    expect(response).toMatchObject({ intent_response: "rejected", reason: "bad_intent" });
    expect(builder.remote.receiver.peers()).toEqual([]);
  });

  it("reads a msg3 that is not a JSON object as {} (upstream's rule): a preview is answered, a pair_request lacks its dashboard_id", async () => {
    const { builder } = await startBuilder();
    builder.remote.receiver.setPairingWindow("t", true);
    const port = builder.remote.receiver.port!;
    for (const msg3 of [Buffer.from("hello"), Buffer.from("[1,2]"), Buffer.from("\"dashboard\""), Buffer.from([0xff, 0xfe])]) {
      expect(await handshakeBytes(port, Buffer.from(JSON.stringify({ intent: "preview" })), msg3)).toMatchObject({ intent_response: "ok" });
      expect(await handshakeBytes(port, Buffer.from(JSON.stringify({ intent: "pair_request" })), msg3)).toMatchObject({ intent_response: "rejected", reason: "bad_dashboard_id" });
    }
    expect(builder.remote.receiver.peers()).toEqual([]);
  });

  it.each([["missing", {}], ["too long", { dashboard_id: "a".repeat(65) }], ["not base64url", { dashboard_id: "../../etc" }]])(
    "rejects a %s dashboard_id before changing anything",
    async (_what, payload) => {
      const { builder } = await startBuilder();
      builder.remote.receiver.setPairingWindow("t", true);
      const r = await raw(builder.remote.receiver.port!, generateStaticKey(), "pair_request", payload);
      expect(r.response).toMatchObject({ intent_response: "rejected", reason: "bad_dashboard_id" });
      expect(builder.remote.receiver.peers()).toEqual([]);
    },
  );

  it("refuses pairing while the window is closed, and creates nothing", async () => {
    const { builder } = await startBuilder();
    const r = await raw(builder.remote.receiver.port!, generateStaticKey(), "pair_request", { dashboard_id: DASHBOARD_ID });
    expect(r.response.intent_response).toBe("no_pairing_window");
    expect(builder.remote.receiver.peers()).toEqual([]);
  });

  it("refuses a known dashboard_id with a different key and keeps the approved key", async () => {
    const { builder } = await startBuilder();
    const port = builder.remote.receiver.port!;
    await approvedPeer(builder, port);
    const before = builder.remote.receiver.peers();
    for (const intent of ["pair_request", "peer_link", "pair_status"]) {
      const r = await raw(port, generateStaticKey(), intent, { dashboard_id: DASHBOARD_ID });
      expect(r.response).toMatchObject({ intent_response: "rejected", reason: "pin_mismatch" });
    }
    expect(builder.remote.receiver.peers()).toEqual(before);
  });

  it("previews without creating any state", async () => {
    const { builder } = await startBuilder();
    const r = await raw(builder.remote.receiver.port!, generateStaticKey(), "preview", {});
    expect(r.response.intent_response).toBe("ok");
    expect(builder.remote.receiver.peers()).toEqual([]);
  });

  it("drops a connection that sends text or garbage instead of a handshake", async () => {
    const { builder } = await startBuilder();
    const port = builder.remote.receiver.port!;
    for (const junk of ["hello", Buffer.alloc(10), Buffer.alloc(70 * 1024)]) {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/remote-build/peer-link`);
      await new Promise((r) => ws.once("open", r));
      ws.send(junk);
      await new Promise<void>((r) => ws.once("close", () => { r(); }));
    }
    expect(builder.remote.receiver.peers()).toEqual([]);
  });

  it("a client checking the pin never sends msg3 to the wrong key", async () => {
    const { builder } = await startBuilder();
    builder.remote.receiver.setPairingWindow("t", true);
    await expect(
      initiate({ host: "127.0.0.1", port: builder.remote.receiver.port!, staticPrivateKey: generateStaticKey(), intent: "pair_request", payload: { dashboard_id: DASHBOARD_ID }, expectedPin: "0".repeat(64) }),
    ).rejects.toMatchObject({ code: "pin_mismatch" });
    await new Promise((r) => setTimeout(r, 100));
    expect(builder.remote.receiver.peers()).toEqual([]); // the request never arrived
  });
});

describe("session frames", () => {
  it.each([
    ["a text frame", (s: Raw) => { s.sendRaw("{\"type\":\"ping\",\"nonce\":1}"); }],
    ["an oversize frame", (s: Raw) => { s.sendRaw(Buffer.alloc(61 * 1024)); }],
    ["garbage ciphertext", (s: Raw) => { s.sendRaw(Buffer.from("not noise at all")); }],
    ["JSON that is not an object", (s: Raw) => { s.send([1, 2, 3]); }],
    ["a download_artifacts without job_id", (s: Raw) => { s.send({ type: "download_artifacts" }); }],
  ])("ends the session as malformed_frame on %s", async (_what, act) => {
    const { s, builder } = await session();
    act(s);
    await s.closed;
    expect(s.frames.at(-1)).toEqual({ type: "terminate", reason: "malformed_frame" });
    expect(builder.queue.list()).toEqual([]);
  });

  it("ignores unknown message types and answers ping with the same nonce, whatever its type", async () => {
    const { s } = await session();
    s.send({ type: "from_the_future", x: 1 });
    s.send({ no_type: true });
    s.send({ type: "ping", nonce: 77 });
    expect(await s.next((f) => f.type === "pong")).toEqual({ type: "pong", nonce: 77 });
    s.frames.length = 0;
    s.send({ type: "ping" });
    expect(await s.next((f) => f.type === "pong")).toEqual({ type: "pong", nonce: null });
    s.frames.length = 0;
    s.send({ type: "ping", nonce: "abc" });
    expect(await s.next((f) => f.type === "pong")).toEqual({ type: "pong", nonce: "abc" });
  });

  it("drops a malformed cancel_job silently and keeps the session (upstream's policy)", async () => {
    const { s } = await session();
    s.send({ type: "cancel_job", job_id: 42 });
    s.send({ type: "cancel_job" });
    s.send({ type: "cancel_job", job_id: "never-submitted" });
    s.send({ type: "ping", nonce: 5 });
    expect(await s.next((f) => f.type === "pong")).toEqual({ type: "pong", nonce: 5 });
    expect(s.frames.filter((f) => f.type !== "pong" && f.type !== "queue_status")).toEqual([]);
  });

  it.each([
    ["a header with a boolean for an integer", (s: Raw) => { s.send(header({ num_chunks: true })); }, "invalid_header"],
    ["a header without bundle_sha256", (s: Raw) => { s.send({ ...header(), bundle_sha256: undefined }); }, "invalid_header"],
    ["a chunk without is_last", (s: Raw) => { s.send({ type: "submit_job_chunk", job_id: "job1", chunk_index: 0, data_b64: "QUFB" }); }, "invalid_chunk"],
    [
      "a chunk that is not base64",
      (s: Raw) => {
        s.send(header({ total_bundle_bytes: 3, num_chunks: 1, bundle_sha256: createHash("sha256").update("AAA").digest("hex") }));
        s.send({ type: "submit_job_chunk", job_id: "job1", chunk_index: 0, data_b64: "!!!!", is_last: true });
      },
      "chunk_decode_failed",
    ],
  ])("refuses %s and then ends the session as malformed_frame", async (_what, act, reason) => {
    const { s, builder } = await session();
    act(s);
    expect(await s.next((f) => f.type === "submit_job_ack")).toEqual({ type: "submit_job_ack", job_id: "job1", accepted: false, reason });
    await s.closed;
    expect(s.frames.at(-1)).toEqual({ type: "terminate", reason: "malformed_frame" });
    expect(builder.queue.list()).toEqual([]);
  });

  const header = (over: Record<string, unknown> = {}) => ({
    type: "submit_job",
    job_id: "job1",
    configuration_filename: "kitchen.yaml",
    target: "compile",
    total_bundle_bytes: 10,
    num_chunks: 1,
    bundle_sha256: "0".repeat(64),
    ...over,
  });

  it.each([
    ["target upload", header({ target: "upload" }), "upload_unsupported"],
    ["an unknown target", header({ target: "flash" }), "invalid_header"],
    ["a filename with a path", header({ configuration_filename: "../kitchen.yaml" }), "invalid_header"],
    ["a filename with a wrong extension", header({ configuration_filename: "kitchen.txt" }), "invalid_header"],
    ["an oversize bundle", header({ total_bundle_bytes: 129 * 1024 * 1024, num_chunks: 4128 }), "oversized"],
    ["an empty bundle", header({ total_bundle_bytes: 0, num_chunks: 0 }), "empty_bundle"],
    ["a wrong chunk count", header({ total_bundle_bytes: 10, num_chunks: 3 }), "chunk_count_mismatch"],
    ["a bad hash", header({ bundle_sha256: "xyz" }), "invalid_header"],
  ])("refuses a submit with %s", async (_what, frame, reason) => {
    const { s, builder } = await session();
    s.send(frame);
    expect(await s.next((f) => f.type === "submit_job_ack")).toEqual({ type: "submit_job_ack", job_id: "job1", accepted: false, reason });
    expect(builder.queue.list()).toEqual([]);
    expect(await remoteBuildsWritten(builder)).toEqual([]);
  });

  it("refuses chunks without a submit, for another job, out of order and with a hash mismatch", async () => {
    const { s, builder } = await session();
    const data = Buffer.alloc(CHUNK_SIZE + 10, 1);
    const [c0, c1] = splitChunks(data);
    s.send({ type: "submit_job_chunk", job_id: "job1", ...c0 });
    expect(await s.next((f) => f.type === "submit_job_ack")).toMatchObject({ accepted: false, reason: "no_inflight_submit" });
    s.frames.length = 0;
    const sha = createHash("sha256").update(Buffer.alloc(data.length, 2)).digest("hex");
    s.send(header({ total_bundle_bytes: data.length, num_chunks: 2, bundle_sha256: sha }));
    s.send({ type: "submit_job_chunk", job_id: "job2", ...c0 });
    expect(await s.next((f) => f.type === "submit_job_ack")).toMatchObject({ accepted: false, reason: "job_id_mismatch" });
    s.frames.length = 0;
    s.send({ type: "submit_job_chunk", job_id: "job1", ...c0 });
    s.send({ type: "submit_job_chunk", job_id: "job1", ...c1 });
    expect(await s.next((f) => f.type === "submit_job_ack")).toMatchObject({ accepted: false, reason: "hash_mismatch" });
    s.frames.length = 0;
    s.send(header({ total_bundle_bytes: data.length, num_chunks: 2, bundle_sha256: sha }));
    s.send({ type: "submit_job_chunk", job_id: "job1", ...c1 });
    expect(await s.next((f) => f.type === "submit_job_ack")).toMatchObject({ accepted: false, reason: "out_of_order" });
    await s.closed; // out of order is a wire fault: the session ends
    expect(builder.queue.list()).toEqual([]);
    expect(await remoteBuildsWritten(builder)).toEqual([]);
  });

  const manifest = file("manifest.json", '{"manifest_version":1,"config_filename":"kitchen.yaml"}');
  const yaml = file("kitchen.yaml", "esphome:\n  name: kitchen\n");
  it.each([
    ["a path escaping with ..", () => tgzOf([manifest, yaml, file("../evil.yaml")])],
    ["an absolute path", () => tgzOf([manifest, yaml, file("/tmp/evil.yaml")])],
    ["a symlink", () => tgzOf([manifest, yaml, { ...file("link.yaml", ""), type: "2", linkname: "/etc/passwd" }])],
    ["a hard link", () => tgzOf([manifest, yaml, { ...file("hard.yaml", ""), type: "1", linkname: "kitchen.yaml" }])],
    ["a device", () => tgzOf([manifest, yaml, { ...file("dev", ""), type: "3" }])],
    ["no manifest", () => tgzOf([yaml])],
    ["a gzip bomb", () => zeroMemberBomb("kitchen.yaml", 200 * MiB)],
  ])("fails a bundle with %s after the ack, and writes and queues nothing", async (_what, make) => {
    const { s, builder } = await session();
    const bundle = await make();
    const chunks = splitChunks(bundle);
    s.send(header({ total_bundle_bytes: bundle.length, num_chunks: chunks.length, bundle_sha256: createHash("sha256").update(bundle).digest("hex") }));
    for (const c of chunks) s.send({ type: "submit_job_chunk", job_id: "job1", ...c });
    expect(await s.next((f) => f.type === "submit_job_ack")).toEqual({ type: "submit_job_ack", job_id: "job1", accepted: true });
    const failed = await s.next((f) => f.type === "job_state_changed", 20_000);
    expect(failed).toMatchObject({ status: "failed", job_id: "job1" });
    expect(String(failed.error_message)).toMatch(/^receiver could not process the bundle: extract_failed \(\S/);
    expect(builder.queue.list()).toEqual([]);
    expect(await remoteBuildsWritten(builder)).toEqual([]);
  });

  it("answers downloads of unknown jobs and duplicates with their reasons", async () => {
    const { s } = await session();
    s.send({ type: "download_artifacts", job_id: "nope" });
    expect(await s.next((f) => f.type === "artifacts_end")).toEqual({ type: "artifacts_end", job_id: "nope", accepted: false, reason: "unknown_job" });
  });
});
