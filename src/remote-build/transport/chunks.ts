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
import { codedErrors, type BuilderError } from "../../errors.ts";
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

export const ASSEMBLY_CODES = [
  "invalid_header",
  "oversized",
  "undersized",
  "empty_bundle",
  "chunk_count_mismatch",
  "out_of_order",
  "chunk_decode_failed",
  "post_completion",
  "hash_mismatch",
] as const;
export type AssemblyErrorCode = (typeof ASSEMBLY_CODES)[number];

/** A AssemblyError failure: a \`BuilderError\` with one of \`ASSEMBLY_CODES\`. */
export type AssemblyError = BuilderError<AssemblyErrorCode>;
export const { error: assemblyError, is: isAssemblyError } = codedErrors(ASSEMBLY_CODES);

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
 * text is not strict base64 (what was written then is garbage). `latin1`
 * says the text was read from bytes as latin1 (`readCanonicalChunkFrame`).
 *
 * Node's decoder skips characters outside the alphabet, takes the URL-safe
 * one and reads only the low byte of each character, so: non-ASCII text is
 * refused outright; a skipped character or an early '=' shows as fewer bytes
 * than the length promises; '-' and '_' are looked for; and the last quantum
 * (the only place non-zero padding bits can hide) is re-encoded and compared.
 * That is as strict as a full round trip, at about a third of its cost.
 */
export function decodeBase64Into(text: string, target: Buffer, offset: number, latin1 = false): number | null {
  const expected = base64DecodedLength(text);
  if (expected === null) return null;
  // Node keeps only the low byte of each UTF-16 unit ('Ł' reads as 'A'): ASCII only. A text
  // read as latin1 (`latin1`: one byte a character) needs no such scan: the decoder skips
  // characters 0x80-0xFF like any other outside the alphabet, so they show as missing bytes.
  if (!latin1 && Buffer.byteLength(text, "utf8") !== text.length) return null;
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
 * 43 KiB base64 string (its alphabet never needs escaping). With `scratch`
 * (big enough, see `chunkFrameBytes`) the frame is written there and a view of
 * it returned, for a caller that consumes it before the next frame: a big
 * transfer then reuses one buffer instead of allocating (and page-faulting in)
 * a fresh one per chunk.
 */
export function encodeChunkFrame(type: string, jobId: string, index: number, data: Uint8Array, isLast: boolean, scratch?: Buffer): Buffer {
  const head = `${JSON.stringify({ type, job_id: jobId, chunk_index: index }).slice(0, -1)},"data_b64":"`;
  const tail = `","is_last":${isLast ? "true" : "false"}}`;
  const b64 = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("base64");
  const headBytes = Buffer.byteLength(head, "utf8");
  const size = headBytes + b64.length + tail.length;
  const out = scratch !== undefined && scratch.length >= size ? scratch.subarray(0, size) : Buffer.allocUnsafe(size);
  out.write(head, 0, "utf8");
  out.write(b64, headBytes, "latin1");
  out.write(tail, headBytes + b64.length, "latin1");
  return out;
}

/** The most bytes a chunk frame of `chunkSize` raw bytes can take (type and job id of up to 64 bytes each). */
export function chunkFrameBytes(chunkSize: number = CHUNK_SIZE): number {
  return 4 * Math.ceil(chunkSize / 3) + 256;
}

/** A chunk frame as `encodeChunkFrame` writes it, read without JSON.parse. */
export interface CanonicalChunkFrame {
  type: string;
  jobId: string;
  index: number;
  isLast: boolean;
  /** The decrypted frame, and where its data_b64 text lies in it (not yet checked: `ChunkAssembler.pushCanonical` does that). */
  frame: Buffer;
  dataStart: number;
  dataEnd: number;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const FRAME_HEAD = Buffer.from('{"type":"', "latin1");
const AFTER_TYPE = Buffer.from('","job_id":"', "latin1");
const AFTER_JOB = Buffer.from('","chunk_index":', "latin1");
const AFTER_INDEX = Buffer.from(',"data_b64":"', "latin1");
const END_TRUE = Buffer.from('","is_last":true}', "latin1");
const END_FALSE = Buffer.from('","is_last":false}', "latin1");
const TYPE_RE = /^[a-z_]{1,32}$/;
/** The job id schema's own rule (messages.ts), so a view's id is one the schema takes. */
const JOB_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
const INDEX_RE = /^(?:0|[1-9][0-9]{0,14})$/;

function startsAt(buf: Buffer, at: number, literal: Buffer): boolean {
  return buf.length - at >= literal.length && buf.compare(literal, 0, literal.length, at, at + literal.length) === 0;
}

/** The text from `at` up to the next '"' (which must exist), or null. */
function quoted(buf: Buffer, at: number, limit: number): { text: string; end: number } | null {
  const end = buf.indexOf(QUOTE, at);
  if (end < 0 || end - at > limit) return null;
  return { text: buf.toString("latin1", at, end), end };
}

/**
 * Reads a decrypted frame of exactly the form `encodeChunkFrame` writes (the
 * form upstream's `json.dumps(..., separators=(",", ":"))` gives as well): no
 * whitespace, keys in that order, a type of lowercase letters and '_', a job
 * id the schema takes, a plain non-negative integer index, a data text without
 * '"' or '\', `true`/`false`, nothing after the '}'. Anything else is null
 * and goes the general way (JSON.parse and the schema), so this only ever
 * agrees with it: for such a frame JSON.parse gives exactly these values,
 * provided the data text is printable ASCII, which the strict base64 decode
 * behind it checks (a text that fails goes the general way as well).
 */
export function readCanonicalChunkFrame(plain: Buffer): CanonicalChunkFrame | null {
  if (!startsAt(plain, 0, FRAME_HEAD)) return null;
  const type = quoted(plain, FRAME_HEAD.length, 32);
  if (type === null || !TYPE_RE.test(type.text) || !startsAt(plain, type.end, AFTER_TYPE)) return null;
  const job = quoted(plain, type.end + AFTER_TYPE.length, 64);
  if (job === null || !JOB_ID_RE.test(job.text) || !startsAt(plain, job.end, AFTER_JOB)) return null;
  const indexAt = job.end + AFTER_JOB.length;
  const comma = plain.indexOf(0x2c, indexAt);
  if (comma < 0 || comma - indexAt > 15) return null;
  const indexText = plain.toString("latin1", indexAt, comma);
  if (!INDEX_RE.test(indexText) || !startsAt(plain, comma, AFTER_INDEX)) return null;
  const dataAt = comma + AFTER_INDEX.length;
  const dataEnd = plain.indexOf(QUOTE, dataAt);
  if (dataEnd < 0) return null;
  const backslash = plain.indexOf(BACKSLASH, dataAt);
  if (backslash >= 0 && backslash < dataEnd) return null;
  let isLast: boolean;
  if (plain.length - dataEnd === END_TRUE.length && startsAt(plain, dataEnd, END_TRUE)) isLast = true;
  else if (plain.length - dataEnd === END_FALSE.length && startsAt(plain, dataEnd, END_FALSE)) isLast = false;
  else return null;
  return { type: type.text, jobId: job.text, index: Number(indexText), isLast, frame: plain, dataStart: dataAt, dataEnd };
}

/** What `sendChunks` needs of a channel. */
export interface ChunkSink {
  readonly closed: boolean;
  /** Sends one encoded JSON object; done with `json` when it returns (it may be reused). */
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
  // One frame buffer for the whole transfer: the sink has encrypted a frame before it returns.
  const scratch = Buffer.allocUnsafe(chunkFrameBytes(chunkSize));
  for (let i = 0; i < count; i++) {
    await sink.drained();
    if (sink.closed) return false;
    const frame = encodeChunkFrame(type, jobId, i, bytes.subarray(i * chunkSize, (i + 1) * chunkSize), i === count - 1, scratch);
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
    if (!Number.isSafeInteger(totalBytes)) throw assemblyError("invalid_header", "total_bytes must be an integer");
    if (!Number.isSafeInteger(numChunks)) throw assemblyError("invalid_header", "num_chunks must be an integer");
    // Upstream's order: empty_bundle, chunk_count_mismatch, oversized.
    if (totalBytes <= 0) throw assemblyError("empty_bundle", "announced an empty transfer");
    if (numChunks <= 0) throw assemblyError("chunk_count_mismatch", `num_chunks ${numChunks} must be positive`);
    if (totalBytes > maxBytes) {
      throw assemblyError("oversized", `announced size ${totalBytes} bytes exceeds the limit of ${maxBytes} bytes`);
    }
    const expected = chunkCount(totalBytes, chunkSize);
    if (numChunks !== expected) {
      throw assemblyError(
        "chunk_count_mismatch",
        `num_chunks ${numChunks} does not match ${totalBytes} bytes in ${chunkSize}-byte chunks (expected ${expected})`,
      );
    }
    if (typeof sha256Hex !== "string" || !SHA256_HEX_RE.test(sha256Hex)) {
      throw assemblyError("invalid_header", "sha256 must be 64 hex digits");
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
      throw assemblyError("post_completion", "chunk received after the transfer ended");
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
      throw assemblyError("out_of_order", `expected chunk ${this.#next}, got ${String(index)}`);
    }
    if (typeof isLast !== "boolean") {
      throw assemblyError("chunk_count_mismatch", `chunk ${index}: is_last must be a boolean`);
    }
    const last = index === this.numChunks - 1;
    if (index >= this.numChunks || isLast !== last) {
      throw assemblyError(
        "chunk_count_mismatch",
        `chunk ${index}: is_last=${isLast} but ${this.numChunks} chunks were announced`,
      );
    }
    if (typeof text !== "string") {
      throw assemblyError("chunk_decode_failed", `chunk ${index}: data_b64 is not a string`);
    }
    const size = base64DecodedLength(text);
    if (size === null) throw assemblyError("chunk_decode_failed", `chunk ${index}: data_b64 is not valid base64`);
    if (this.#received + size > this.totalBytes) {
      throw assemblyError("oversized", `chunk ${index} goes past the announced ${this.totalBytes} bytes`);
    }
    const buffer = (this.#buffer ??= Buffer.allocUnsafe(this.totalBytes));
    const written = decodeBase64Into(text, buffer, this.#received);
    if (written === null) throw assemblyError("chunk_decode_failed", `chunk ${index}: data_b64 is not valid base64`);
    return this.#commit(buffer, written, last);
  }

  /**
   * The fast way for a frame read by `readCanonicalChunkFrame`: takes the
   * chunk when it is exactly the one expected and its text strict base64, and
   * returns what `push` would. Anything else returns undefined with nothing
   * taken (the caller then parses the frame and calls `push`, which gives the
   * error); errors that only show once the chunk is taken (size, hash) are
   * thrown and close the assembler, as `push` does.
   */
  pushCanonical(view: CanonicalChunkFrame): Buffer | null | undefined {
    const { index, isLast } = view;
    if (this.#closed || index !== this.#next || index >= this.numChunks || isLast !== (index === this.numChunks - 1)) return undefined;
    // Read as latin1, one character a byte: the strict decode needs no ASCII scan (see decodeBase64Into).
    const text = view.frame.toString("latin1", view.dataStart, view.dataEnd);
    const size = base64DecodedLength(text);
    if (size === null || this.#received + size > this.totalBytes) return undefined;
    const buffer = (this.#buffer ??= Buffer.allocUnsafe(this.totalBytes));
    // A failed decode leaves garbage past #received only, which the next write covers.
    const written = decodeBase64Into(text, buffer, this.#received, true);
    if (written === null) return undefined;
    try {
      return this.#commit(buffer, written, isLast);
    } catch (err) {
      this.#closed = true;
      this.#buffer = null;
      throw err;
    }
  }

  /** Hashes and counts `written` bytes just decoded at #received; on the last chunk, checks the whole. */
  #commit(buffer: Buffer, written: number, last: boolean): Buffer | null {
    const data = buffer.subarray(this.#received, this.#received + written);
    this.#hash.update(data);
    this.#received += data.length;
    this.#next += 1;
    if (!last) return null;

    this.#closed = true;
    if (this.#received < this.totalBytes) {
      throw assemblyError("undersized", `received ${this.#received} of the announced ${this.totalBytes} bytes`);
    }
    const digest = this.#hash.digest("hex");
    if (digest !== this.sha256Hex) {
      throw assemblyError("hash_mismatch", `SHA-256 ${digest} does not match the announced ${this.sha256Hex}`);
    }
    this.#buffer = null;
    return buffer;
  }
}
