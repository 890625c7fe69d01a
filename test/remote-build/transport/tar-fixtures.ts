/**
 * Hand-made tarballs for hostile-input tests: raw 512-byte ustar headers with
 * correct checksums for any typeflag, name, linkname or declared size, so
 * links, devices, traversal, lying sizes and gzip bombs can be produced
 * without any tar library smoothing them over.
 */
import { createGzip, gzipSync } from "node:zlib";

export interface RawEntry {
  /** Header name field (raw bytes allowed, e.g. with a NUL or invalid UTF-8). */
  name: string | Buffer;
  /** Typeflag character; default "0" (regular file). */
  type?: string;
  /** File data written after the header (default none). */
  data?: Buffer | string;
  /** Size written into the header; default the data length. */
  declaredSize?: number;
  linkname?: string;
  mode?: number;
  /** ustar prefix field (only with the POSIX magic). */
  prefix?: string;
  /** Header magic: POSIX ustar (default), GNU or old v7 (none). */
  magic?: "ustar" | "gnu" | "v7";
  /** Corrupt the checksum. */
  badChecksum?: boolean;
  /** Raw bytes for the size field (12 bytes), overriding declaredSize. */
  sizeField?: Buffer;
}

function octal(value: number, length: number): string {
  return value.toString(8).padStart(length - 1, "0") + "\0";
}

export function rawHeader(e: RawEntry): Buffer {
  const block = Buffer.alloc(512);
  const name = typeof e.name === "string" ? Buffer.from(e.name, "utf8") : e.name;
  name.copy(block, 0, 0, Math.min(name.length, 100));
  block.write(octal(e.mode ?? 0o644, 8), 100, 8, "latin1");
  block.write(octal(0, 8), 108, 8, "latin1");
  block.write(octal(0, 8), 116, 8, "latin1");
  const dataLength = e.data === undefined ? 0 : Buffer.byteLength(e.data);
  const size = e.declaredSize ?? dataLength;
  if (e.sizeField !== undefined) {
    e.sizeField.copy(block, 124, 0, 12);
  } else if (size > 0o77777777777) {
    // GNU base-256 for sizes that do not fit in 11 octal digits.
    block[124] = 0x80;
    let v = BigInt(size);
    for (let i = 135; i > 124; i--) {
      block[i] = Number(v & 0xffn);
      v >>= 8n;
    }
  } else {
    block.write(octal(size, 12), 124, 12, "latin1");
  }
  block.write(octal(0, 12), 136, 12, "latin1");
  block.fill(0x20, 148, 156);
  block.write(e.type ?? "0", 156, 1, "latin1");
  if (e.linkname !== undefined) block.write(e.linkname, 157, 100, "utf8");
  const magic = e.magic ?? "ustar";
  if (magic === "ustar") {
    block.write("ustar\0", 257, 6, "latin1");
    block.write("00", 263, 2, "latin1");
  } else if (magic === "gnu") {
    block.write("ustar  \0", 257, 8, "latin1");
  }
  if (e.prefix !== undefined) block.write(e.prefix, 345, 155, "utf8");
  let sum = 0;
  for (const byte of block) sum += byte;
  if (e.badChecksum === true) sum += 1;
  block.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, 8, "latin1");
  return block;
}

function pad(length: number): Buffer {
  const rem = length % 512;
  return Buffer.alloc(rem === 0 ? 0 : 512 - rem);
}

/** Header + data + padding of one entry. */
export function rawEntry(e: RawEntry): Buffer {
  const data = e.data === undefined ? Buffer.alloc(0) : Buffer.from(e.data);
  return Buffer.concat([rawHeader(e), data, pad(data.length)]);
}

/** A pax extended header ('x') entry carrying the given records. */
export function paxEntry(records: Record<string, string | Buffer>): RawEntry {
  const parts: Buffer[] = [];
  for (const [key, value] of Object.entries(records)) {
    const body = Buffer.concat([Buffer.from(` ${key}=`), Buffer.from(value), Buffer.from("\n")]);
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    parts.push(Buffer.from(String(len)), body);
  }
  return { name: "PaxHeader", type: "x", data: Buffer.concat(parts) };
}

/** A GNU long-name ('L') entry. */
export function gnuLongName(name: string | Buffer): RawEntry {
  const data = Buffer.concat([Buffer.from(name), Buffer.from([0])]);
  return { name: "././@LongLink", type: "L", data, magic: "gnu" };
}

/** A plain tar stream of entries, with the end-of-archive record unless `eof: false`. */
export function tarOf(entries: RawEntry[], opts: { eof?: boolean } = {}): Buffer {
  const blocks = entries.map(rawEntry);
  if (opts.eof !== false) blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/** A gzip tarball of entries. */
export function tgzOf(entries: RawEntry[], opts: { eof?: boolean } = {}): Buffer {
  return gzipSync(tarOf(entries, opts));
}

/** Regular file entry shorthand. */
export function file(name: string, data: string | Buffer = "x", extra: Partial<RawEntry> = {}): RawEntry {
  return { name, data, ...extra };
}

/**
 * A gzip stream of `head` followed by `zeroBytes` zero bytes, compressed as it
 * is generated (200 MiB of zeros come out at about 200 KiB).
 */
export async function gzipWithZeros(head: Buffer, zeroBytes: number): Promise<Buffer> {
  const gz = createGzip({ level: 9 });
  const out: Buffer[] = [];
  gz.on("data", (chunk: Buffer) => out.push(chunk));
  const done = new Promise<void>((resolve, reject) => {
    gz.on("end", resolve);
    gz.on("error", reject);
  });
  const write = (chunk: Buffer) =>
    new Promise<void>((resolve, reject) => {
      gz.write(chunk, (err) => {
        if (err) reject(err);
        else resolve();
      });
    });
  await write(head);
  const mib = Buffer.alloc(1024 * 1024);
  let left = zeroBytes;
  while (left > 0) {
    const n = Math.min(left, mib.length);
    await write(n === mib.length ? mib : mib.subarray(0, n));
    left -= n;
  }
  gz.end();
  await done;
  return Buffer.concat(out);
}

export const MiB = 1024 * 1024;

/** A bomb: one regular member `name` holding `zeroBytes` zeros (declared honestly). */
export async function zeroMemberBomb(name: string, zeroBytes: number): Promise<Buffer> {
  const head = rawHeader({ name, declaredSize: zeroBytes });
  // Data zeros, padding zeros and the end-of-archive record are all zeros.
  return gzipWithZeros(head, zeroBytes + (512 - (zeroBytes % 512)) % 512 + 1024);
}

/** A bomb hidden after the end-of-archive record: a tiny valid archive, then `zeroBytes` zeros. */
export async function trailingZeroBomb(entries: RawEntry[], zeroBytes: number): Promise<Buffer> {
  return gzipWithZeros(tarOf(entries), zeroBytes);
}
