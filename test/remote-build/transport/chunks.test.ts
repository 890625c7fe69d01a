import { createHash, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ARTIFACTS_MAX_BYTES, BUNDLE_MAX_BYTES, CHUNK_SIZE, ChunkAssembler, type AssemblerHeader, type Chunk, type CanonicalChunkFrame, encodeChunkFrame, readCanonicalChunkFrame, splitChunks, isAssemblyError } from "../../../src/remote-build/transport/chunks.ts";

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

function headerFor(bytes: Buffer, over: Partial<AssemblerHeader> = {}): AssemblerHeader {
  return {
    totalBytes: bytes.length,
    numChunks: Math.ceil(bytes.length / CHUNK_SIZE),
    sha256Hex: sha(bytes),
    maxBytes: BUNDLE_MAX_BYTES,
    ...over,
  };
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (isAssemblyError(err)) return err.code;
    throw err;
  }
  throw new Error("expected an AssemblyError");
}

/** Pushes chunks; returns the result of the last push. */
function feed(assembler: ChunkAssembler, chunks: Chunk[]): Buffer | null {
  let out: Buffer | null = null;
  for (const c of chunks) out = assembler.push(c);
  return out;
}

describe("limits", () => {
  it("uses 32 KiB chunks and 128 / 256 MiB caps (newer upstream's bundle cap, upstream's artifacts cap)", () => {
    expect(CHUNK_SIZE).toBe(32768);
    expect(BUNDLE_MAX_BYTES).toBe(128 * 1024 * 1024);
    expect(ARTIFACTS_MAX_BYTES).toBe(256 * 1024 * 1024);
  });
});

describe("splitChunks", () => {
  it("cuts 32 KiB pieces in standard base64, is_last only on the final one", () => {
    const bytes = randomBytes(CHUNK_SIZE * 2 + 100);
    const chunks = splitChunks(bytes);
    expect(chunks.map((c) => c.chunk_index)).toEqual([0, 1, 2]);
    expect(chunks.map((c) => c.is_last)).toEqual([false, false, true]);
    expect(chunks.map((c) => Buffer.from(c.data_b64, "base64").length)).toEqual([CHUNK_SIZE, CHUNK_SIZE, 100]);
    expect(chunks.every((c) => /^[A-Za-z0-9+/]*={0,2}$/.test(c.data_b64))).toBe(true);
    expect(Buffer.concat(chunks.map((c) => Buffer.from(c.data_b64, "base64")))).toEqual(bytes);
  });

  it("gives one chunk for an exact multiple boundary and none for empty input", () => {
    expect(splitChunks(Buffer.alloc(CHUNK_SIZE))).toHaveLength(1);
    expect(splitChunks(Buffer.alloc(CHUNK_SIZE + 1))).toHaveLength(2);
    expect(splitChunks(Buffer.alloc(0))).toEqual([]);
  });

  it("keeps each chunk's base64 under the 60 KiB frame cap", () => {
    const [chunk] = splitChunks(randomBytes(CHUNK_SIZE));
    expect(JSON.stringify({ type: "submit_job_chunk", job_id: "x".repeat(64), ...chunk }).length).toBeLessThan(60 * 1024);
  });
});

describe("ChunkAssembler", () => {
  it("reassembles what splitChunks produced and verifies the hash", () => {
    const bytes = randomBytes(CHUNK_SIZE * 3 + 7);
    const assembler = new ChunkAssembler(headerFor(bytes));
    const chunks = splitChunks(bytes);
    for (const c of chunks.slice(0, -1)) expect(assembler.push(c)).toBeNull();
    expect(assembler.receivedBytes).toBe(CHUNK_SIZE * 3);
    expect(assembler.nextIndex).toBe(3);
    const out = assembler.push(chunks.at(-1)!);
    expect(out).toEqual(bytes);
    expect(assembler.closed).toBe(true);
  });

  it("accepts an upper-case hash", () => {
    const bytes = randomBytes(10);
    const assembler = new ChunkAssembler(headerFor(bytes, { sha256Hex: sha(bytes).toUpperCase() }));
    expect(feed(assembler, splitChunks(bytes))).toEqual(bytes);
  });

  describe("header checks, before anything is buffered", () => {
    const bytes = randomBytes(100);
    it("oversized: total over the cap", () => {
      expect(codeOf(() => new ChunkAssembler(headerFor(bytes, { maxBytes: 99 })))).toBe("oversized");
      expect(codeOf(() => new ChunkAssembler({ ...headerFor(bytes), totalBytes: BUNDLE_MAX_BYTES + 1, numChunks: 4097 }))).toBe(
        "oversized",
      );
    });
    it("empty_bundle: zero or fewer bytes, checked first (upstream's order)", () => {
      expect(codeOf(() => new ChunkAssembler(headerFor(bytes, { totalBytes: 0, numChunks: 0 })))).toBe("empty_bundle");
      expect(codeOf(() => new ChunkAssembler(headerFor(bytes, { totalBytes: 0, numChunks: 1 })))).toBe("empty_bundle");
      expect(codeOf(() => new ChunkAssembler(headerFor(bytes, { totalBytes: -5, numChunks: 1 })))).toBe("empty_bundle");
    });
    it("chunk_count_mismatch: zero or fewer chunks, before the size cap", () => {
      expect(codeOf(() => new ChunkAssembler(headerFor(bytes, { numChunks: 0 })))).toBe("chunk_count_mismatch");
      expect(codeOf(() => new ChunkAssembler(headerFor(bytes, { numChunks: -1, maxBytes: 99 })))).toBe("chunk_count_mismatch");
    });
    it("chunk_count_mismatch: num_chunks inconsistent with the total", () => {
      expect(codeOf(() => new ChunkAssembler(headerFor(bytes, { numChunks: 2 })))).toBe("chunk_count_mismatch");
      expect(codeOf(() => new ChunkAssembler({ ...headerFor(bytes), totalBytes: CHUNK_SIZE + 1, numChunks: 1 }))).toBe(
        "chunk_count_mismatch",
      );
    });
    it.each([
      ["too short", "abc"],
      ["not hex", "z".repeat(64)],
      ["too long", "a".repeat(65)],
      ["empty", ""],
    ])("invalid_header: sha256 %s", (_label, value) => {
      expect(codeOf(() => new ChunkAssembler(headerFor(bytes, { sha256Hex: value })))).toBe("invalid_header");
    });
    it.each([
      ["a fractional total", { totalBytes: 1.5 }],
      ["a NaN chunk count", { numChunks: Number.NaN }],
      ["a string total", { totalBytes: "100" as unknown as number }],
    ])("invalid_header: %s", (_label, over) => {
      expect(codeOf(() => new ChunkAssembler(headerFor(bytes, over)))).toBe("invalid_header");
    });
  });

  describe("chunk checks", () => {
    const bytes = randomBytes(CHUNK_SIZE * 2 + 50);
    const chunks = splitChunks(bytes);
    const [c0, c1, c2] = chunks as [Chunk, Chunk, Chunk];

    it("out_of_order: a skipped, repeated or negative index", () => {
      expect(codeOf(() => new ChunkAssembler(headerFor(bytes)).push(c1))).toBe("out_of_order");
      const a = new ChunkAssembler(headerFor(bytes));
      a.push(c0);
      expect(codeOf(() => a.push(c0))).toBe("out_of_order");
      expect(codeOf(() => new ChunkAssembler(headerFor(bytes)).push({ ...c0, chunk_index: -1 }))).toBe("out_of_order");
      expect(codeOf(() => new ChunkAssembler(headerFor(bytes)).push({ ...c0, chunk_index: 0.5 }))).toBe("out_of_order");
    });

    it.each([
      ["non-alphabet characters", "!!!!"],
      ["URL-safe alphabet", Buffer.from([0xfb, 0xff]).toString("base64url") + "="],
      ["missing padding", "QQ"],
      ["non-canonical padding bits", "QR=="],
      ["embedded whitespace", "QUFB\nQUFB"],
      ["a non-ASCII character Node would read as 'A'", "\u0141AAAAAAA"],
      ["a non-ASCII character Node would read as '-'", "A\u012dAAAAAA"],
      ["a non-string", 42 as unknown as string],
    ])("chunk_decode_failed: bad base64 (%s)", (_label, data) => {
      expect(codeOf(() => new ChunkAssembler(headerFor(bytes)).push({ ...c0, data_b64: data }))).toBe("chunk_decode_failed");
    });

    it("post_completion: a chunk after the last one, and after an error", () => {
      const a = new ChunkAssembler(headerFor(bytes));
      feed(a, chunks);
      expect(codeOf(() => a.push({ ...c2, chunk_index: 3 }))).toBe("post_completion");
      const b = new ChunkAssembler(headerFor(bytes));
      expect(codeOf(() => b.push(c1))).toBe("out_of_order");
      expect(codeOf(() => b.push(c0))).toBe("post_completion");
    });

    it("oversized: the running size passes the announced total", () => {
      const small = randomBytes(10);
      const a = new ChunkAssembler(headerFor(small));
      expect(codeOf(() => a.push({ chunk_index: 0, data_b64: randomBytes(11).toString("base64"), is_last: true }))).toBe(
        "oversized",
      );
      // A huge base64 string is refused from its length, before decoding.
      const b = new ChunkAssembler(headerFor(small));
      expect(codeOf(() => b.push({ chunk_index: 0, data_b64: "A".repeat(4_000_000), is_last: true }))).toBe("oversized");
      // Across chunks: the first two fill more than the total.
      const c = new ChunkAssembler(headerFor(bytes));
      c.push(c0);
      expect(codeOf(() => c.push({ ...c1, data_b64: randomBytes(CHUNK_SIZE + 51).toString("base64") }))).toBe("oversized");
    });

    it("chunk_count_mismatch: is_last early, missing on the last index, or a non-boolean", () => {
      expect(codeOf(() => new ChunkAssembler(headerFor(bytes)).push({ ...c0, is_last: true }))).toBe("chunk_count_mismatch");
      const a = new ChunkAssembler(headerFor(bytes));
      a.push(c0);
      a.push(c1);
      expect(codeOf(() => a.push({ ...c2, is_last: false }))).toBe("chunk_count_mismatch");
      expect(
        codeOf(() => new ChunkAssembler(headerFor(bytes)).push({ ...c0, is_last: "no" as unknown as boolean })),
      ).toBe("chunk_count_mismatch");
    });

    it("undersized: the last chunk arrives short", () => {
      const a = new ChunkAssembler(headerFor(bytes));
      a.push(c0);
      a.push(c1);
      expect(codeOf(() => a.push({ ...c2, data_b64: Buffer.from(c2.data_b64, "base64").subarray(1).toString("base64") }))).toBe(
        "undersized",
      );
    });

    it("hash_mismatch: right length, wrong bytes", () => {
      const a = new ChunkAssembler(headerFor(bytes));
      a.push(c0);
      a.push(c1);
      const tampered = Buffer.from(c2.data_b64, "base64");
      tampered[0] = (tampered[0] ?? 0) ^ 0xff;
      expect(codeOf(() => a.push({ ...c2, data_b64: tampered.toString("base64") }))).toBe("hash_mismatch");
      expect(a.closed).toBe(true);
    });
  });
});

describe("readCanonicalChunkFrame (the fast way, without JSON.parse)", () => {
  it("reads what encodeChunkFrame writes, agreeing with JSON.parse", () => {
    for (const [type, jobId, index, size, isLast] of [
      ["artifacts_chunk", "job-kitchen_1", 0, CHUNK_SIZE, false],
      ["submit_job_chunk", "x", 123456, 7, true],
      ["artifacts_chunk", "A".repeat(64), 9, 1, false],
    ] as const) {
      const frame = encodeChunkFrame(type, jobId, index, randomBytes(size), isLast);
      const parsed = JSON.parse(frame.toString("utf8")) as Record<string, unknown>;
      const view = readCanonicalChunkFrame(frame);
      expect(view && { type: view.type, jobId: view.jobId, index: view.index, isLast: view.isLast, data: view.frame.toString("latin1", view.dataStart, view.dataEnd) }).toEqual({
        type: parsed.type,
        jobId: parsed.job_id,
        index: parsed.chunk_index,
        isLast: parsed.is_last,
        data: parsed.data_b64,
      });
    }
  });

  it("leaves every other form to the general way, even ones JSON.parse takes", () => {
    const data = randomBytes(30).toString("base64");
    const frames = [
      `{ "type":"artifacts_chunk","job_id":"j","chunk_index":0,"data_b64":"${data}","is_last":false}`,
      `{"job_id":"j","type":"artifacts_chunk","chunk_index":0,"data_b64":"${data}","is_last":false}`,
      `{"type":"artifacts_chunk","job_id":"j","chunk_index":0,"data_b64":"\\u0041${data.slice(1)}","is_last":false}`,
      `{"type":"artifacts_chunk","job_id":"j\\u0031","chunk_index":0,"data_b64":"${data}","is_last":false}`,
      `{"type":"artifacts_chunk","job_id":"j","chunk_index":1e0,"data_b64":"${data}","is_last":false}`,
      `{"type":"artifacts_chunk","job_id":"j","chunk_index":01,"data_b64":"${data}","is_last":false}`,
      `{"type":"artifacts_chunk","job_id":"j","chunk_index":-1,"data_b64":"${data}","is_last":false}`,
      `{"type":"artifacts_chunk","job_id":"j","chunk_index":1.0,"data_b64":"${data}","is_last":false}`,
      `{"type":"artifacts_chunk","job_id":"j","chunk_index":1234567890123456,"data_b64":"${data}","is_last":false}`,
      `{"type":"artifacts_chunk","job_id":"j","chunk_index":0,"data_b64":"${data}","is_last":false,"x":1}`,
      `{"type":"artifacts_chunk","job_id":"j","chunk_index":0,"data_b64":"${data}","is_last":false} `,
      `{"type":"artifacts_chunk","job_id":"j","chunk_index":0,"data_b64":"${data}","is_last":0}`,
      `{"type":"artifacts_chunk","job_id":"j/k","chunk_index":0,"data_b64":"${data}","is_last":false}`,
      `{"type":"artifacts_chunk","job_id":"","chunk_index":0,"data_b64":"${data}","is_last":false}`,
      `{"type":"artifacts_chunk","job_id":"${"a".repeat(65)}","chunk_index":0,"data_b64":"${data}","is_last":false}`,
      `{"type":"Artifacts","job_id":"j","chunk_index":0,"data_b64":"${data}","is_last":false}`,
      `{"type":"artifacts_chunk","job_id":"j","chunk_index":0,"data_b64":"${data}","is_last":false`,
      `{"type":"artifacts_chunk","job_id":"j","chunk_index":0,"data_b64":"${data}`,
    ];
    for (const text of frames) expect(readCanonicalChunkFrame(Buffer.from(text, "utf8")), text).toBeNull();
  });
});

/** A frame of the canonical form around `text` (each character one byte, as latin1), read back as a view. */
function view(index: number, isLast: boolean, text: string): CanonicalChunkFrame {
  const frame = Buffer.from(`{"type":"artifacts_chunk","job_id":"j","chunk_index":${index},"data_b64":"${text}","is_last":${isLast}}`, "latin1");
  const read = readCanonicalChunkFrame(frame);
  if (read === null) throw new Error("not canonical");
  return read;
}

describe("ChunkAssembler.pushCanonical", () => {
  const bytes = randomBytes(2 * CHUNK_SIZE + 500);
  const chunks = splitChunks(bytes);
  const [c0, c1, c2] = chunks as [Chunk, Chunk, Chunk];

  it("assembles and verifies exactly as push does", () => {
    const a = new ChunkAssembler(headerFor(bytes));
    expect(a.pushCanonical(view(0, false, c0.data_b64))).toBeNull();
    expect(a.pushCanonical(view(1, false, c1.data_b64))).toBeNull();
    expect(a.pushCanonical(view(2, true, c2.data_b64))?.equals(bytes)).toBe(true);
    expect(a.closed).toBe(true);
  });

  it("takes nothing it would refuse, so push (after JSON.parse) gives the same error as before", () => {
    const refusals: [string, (a: ChunkAssembler) => unknown, Chunk][] = [
      ["out_of_order", (a) => a.pushCanonical(view(1, false, c1.data_b64)), c1],
      ["chunk_count_mismatch", (a) => a.pushCanonical(view(0, true, c0.data_b64)), { ...c0, is_last: true }],
      ["chunk_decode_failed", (a) => a.pushCanonical(view(0, false, c0.data_b64.replace(/[+/]/, "-"))), { ...c0, data_b64: c0.data_b64.replace(/[+/]/, "-") }],
      ["chunk_decode_failed", (a) => a.pushCanonical(view(0, false, `\u0001${c0.data_b64.slice(1)}`)), { ...c0, data_b64: `\u0001${c0.data_b64.slice(1)}` }],
      ["chunk_decode_failed", (a) => a.pushCanonical(view(0, false, `\u00e9${c0.data_b64.slice(1)}`)), { ...c0, data_b64: `\u00e9${c0.data_b64.slice(1)}` }],
      ["chunk_decode_failed", (a) => a.pushCanonical(view(0, false, c0.data_b64.slice(0, -3))), { ...c0, data_b64: c0.data_b64.slice(0, -3) }],
      ["oversized", (a) => a.pushCanonical(view(0, false, c0.data_b64 + c1.data_b64 + c1.data_b64)), { ...c0, data_b64: c0.data_b64 + c1.data_b64 + c1.data_b64 }],
    ];
    for (const [code, fast, slow] of refusals) {
      const a = new ChunkAssembler(headerFor(bytes));
      expect(fast(a), code).toBeUndefined();
      expect(a.receivedBytes).toBe(0);
      expect(a.nextIndex).toBe(0);
      expect(a.closed).toBe(false);
      expect(codeOf(() => a.push(slow))).toBe(code);
    }
  });

  it("after a refused fast chunk, the right one is still taken and the whole verified", () => {
    const a = new ChunkAssembler(headerFor(bytes));
    expect(a.pushCanonical(view(0, false, c1.data_b64.replace(/[+/]/, "_")))).toBeUndefined();
    a.pushCanonical(view(0, false, c0.data_b64));
    a.pushCanonical(view(1, false, c1.data_b64));
    expect(a.pushCanonical(view(2, true, c2.data_b64))?.equals(bytes)).toBe(true);
  });

  it("throws hash_mismatch and undersized on the last chunk and closes, as push does", () => {
    const a = new ChunkAssembler(headerFor(bytes));
    a.pushCanonical(view(0, false, c0.data_b64));
    a.pushCanonical(view(1, false, c1.data_b64));
    const tampered = Buffer.from(c2.data_b64, "base64");
    tampered[0] = (tampered[0] ?? 0) ^ 0xff;
    expect(codeOf(() => a.pushCanonical(view(2, true, tampered.toString("base64"))))).toBe("hash_mismatch");
    expect(a.closed).toBe(true);
    expect(a.pushCanonical(view(3, true, c2.data_b64))).toBeUndefined();

    const b = new ChunkAssembler(headerFor(bytes));
    b.pushCanonical(view(0, false, c0.data_b64));
    b.pushCanonical(view(1, false, c1.data_b64));
    expect(codeOf(() => b.pushCanonical(view(2, true, c2.data_b64.slice(0, 8))))).toBe("undersized");
    expect(b.closed).toBe(true);
  });
});
