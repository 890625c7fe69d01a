/**
 * The secure channel carrying big transfers: chunk frames built without
 * JSON.stringify, reassembled exactly on the other side, and a sender that
 * waits for the socket instead of buffering a whole artifact set.
 */
import { createHash, randomBytes } from "node:crypto";
import { describe, expect, it, onTestFinished } from "vitest";
import { DRAIN_HIGH_WATER_BYTES } from "../../../src/remote-build/transport/channel.ts";
import { CHUNK_SIZE, ChunkAssembler, chunkCount, encodeChunkFrame, sendChunks } from "../../../src/remote-build/transport/chunks.ts";
import { offloaderInbound } from "../../../src/remote-build/transport/messages.ts";
import { waitFor } from "../../helpers/tmp.ts";
import { secureChannelPair } from "../../helpers/secure-pair.ts";

function sha(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

describe("encodeChunkFrame", () => {
  it.each([
    ["artifacts_chunk", "job_1", 0, 100, false],
    ["submit_job_chunk", "a-b_C", 2047, CHUNK_SIZE, true],
    ["artifacts_chunk", "x", 5, 0, true],
    ["artifacts_chunk", "quote\"and\\back", 1, 1, false],
  ] as const)("is byte for byte JSON.stringify of the frame (%s, %s)", (type, jobId, index, size, isLast) => {
    const data = randomBytes(size);
    const expected = JSON.stringify({ type, job_id: jobId, chunk_index: index, data_b64: data.toString("base64"), is_last: isLast });
    expect(encodeChunkFrame(type, jobId, index, data, isLast).toString("utf8")).toBe(expected);
  });
});

describe("sendChunks over a secure channel", () => {
  it("sends a blob as ordered chunk frames that reassemble to the same bytes", async () => {
    const { client, server } = await secureChannelPair();
    const blob = randomBytes(5 * 1024 * 1024 + 123);
    const assembler = new ChunkAssembler({ totalBytes: blob.length, numChunks: chunkCount(blob.length), sha256Hex: sha(blob), maxBytes: blob.length });
    const done = new Promise<Buffer>((resolve, reject) => {
      client.onMessage((m) => {
        try {
          // Each frame passes the schema the offloader applies.
          const parsed = offloaderInbound.artifacts_chunk.parse(m);
          expect(parsed.job_id).toBe("job1");
          const out = assembler.push(parsed);
          if (out !== null) resolve(out);
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      });
    });
    expect(await sendChunks(server, "artifacts_chunk", "job1", blob)).toBe(true);
    expect(sha(await done)).toBe(sha(blob));
  });

  it("holds no more than the high-water mark while the peer does not read, and finishes once it does", async () => {
    const { client, server, proxy } = await secureChannelPair({ viaProxy: true });
    // Bigger than the kernel's loopback buffers, so the backlog reaches the channel.
    const blob = randomBytes(48 * 1024 * 1024);
    let frames = 0;
    client.onMessage(() => { frames++; });
    proxy.pause();
    let finished = false;
    let peak = 0;
    const sending = sendChunks(server, "artifacts_chunk", "job1", blob).then((ok) => { finished = ok; });
    const sample = setInterval(() => { peak = Math.max(peak, server.bufferedAmount); }, 1);
    onTestFinished(() => { clearInterval(sample); });
    await waitFor(() => server.bufferedAmount > DRAIN_HIGH_WATER_BYTES, 10_000, "a backlog");
    // Stalled: it stops at the mark (plus the frame that crossed it).
    await new Promise((r) => setTimeout(r, 200));
    expect(finished).toBe(false);
    expect(peak).toBeLessThanOrEqual(DRAIN_HIGH_WATER_BYTES + 64 * 1024);
    proxy.resume();
    await sending;
    clearInterval(sample);
    expect(finished).toBe(true);
    await waitFor(() => frames === chunkCount(blob.length), 20_000, "every frame");
    expect(peak).toBeLessThanOrEqual(DRAIN_HIGH_WATER_BYTES + 64 * 1024);
  });

  it("stops, answering false, when the channel closes mid-transfer", async () => {
    const { client, server, proxy } = await secureChannelPair({ viaProxy: true });
    proxy.pause();
    const sending = sendChunks(server, "artifacts_chunk", "job1", randomBytes(48 * 1024 * 1024));
    await waitFor(() => server.bufferedAmount > DRAIN_HIGH_WATER_BYTES, 10_000, "a backlog");
    server.close("client_stopped");
    expect(await sending).toBe(false);
    await expect(server.drained()).resolves.toBeUndefined();
    client.close("done");
  });
});

describe("the raw-frame hook", () => {
  it("sees each decrypted frame first; a frame it takes is freed when it returns, one it declines goes on to the message handler", async () => {
    const { client, server } = await secureChannelPair();
    const taken: Buffer[] = [];
    const declined: Record<string, unknown>[] = [];
    client.onRawFrame((plain) => {
      if (!plain.toString("latin1").includes('"take":true')) return false;
      expect(plain.toString("latin1")).toMatch(/^\{"n":\d,"take":true\}$/);
      taken.push(plain);
      return true;
    });
    client.onMessage((m) => { declined.push(m); });
    // Big frames, as a transfer's are (each decrypts into a buffer of its own).
    const pad = "x".repeat(40_000);
    for (let n = 0; n < 4; n++) {
      server.sendEncoded(Buffer.from(`{"n":${n},"take":true}`));
      server.sendEncoded(Buffer.from(JSON.stringify({ type: "ping", nonce: pad + String(n) })));
    }
    await waitFor(() => taken.length === 4 && declined.length === 4);
    // Freed: the hook was told not to keep them, and nothing can read them now.
    expect(taken.every((b) => b.length === 0)).toBe(true);
    expect(declined.map((m) => String(m.nonce).slice(40_000))).toEqual(["0", "1", "2", "3"]);
  });

  it("carries 5 MiB each way at once intact while every sent and received frame is freed", async () => {
    const { client, server } = await secureChannelPair();
    const up = randomBytes(5 * 1024 * 1024);
    const down = randomBytes(5 * 1024 * 1024 + 99);
    const receive = (ch: typeof client, blob: Buffer): Promise<Buffer> => {
      const assembler = new ChunkAssembler({ totalBytes: blob.length, numChunks: chunkCount(blob.length), sha256Hex: sha(blob), maxBytes: blob.length });
      return new Promise<Buffer>((resolve, reject) => {
        ch.onMessage((m) => {
          try {
            const out = assembler.push(offloaderInbound.artifacts_chunk.parse(m));
            if (out !== null) resolve(out);
          } catch (err) {
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        });
      });
    };
    const atServer = receive(server, up);
    const atClient = receive(client, down);
    const [sentUp, sentDown] = await Promise.all([sendChunks(client, "artifacts_chunk", "up", up), sendChunks(server, "artifacts_chunk", "down", down)]);
    expect(sentUp && sentDown).toBe(true);
    expect(sha(await atServer)).toBe(sha(up));
    expect(sha(await atClient)).toBe(sha(down));
  });
});
