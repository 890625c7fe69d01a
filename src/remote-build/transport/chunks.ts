/**
 * Chunked transfer of a byte blob over the peer link (bundles offloader ->
 * receiver, artifacts receiver -> offloader), wire-compatible with the upstream
 * Device Builder: 32 KiB raw chunks, standard base64, strict index order,
 * `is_last` exactly on the last index, and a length + SHA-256 check of the
 * assembled bytes.
 *
 * The assembler validates the header before it buffers anything, so a peer
 * cannot make the receiver hold more than `maxBytes` (or more than it
 * announced) in memory.
 */
import { createHash, type Hash } from "node:crypto";

/** Raw bytes per chunk (about 43 KiB of base64, under the 60 KiB frame cap). */
export const CHUNK_SIZE = 32 * 1024;
/** Largest config bundle a receiver accepts. */
export const BUNDLE_MAX_BYTES = 128 * 1024 * 1024;
/** Largest artifacts tarball a receiver sends and an offloader accepts (upstream's 256 MiB). */
export const ARTIFACTS_MAX_BYTES = 256 * 1024 * 1024;

export interface Chunk {
  chunk_index: number;
  data_b64: string;
  is_last: boolean;
}

export type AssemblyErrorCode =
  | "invalid_header"
  | "oversized"
  | "undersized"
  | "empty_bundle"
  | "chunk_count_mismatch"
  | "out_of_order"
  | "chunk_decode_failed"
  | "post_completion"
  | "hash_mismatch";

export class AssemblyError extends Error {
  readonly code: AssemblyErrorCode;

  constructor(code: AssemblyErrorCode, message: string) {
    super(message);
    this.name = "AssemblyError";
    this.code = code;
  }
}

/** Number of chunks `totalBytes` is split into. */
export function chunkCount(totalBytes: number, chunkSize: number = CHUNK_SIZE): number {
  return Math.ceil(totalBytes / chunkSize);
}

/** Splits bytes into wire chunks. Empty input gives no chunks (and the assembler refuses an empty blob). */
export function splitChunks(bytes: Uint8Array, chunkSize: number = CHUNK_SIZE): Chunk[] {
  if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0) throw new RangeError("chunkSize must be a positive integer");
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = chunkCount(buf.length, chunkSize);
  const chunks: Chunk[] = [];
  for (let i = 0; i < count; i++) {
    chunks.push({
      chunk_index: i,
      data_b64: buf.subarray(i * chunkSize, (i + 1) * chunkSize).toString("base64"),
      is_last: i === count - 1,
    });
  }
  return chunks;
}

const SHA256_HEX_RE = /^[0-9a-fA-F]{64}$/;

/** Bytes a padded base64 text decodes to, or null when its length is not a multiple of 4. */
export function base64DecodedLength(text: string): number | null {
  if (text.length % 4 !== 0) return null;
  const pad = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0;
  return (text.length / 4) * 3 - pad;
}

/**
 * Decodes strict standard base64 (canonical alphabet, padding and length)
 * into `target` at `offset`, which must have room for
 * `base64DecodedLength(text)` bytes; returns that count, or null when the
 * text is not strict base64 (what was written then is garbage).
 *
 * Node's decoder skips characters outside the alphabet, takes the URL-safe
 * one and reads only the low byte of each character, so: non-ASCII text is
 * refused outright; a skipped character or an early '=' shows as fewer bytes
 * than the length promises; '-' and '_' are looked for; and the last quantum
 * (the only place non-zero padding bits can hide) is re-encoded and compared.
 * That is as strict as a full round trip, at about a third of its cost.
 */
export function decodeBase64Into(text: string, target: Buffer, offset: number): number | null {
  const expected = base64DecodedLength(text);
  if (expected === null) return null;
  // Node keeps only the low byte of each UTF-16 unit ('Ł' reads as 'A'): ASCII only.
  if (Buffer.byteLength(text, "utf8") !== text.length) return null;
  if (text.includes("-") || text.includes("_")) return null;
  if (target.write(text, offset, expected, "base64") !== expected) return null;
  if (text.length > 0) {
    const tail = (text.length / 4 - 1) * 3;
    if (target.toString("base64", offset + tail, offset + expected) !== text.slice(text.length - 4)) return null;
  }
  return expected;
}

/**
 * One chunk frame's JSON, byte for byte what `JSON.stringify({type, job_id,
 * chunk_index, data_b64, is_last})` gives, built without stringifying the
 * 43 KiB base64 string (its alphabet never needs escaping).
 */
export function encodeChunkFrame(type: string, jobId: string, index: number, data: Uint8Array, isLast: boolean): Buffer {
  const head = `${JSON.stringify({ type, job_id: jobId, chunk_index: index }).slice(0, -1)},"data_b64":"`;
  const tail = `","is_last":${isLast ? "true" : "false"}}`;
  const b64 = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("base64");
  const headBytes = Buffer.byteLength(head, "utf8");
  const out = Buffer.allocUnsafe(headBytes + b64.length + tail.length);
  out.write(head, 0, "utf8");
  out.write(b64, headBytes, "latin1");
  out.write(tail, headBytes + b64.length, "latin1");
  return out;
}

/** What `sendChunks` needs of a channel. */
export interface ChunkSink {
  readonly closed: boolean;
  sendEncoded(json: Uint8Array): boolean;
  drained(): Promise<void>;
}

/**
 * Sends `bytes` as `type` frames (`submit_job_chunk`, `artifacts_chunk`),
 * encoding each chunk only when the socket has room for it, so a 64 MiB
 * transfer never holds more than the channel's backlog in frames. Resolves
 * true when every chunk went out, false when the channel closed first.
 */
export async function sendChunks(sink: ChunkSink, type: string, jobId: string, bytes: Uint8Array, chunkSize: number = CHUNK_SIZE): Promise<boolean> {
  const count = chunkCount(bytes.length, chunkSize);
  for (let i = 0; i < count; i++) {
    await sink.drained();
    if (sink.closed) return false;
    const frame = encodeChunkFrame(type, jobId, i, bytes.subarray(i * chunkSize, (i + 1) * chunkSize), i === count - 1);
    if (!sink.sendEncoded(frame)) return false;
  }
  return true;
}

export interface AssemblerHeader {
  /** Announced length of the assembled blob. */
  totalBytes: number;
  /** Announced number of chunks; must equal ceil(totalBytes / chunkSize). */
  numChunks: number;
  /** Announced SHA-256 of the assembled blob, hex (either case). */
  sha256Hex: string;
  /** Cap on totalBytes (BUNDLE_MAX_BYTES or ARTIFACTS_MAX_BYTES). */
  maxBytes: number;
  /** Raw chunk size the sender used; CHUNK_SIZE unless a test says otherwise. */
  chunkSize?: number;
}

/**
 * Reassembles one blob from wire chunks.
 *
 * The constructor throws `AssemblyError` for a bad header before anything is
 * buffered. `push` returns null while chunks are still expected and the
 * assembled bytes on the last one. Any error, and completion, closes the
 * assembler: a later `push` throws `post_completion`, so callers drop the
 * assembler after an error.
 */
export class ChunkAssembler {
  readonly totalBytes: number;
  readonly numChunks: number;
  readonly sha256Hex: string;
  /**
   * The assembled bytes, allocated on the first chunk at the announced size
   * (capped by maxBytes). With Linux's default overcommit, uninitialised
   * memory is only committed as chunks are written, so a peer that announces
   * much and sends little costs address space rather than RAM.
   */
  #buffer: Buffer | null = null;
  readonly #hash: Hash = createHash("sha256");
  #received = 0;
  #next = 0;
  #closed = false;

  constructor(header: AssemblerHeader) {
    const { totalBytes, numChunks, sha256Hex, maxBytes } = header;
    const chunkSize = header.chunkSize ?? CHUNK_SIZE;
    if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) throw new RangeError("maxBytes must be a positive integer");
    if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0) throw new RangeError("chunkSize must be a positive integer");
    if (!Number.isSafeInteger(totalBytes)) throw new AssemblyError("invalid_header", "total_bytes must be an integer");
    if (!Number.isSafeInteger(numChunks)) throw new AssemblyError("invalid_header", "num_chunks must be an integer");
    // Upstream's order: empty_bundle, chunk_count_mismatch, oversized.
    if (totalBytes <= 0) throw new AssemblyError("empty_bundle", "announced an empty transfer");
    if (numChunks <= 0) throw new AssemblyError("chunk_count_mismatch", `num_chunks ${numChunks} must be positive`);
    if (totalBytes > maxBytes) {
      throw new AssemblyError("oversized", `announced size ${totalBytes} bytes exceeds the limit of ${maxBytes} bytes`);
    }
    const expected = chunkCount(totalBytes, chunkSize);
    if (numChunks !== expected) {
      throw new AssemblyError(
        "chunk_count_mismatch",
        `num_chunks ${numChunks} does not match ${totalBytes} bytes in ${chunkSize}-byte chunks (expected ${expected})`,
      );
    }
    if (typeof sha256Hex !== "string" || !SHA256_HEX_RE.test(sha256Hex)) {
      throw new AssemblyError("invalid_header", "sha256 must be 64 hex digits");
    }
    this.totalBytes = totalBytes;
    this.numChunks = numChunks;
    this.sha256Hex = sha256Hex.toLowerCase();
  }

  /** Bytes received so far. */
  get receivedBytes(): number {
    return this.#received;
  }

  /** Index the next chunk must carry. */
  get nextIndex(): number {
    return this.#next;
  }

  /** True once the blob was assembled or an error closed the assembler. */
  get closed(): boolean {
    return this.#closed;
  }

  push(chunk: Chunk): Buffer | null {
    if (this.#closed) {
      throw new AssemblyError("post_completion", "chunk received after the transfer ended");
    }
    try {
      return this.#accept(chunk);
    } catch (err) {
      this.#closed = true;
      this.#buffer = null;
      throw err;
    }
  }

  #accept(chunk: Chunk): Buffer | null {
    const { chunk_index: index, data_b64: text, is_last: isLast } = chunk as Partial<Chunk>;
    if (typeof index !== "number" || !Number.isSafeInteger(index) || index !== this.#next) {
      throw new AssemblyError("out_of_order", `expected chunk ${this.#next}, got ${String(index)}`);
    }
    if (typeof isLast !== "boolean") {
      throw new AssemblyError("chunk_count_mismatch", `chunk ${index}: is_last must be a boolean`);
    }
    const last = index === this.numChunks - 1;
    if (index >= this.numChunks || isLast !== last) {
      throw new AssemblyError(
        "chunk_count_mismatch",
        `chunk ${index}: is_last=${isLast} but ${this.numChunks} chunks were announced`,
      );
    }
    if (typeof text !== "string") {
      throw new AssemblyError("chunk_decode_failed", `chunk ${index}: data_b64 is not a string`);
    }
    const size = base64DecodedLength(text);
    if (size === null) throw new AssemblyError("chunk_decode_failed", `chunk ${index}: data_b64 is not valid base64`);
    if (this.#received + size > this.totalBytes) {
      throw new AssemblyError("oversized", `chunk ${index} goes past the announced ${this.totalBytes} bytes`);
    }
    const buffer = (this.#buffer ??= Buffer.allocUnsafe(this.totalBytes));
    const written = decodeBase64Into(text, buffer, this.#received);
    if (written === null) throw new AssemblyError("chunk_decode_failed", `chunk ${index}: data_b64 is not valid base64`);
    const data = buffer.subarray(this.#received, this.#received + written);
    this.#hash.update(data);
    this.#received += data.length;
    this.#next = index + 1;
    if (!last) return null;

    this.#closed = true;
    if (this.#received < this.totalBytes) {
      throw new AssemblyError("undersized", `received ${this.#received} of the announced ${this.totalBytes} bytes`);
    }
    const digest = this.#hash.digest("hex");
    if (digest !== this.sha256Hex) {
      throw new AssemblyError("hash_mismatch", `SHA-256 ${digest} does not match the announced ${this.sha256Hex}`);
    }
    this.#buffer = null;
    return buffer;
  }
}
