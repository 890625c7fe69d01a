/**
 * An artifacts download on the offloader over a real secure channel: chunk
 * frames in the canonical form take the fast way (no JSON.parse), every other
 * form the general one, and both refuse the same bad input the same way.
 */
import { createHash, randomBytes } from "node:crypto";
import { describe, expect, it, onTestFinished } from "vitest";
import { type SecureChannel } from "../../../src/remote-build/transport/channel.ts";
import { chunkCount, encodeChunkFrame, splitChunks } from "../../../src/remote-build/transport/chunks.ts";
import { intentResponseSchema, offloaderInbound, parseMessage } from "../../../src/remote-build/transport/messages.ts";
import { PeerSession } from "../../../src/remote-build/offloader/peer-session.ts";
import { EventBus } from "../../../src/events.ts";
import { secureChannelPair } from "../../helpers/secure-pair.ts";

/** A build server end and an offloader's PeerSession, wired as the offloader wires a session. */
async function sessionPair(): Promise<{ server: SecureChannel; session: PeerSession }> {
  const { client: channel, server: end, response } = await secureChannelPair({ answer: { esphome_version: "2026.10.0" } });
  const session = new PeerSession(channel.remotePin, channel, intentResponseSchema.parse(response), new EventBus(), 5000);
  channel.onClose((reason) => { session.closed(reason); });
  channel.onRawFrame((plain) => session.takeChunkFrame(plain));
  channel.onMessage((raw) => {
    const parsed = parseMessage(offloaderInbound, raw);
    if (parsed.kind === "ok") session.handle(parsed.type, parsed.message);
  });
  end.onMessage(() => undefined);
  onTestFinished(() => { channel.close("done"); end.close("done"); });
  return { server: end, session };
}

const sha = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

function start(server: SecureChannel, job: string, blob: Buffer): void {
  server.send({ type: "artifacts_start", job_id: job, total_bytes: blob.length, num_chunks: chunkCount(blob.length), artifacts_sha256: sha(blob) });
}

describe("artifacts download on the offloader", () => {
  it("assembles canonical chunk frames (the fast way) and verifies the whole", async () => {
    const { server, session } = await sessionPair();
    const blob = randomBytes(3 * 32 * 1024 + 17);
    const download = session.downloadArtifacts("job1");
    start(server, "job1", blob);
    splitChunks(blob).forEach((c, i, all) => server.sendEncoded(encodeChunkFrame("artifacts_chunk", "job1", i, Buffer.from(c.data_b64, "base64"), i === all.length - 1)));
    server.send({ type: "artifacts_end", job_id: "job1", accepted: true });
    expect((await download).equals(blob)).toBe(true);
  });

  it("assembles frames in other JSON forms (spaces, another key order, escapes) the general way, mixed with canonical ones", async () => {
    const { server, session } = await sessionPair();
    const blob = randomBytes(3 * 32 * 1024);
    const download = session.downloadArtifacts("job1");
    start(server, "job1", blob);
    const [c0, c1, c2] = splitChunks(blob);
    server.sendEncoded(Buffer.from(`{ "type": "artifacts_chunk", "job_id": "job1", "chunk_index": 0, "data_b64": "${c0!.data_b64}", "is_last": false }`));
    server.sendEncoded(encodeChunkFrame("artifacts_chunk", "job1", 1, Buffer.from(c1!.data_b64, "base64"), false));
    server.sendEncoded(Buffer.from(`{"is_last":true,"data_b64":"\\u00${c2!.data_b64.charCodeAt(0).toString(16)}${c2!.data_b64.slice(1)}","chunk_index":2,"job_id":"job1","type":"artifacts_chunk"}`));
    server.send({ type: "artifacts_end", job_id: "job1", accepted: true });
    expect((await download).equals(blob)).toBe(true);
  });

  it("refuses a canonical frame with URL-safe base64 as chunk_decode_failed, and the session stays", async () => {
    const { server, session } = await sessionPair();
    const blob = randomBytes(2 * 32 * 1024);
    const download = session.downloadArtifacts("job1");
    start(server, "job1", blob);
    const frame = encodeChunkFrame("artifacts_chunk", "job1", 0, blob.subarray(0, 32 * 1024), false).toString("latin1").replace(/"data_b64":"([^"]*)"/, (_m, d: string) => `"data_b64":"${d.replaceAll("+", "-").replaceAll("/", "_")}"`);
    server.sendEncoded(Buffer.from(frame, "latin1"));
    await expect(download).rejects.toMatchObject({ code: "chunk_decode_failed" });
    expect(session.channel.closed).toBe(false);
  });

  it("refuses an out-of-order canonical frame as out_of_order", async () => {
    const { server, session } = await sessionPair();
    const blob = randomBytes(2 * 32 * 1024);
    const download = session.downloadArtifacts("job1");
    start(server, "job1", blob);
    server.sendEncoded(encodeChunkFrame("artifacts_chunk", "job1", 1, blob.subarray(32 * 1024), true));
    await expect(download).rejects.toMatchObject({ code: "out_of_order" });
  });

  it("ends the session as malformed_frame for a raw control character in data_b64, as JSON.parse always did", async () => {
    const { server, session } = await sessionPair();
    const blob = randomBytes(2 * 32 * 1024);
    const download = session.downloadArtifacts("job1");
    start(server, "job1", blob);
    const frame = encodeChunkFrame("artifacts_chunk", "job1", 0, blob.subarray(0, 32 * 1024), false);
    frame[frame.indexOf('"data_b64":"') + 20] = 0x01;
    server.sendEncoded(frame);
    await expect(download).rejects.toMatchObject({ code: "session_lost" });
    expect(session.channel.closed).toBe(true);
  });

  it("refuses UTF-8 'é' in data_b64 as chunk_decode_failed, and ends the session for bytes that are not UTF-8, as before", async () => {
    for (const [bytes, code] of [[[0xc3, 0xa9], "chunk_decode_failed"], [[0xff, 0x41], "session_lost"]] as const) {
      const { server, session } = await sessionPair();
      const blob = randomBytes(2 * 32 * 1024);
      const download = session.downloadArtifacts("job1");
      start(server, "job1", blob);
      const frame = encodeChunkFrame("artifacts_chunk", "job1", 0, blob.subarray(0, 32 * 1024), false);
      const at = frame.indexOf('"data_b64":"') + 20;
      frame[at] = bytes[0];
      frame[at + 1] = bytes[1];
      server.sendEncoded(frame);
      await expect(download).rejects.toMatchObject({ code });
      expect(session.channel.closed).toBe(code === "session_lost");
    }
  });

  it("refuses a tampered last chunk as hash_mismatch", async () => {
    const { server, session } = await sessionPair();
    const blob = randomBytes(32 * 1024 + 5);
    const download = session.downloadArtifacts("job1");
    start(server, "job1", blob);
    const tampered = Buffer.from(blob);
    tampered[32_770] = (tampered[32_770] ?? 0) ^ 1;
    server.sendEncoded(encodeChunkFrame("artifacts_chunk", "job1", 0, tampered.subarray(0, 32 * 1024), false));
    server.sendEncoded(encodeChunkFrame("artifacts_chunk", "job1", 1, tampered.subarray(32 * 1024), true));
    await expect(download).rejects.toMatchObject({ code: "hash_mismatch" });
  });
});
