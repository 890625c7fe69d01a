/**
 * Writes the deterministic gzip tarballs the peer link carries (config bundles
 * and build artifacts): regular files only, uid/gid 0, mtime 0, a pax `path`
 * record for long names, and stored (uncompressed) gzip members for data that
 * does not compress.
 */
import { promisify } from "node:util";
import { crc32, deflateRawSync, gzip as gzipCallback, gzipSync } from "node:zlib";
import { BLOCK, checkMemberPath, padding, tarSafetyError } from "./tar-policy.ts";

const gzipAsync = promisify(gzipCallback);

export interface TarFileInput {
  path: string;
  data: Uint8Array;
  /** Default 0o644. */
  mode?: number;
}

function writeOctal(block: Buffer, offset: number, length: number, value: number): void {
  block.write(value.toString(8).padStart(length - 1, "0") + "\0", offset, length, "latin1");
}

function ustarHeader(name: string, size: number, mode: number, typeflag = "0"): Buffer {
  const block = Buffer.alloc(BLOCK);
  block.write(name, 0, 100, "utf8");
  writeOctal(block, 100, 8, mode);
  writeOctal(block, 108, 8, 0); // uid
  writeOctal(block, 116, 8, 0); // gid
  writeOctal(block, 124, 12, size);
  writeOctal(block, 136, 12, 0); // mtime
  block.fill(0x20, 148, 156);
  block.write(typeflag, 156, 1, "latin1");
  block.write("ustar\0", 257, 6, "latin1");
  block.write("00", 263, 2, "latin1");
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, 8, "latin1");
  return block;
}

/** The longest prefix of `text` that fits in `maxBytes` of UTF-8 without splitting a character. */
function truncateUtf8(text: string, maxBytes: number): string {
  let out = "";
  let bytes = 0;
  for (const ch of text) {
    const n = Buffer.byteLength(ch, "utf8");
    if (bytes + n > maxBytes) break;
    out += ch;
    bytes += n;
  }
  return out;
}

function paxPathHeader(name: string): Buffer[] {
  const body = (len: number) => `${len} path=${name}\n`;
  let len = Buffer.byteLength(body(0), "utf8");
  while (Buffer.byteLength(body(len), "utf8") !== len) len = Buffer.byteLength(body(len), "utf8");
  const data = Buffer.from(body(len), "utf8");
  return [ustarHeader("PaxHeader", data.length, 0o644, "x"), data, Buffer.alloc(padding(data.length))];
}

/**
 * Writes a deterministic gzip tarball: regular files only, in the given order,
 * uid/gid 0, mtime 0, no user names, a pax `path` record for names over 100
 * bytes. Paths go through the same checks as reading.
 *
 * With `level: "auto"` every member is its own gzip member (a gzip stream may
 * be several members back to back; every gunzip, Python's included, reads them
 * as one): members that hardly compress, like firmware images, are stored
 * (deflate's uncompressed blocks, written here with zlib's CRC-32, which is a
 * copy plus a checksum instead of zlib's per-block bookkeeping), the rest use
 * level 1. A 64 MiB artifact set is then packed at memory speed while an ELF
 * still shrinks to a third.
 */
export async function createTarGz(files: readonly TarFileInput[], level: number | "auto" = 6): Promise<Buffer> {
  const members: { blocks: Buffer[]; data: Buffer }[] = [];
  const seen = new Set<string>();
  for (const file of files) {
    const checked = checkMemberPath(file.path);
    if (checked.path === "" || checked.trailingSlash) {
      throw tarSafetyError("unsafe_path", `no file name in ${JSON.stringify(file.path)}`);
    }
    if (seen.has(checked.path)) throw tarSafetyError("duplicate", `${JSON.stringify(checked.path)} given twice`);
    seen.add(checked.path);
    const data = Buffer.from(file.data.buffer, file.data.byteOffset, file.data.byteLength);
    const blocks: Buffer[] = [];
    if (Buffer.byteLength(checked.path, "utf8") > 100) blocks.push(...paxPathHeader(checked.path));
    blocks.push(ustarHeader(truncateUtf8(checked.path, 100), data.length, file.mode ?? 0o644));
    blocks.push(data, Buffer.alloc(padding(data.length)));
    members.push({ blocks, data });
  }
  const trailer = Buffer.alloc(2 * BLOCK);
  if (level !== "auto") return gzipAsync(Buffer.concat([...members.flatMap((m) => m.blocks), trailer]), { level });
  // Each part is either a finished gzip member or tar bytes still to be stored.
  const parts: ({ gzip: Buffer } | { stored: Buffer[]; size: number })[] = [];
  for (const { blocks, data } of members) {
    if (!compressible(data)) parts.push({ stored: blocks, size: blocks.reduce((n, b) => n + b.length, 0) });
    else if (data.length <= SMALL_MEMBER_BYTES) parts.push({ gzip: gzipSync(Buffer.concat(blocks), { level: 1 }) });
    else parts.push({ gzip: await gzipAsync(Buffer.concat(blocks), { level: 1 }) });
  }
  parts.push({ gzip: gzipSync(trailer, { level: 1 }) });
  const total = parts.reduce((n, p) => n + ("gzip" in p ? p.gzip.length : storedGzipSize(p.size)), 0);
  const out = Buffer.allocUnsafe(total);
  let offset = 0;
  for (const part of parts) {
    if ("gzip" in part) offset += part.gzip.copy(out, offset);
    else offset = writeStoredGzip(part.stored, part.size, out, offset);
  }
  return out;
}

/** Members up to this size are compressed inline; bigger ones in zlib's thread pool. */
const SMALL_MEMBER_BYTES = 256 * 1024;
/** Largest deflate stored block (RFC 1951 §3.2.4: LEN is 16 bits). */
const STORED_BLOCK_MAX = 65_535;
/** gzip header with no name, mtime 0, XFL 0, OS 255 (unknown) (RFC 1952 §2.3). */
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff]);

/** Bytes of a gzip member that stores `size` bytes uncompressed. */
export function storedGzipSize(size: number): number {
  return GZIP_HEADER.length + size + 5 * Math.max(1, Math.ceil(size / STORED_BLOCK_MAX)) + 8;
}

/**
 * Writes one gzip member holding the concatenation of `parts` (`size` bytes)
 * in deflate stored blocks into `out` at `offset`; returns the offset after it.
 */
export function writeStoredGzip(parts: readonly Buffer[], size: number, out: Buffer, offset: number): number {
  let at = offset + GZIP_HEADER.copy(out, offset);
  let crc = 0;
  let part = 0;
  let inPart = 0;
  let left = size;
  do {
    const len = Math.min(left, STORED_BLOCK_MAX);
    left -= len;
    out[at] = left === 0 ? 0x01 : 0x00; // BFINAL on the last block, BTYPE 00 (stored)
    out.writeUInt16LE(len, at + 1);
    out.writeUInt16LE(~len & 0xffff, at + 3);
    at += 5;
    // Copy `len` bytes from the parts, continuing where the last block ended.
    for (let need = len; need > 0; ) {
      const src = parts[part];
      if (src === undefined) throw new RangeError(`the parts hold fewer than ${size} bytes`);
      const n = Math.min(need, src.length - inPart);
      const slice = src.subarray(inPart, inPart + n);
      crc = crc32(slice, crc);
      at += slice.copy(out, at);
      need -= n;
      inPart += n;
      if (inPart === src.length) {
        part++;
        inPart = 0;
      }
    }
  } while (left > 0);
  out.writeUInt32LE(crc >>> 0, at);
  out.writeUInt32LE(size % 2 ** 32, at + 4);
  return at + 8;
}

/**
 * Whether compressing is worth it: a 16 KiB sample from the middle shrinks by
 * at least 10 % at level 1 (a fraction of a millisecond, so done inline).
 */
function compressible(data: Buffer): boolean {
  if (data.length < 4096) return true;
  const start = Math.max(0, Math.floor(data.length / 2) - 8 * 1024);
  const sample = data.subarray(start, start + 16 * 1024);
  return deflateRawSync(sample, { level: 1 }).length < sample.length * 0.9;
}