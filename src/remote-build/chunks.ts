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
/** Largest artifacts tarball a receiver sends and an offloader accepts. */
export const ARTIFACTS_MAX_BYTES = 64 * 1024 * 1024;

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
/**
 * Strict standard base64: canonical alphabet, padding and length; null when
 * it is not. Node's decoder skips characters outside the alphabet, so the
 * round trip alone rejects them, stray padding bits and misplaced '=' (and is
 * several times faster than a regular expression over 43 KiB).
 */
function decodeBase64Strict(text: string): Buffer | null {
  if (text.length % 4 !== 0) return null;
  const data = Buffer.from(text, "base64");
  if (data.toString("base64") !== text) return null;
  return data;
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
  readonly #parts: Buffer[] = [];
  readonly #hash: Hash = createHash("sha256");
  #received = 0;
  #next = 0;
  #closed = false;

  constructor(header: AssemblerHeader) {
    const { totalBytes, numChunks, sha256Hex, maxBytes } = header;
    const chunkSize = header.chunkSize ?? CHUNK_SIZE;
    if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) throw new RangeError("maxBytes must be a positive integer");
    if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0) throw new RangeError("chunkSize must be a positive integer");
    if (!Number.isSafeInteger(totalBytes) || totalBytes < 0) {
      throw new AssemblyError("invalid_header", "total_bytes must be a non-negative integer");
    }
    if (!Number.isSafeInteger(numChunks) || numChunks < 0) {
      throw new AssemblyError("invalid_header", "num_chunks must be a non-negative integer");
    }
    if (totalBytes > maxBytes) {
      throw new AssemblyError("oversized", `announced size ${totalBytes} bytes exceeds the limit of ${maxBytes} bytes`);
    }
    if (totalBytes === 0 || numChunks === 0) {
      throw new AssemblyError("empty_bundle", "announced an empty transfer");
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
      this.#parts.length = 0;
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
    // Bound the work before decoding: n base64 characters decode to at most 3n/4 bytes.
    if (typeof text === "string" && Math.floor(text.length / 4) * 3 - 2 > this.totalBytes - this.#received) {
      throw new AssemblyError("oversized", `chunk ${index} goes past the announced ${this.totalBytes} bytes`);
    }
    const data = typeof text === "string" ? decodeBase64Strict(text) : null;
    if (data === null) {
      throw new AssemblyError("out_of_order", `chunk ${index}: data_b64 is not valid base64`);
    }
    if (this.#received + data.length > this.totalBytes) {
      throw new AssemblyError("oversized", `chunk ${index} goes past the announced ${this.totalBytes} bytes`);
    }
    this.#parts.push(data);
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
    const out = Buffer.concat(this.#parts, this.#received);
    this.#parts.length = 0;
    return out;
  }
}
