/**
 * Reads the gzip tarballs that cross the peer link (config bundles and build
 * artifacts) under the policy in tar-policy.ts. Everything in them comes from
 * another machine, so the reader trusts nothing:
 *
 * - It inflates with node:zlib and parses ustar/pax/GNU headers itself, one
 *   header at a time, so every entry is judged from its header before a byte of
 *   its data is read, and a gzip bomb is stopped after at most a little more
 *   than `maxTotalBytes` of inflated output (inflation is pulled, never run
 *   ahead: the inflated stream is counted as it arrives). Why this is not a
 *   library parser: docs/ARCHITECTURE.md, "Why the tar reader is what it is".
 * - Only regular files are accepted. Symlinks, hard links, devices, FIFOs and
 *   unknown entry types are `not_a_file`. Directory entries are rejected too by
 *   default; with `directories: "skip"` they are dropped (their path is still
 *   checked), since the files under them create the folders anyway.
 * - Malformed framing is refused, never repaired: a bad checksum, a bad number
 *   field, a pax record whose length does not match, a NUL inside a long name.
 * - Sizes are capped per member (from the header, before reading) and in total.
 */
import { Readable, pipeline } from "node:stream";
import { createGunzip } from "node:zlib";
import { BLOCK, DEFAULT_MAX_MEMBERS, checkMemberPath, checkOptions, inflatedLimit, padding, type ReadTarOptions, type TarEntry, tarSafetyError } from "./tar-policy.ts";

/** Cap on a pax extended header or GNU long-name record. */
const MAX_META_BYTES = 64 * 1024;
/** Slices fed to the inflater, so it is never handed the whole input at once. */
const FEED_BYTES = 16 * 1024;
/** Stream buffer sizes between the input, the inflater and the parser. */
const STREAM_BUFFER_BYTES = 16 * 1024;

const utf8 = new TextDecoder("utf-8", { fatal: true });

function decodeName(bytes: Buffer, what: string): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw tarSafetyError("unsafe_path", `${what} is not valid UTF-8`);
  }
}

/** A NUL-terminated header string field. */
function cString(block: Buffer, offset: number, length: number): Buffer {
  const field = block.subarray(offset, offset + length);
  const end = field.indexOf(0);
  return end === -1 ? field : field.subarray(0, end);
}

/** A numeric header field: octal text, or GNU base-256. Infinity when too big to matter. */
function numericField(block: Buffer, offset: number, length: number, what: string): number {
  const field = block.subarray(offset, offset + length);
  const first = field[0] ?? 0;
  if (first & 0x80) {
    if (first === 0xff) throw tarSafetyError("malformed", `negative ${what} in tar header`);
    let value = first & 0x7f;
    for (let i = 1; i < field.length; i++) {
      value = value * 256 + (field[i] ?? 0);
      if (value > Number.MAX_SAFE_INTEGER) return Infinity;
    }
    return value;
  }
  const text = field.toString("latin1").replace(/[\0 ]+$/, "").replace(/^ +/, "");
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) throw tarSafetyError("malformed", `bad ${what} field in tar header`);
  const value = parseInt(text, 8);
  return Number.isSafeInteger(value) ? value : Infinity;
}

function checksumOk(block: Buffer): boolean {
  const stored = numericField(block, 148, 8, "checksum");
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0);
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  return stored === unsigned || stored === signed;
}

function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

/** Parses pax extended header records (`"<len> key=value\n"`). */
function parsePax(data: Buffer): Map<string, Buffer> {
  const records = new Map<string, Buffer>();
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break; // NUL padding after the last record
    const space = data.indexOf(0x20, pos);
    if (space === -1 || space - pos > 10) throw tarSafetyError("malformed", "bad pax header record");
    const lenText = data.toString("latin1", pos, space);
    if (!/^[0-9]+$/.test(lenText)) throw tarSafetyError("malformed", "bad pax header record length");
    const len = parseInt(lenText, 10);
    const end = pos + len;
    if (len <= space - pos + 1 || end > data.length || data[end - 1] !== 0x0a) {
      throw tarSafetyError("malformed", "bad pax header record length");
    }
    const record = data.subarray(space + 1, end - 1);
    const eq = record.indexOf(0x3d);
    if (eq <= 0) throw tarSafetyError("malformed", "bad pax header record");
    records.set(record.toString("latin1", 0, eq), record.subarray(eq + 1));
    pos = end;
  }
  return records;
}

/** Pulls exact byte counts out of the inflated stream, counting everything that arrives. */
class InflatedReader {
  readonly #it: AsyncIterator<Buffer>;
  readonly #limit: number;
  #parts: Buffer[] = [];
  #buffered = 0;
  #total = 0;
  #ended = false;

  constructor(it: AsyncIterator<Buffer>, limit: number) {
    this.#it = it;
    this.#limit = limit;
  }

  get inflatedBytes(): number {
    return this.#total;
  }

  async #pull(): Promise<boolean> {
    if (this.#ended) return false;
    let result: IteratorResult<Buffer>;
    try {
      result = await this.#it.next();
    } catch (err) {
      throw tarSafetyError("malformed", `corrupt gzip stream: ${(err as Error).message}`, { cause: err });
    }
    if (result.done === true) {
      this.#ended = true;
      return false;
    }
    const chunk = result.value;
    this.#total += chunk.length;
    if (this.#total > this.#limit) {
      throw tarSafetyError(
        "too_large",
        `archive inflates past ${this.#limit} bytes (stopped after ${this.#total} inflated bytes)`,
      );
    }
    this.#parts.push(chunk);
    this.#buffered += chunk.length;
    return true;
  }

  /** Exactly n bytes; null at a clean end of stream (nothing buffered); `malformed` when it ends mid-way. */
  async read(n: number): Promise<Buffer | null> {
    while (this.#buffered < n) {
      if (!(await this.#pull())) {
        if (this.#buffered === 0) return null;
        throw tarSafetyError("malformed", "archive is truncated");
      }
    }
    const all = this.#parts.length === 1 ? (this.#parts[0] as Buffer) : Buffer.concat(this.#parts, this.#buffered);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.#parts = rest.length > 0 ? [rest] : [];
    this.#buffered = rest.length;
    return out;
  }

  /** Reads exactly n bytes into a fresh buffer, without concatenating everything that is buffered. */
  async readInto(n: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      if (this.#buffered === 0 && !(await this.#pull())) {
        throw tarSafetyError("malformed", "archive is truncated");
      }
      const head = this.#parts[0] as Buffer;
      const take = Math.min(head.length, n - filled);
      head.copy(out, filled, 0, take);
      filled += take;
      this.#buffered -= take;
      if (take === head.length) this.#parts.shift();
      else this.#parts[0] = head.subarray(take);
    }
    return out;
  }

  async skip(n: number): Promise<void> {
    let left = n;
    while (left > 0) {
      if (this.#buffered === 0 && !(await this.#pull())) {
        throw tarSafetyError("malformed", "archive is truncated");
      }
      const head = this.#parts[0] as Buffer;
      const take = Math.min(head.length, left);
      left -= take;
      this.#buffered -= take;
      if (take === head.length) this.#parts.shift();
      else this.#parts[0] = head.subarray(take);
    }
  }

  /** Inflates the rest (trailing padding; verifies the gzip trailer), still counted against the limit. */
  async drain(): Promise<void> {
    this.#parts = [];
    this.#buffered = 0;
    while (await this.#pull()) {
      this.#parts = [];
      this.#buffered = 0;
    }
  }
}

function describeType(flag: string): string {
  switch (flag) {
    case "1":
      return "hard link";
    case "2":
      return "symlink";
    case "3":
      return "character device";
    case "4":
      return "block device";
    case "5":
    case "D":
      return "directory";
    case "6":
      return "FIFO";
    case "g":
      return "pax global header";
    default:
      return `entry of type ${JSON.stringify(flag)}`;
  }
}

async function* slices(bytes: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let pos = 0; pos < bytes.length; pos += size) {
    yield bytes.subarray(pos, pos + size);
  }
  await Promise.resolve();
}

/**
 * Reads a gzip tarball held in memory. Throws `TarSafetyError` (see the module
 * comment for the rules); never writes anything.
 */
export async function readTarGz(bytes: Buffer, opts: ReadTarOptions): Promise<TarEntry[]> {
  checkOptions(opts);
  if (bytes.length < 2 || bytes[0] !== 0x1f || bytes[1] !== 0x8b) {
    throw tarSafetyError("malformed", "not a gzip file");
  }
  return readTarGzStream(slices(bytes, opts.bufferBytes ?? FEED_BYTES), opts);
}

/**
 * Same as `readTarGz` for a gzip tarball arriving as a stream of chunks. The
 * source is pulled only as fast as entries are parsed, so a rejected archive
 * is not read (or inflated) any further.
 */
export async function readTarGzStream(source: AsyncIterable<Uint8Array>, opts: ReadTarOptions): Promise<TarEntry[]> {
  checkOptions(opts);
  // Small buffers on both sides: input is pulled, and inflated, only as parsing needs it.
  const buffer = opts.bufferBytes ?? STREAM_BUFFER_BYTES;
  const streamOptions = { writableHighWaterMark: buffer, readableHighWaterMark: buffer, chunkSize: buffer };
  const gunzip = createGunzip(streamOptions);
  const input = Readable.from(source, { objectMode: false, highWaterMark: buffer });
  const inflated = pipeline(input, gunzip, () => {
    // Errors surface through the iterator below; nothing else to do here.
  });
  const iterator = (inflated as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  const reader = new InflatedReader(iterator, inflatedLimit(opts));
  try {
    return await parseTar(reader, opts);
  } finally {
    inflated.destroy();
  }
}

async function parseTar(reader: InflatedReader, opts: ReadTarOptions): Promise<TarEntry[]> {
  const maxMembers = opts.maxMembers ?? DEFAULT_MAX_MEMBERS;
  const entries: TarEntry[] = [];
  const files = new Set<string>();
  const dirs = new Set<string>();
  let members = 0;
  let total = 0;
  let pax: Map<string, Buffer> | null = null;
  let longName: Buffer | null = null;

  for (;;) {
    const block = await reader.read(BLOCK);
    if (block === null || isZeroBlock(block)) {
      if (pax !== null || longName !== null) throw tarSafetyError("malformed", "archive ends after an extended header");
      if (block === null && members === 0) throw tarSafetyError("malformed", "empty stream: not a tar archive");
      break;
    }
    if (!checksumOk(block)) throw tarSafetyError("malformed", "bad tar header checksum (not a tar archive or corrupt)");

    const flag = String.fromCharCode(block[156] ?? 0);
    const headerSize = numericField(block, 124, 12, "size");

    // Metadata records that describe the next entry.
    if (flag === "x" || flag === "L" || flag === "K") {
      if (headerSize > MAX_META_BYTES) throw tarSafetyError("malformed", `extended header of ${headerSize} bytes is too large`);
      const data = await reader.readInto(headerSize);
      await reader.skip(padding(headerSize));
      if (flag === "x") {
        pax = new Map([...(pax ?? new Map<string, Buffer>()), ...parsePax(data)]);
      } else if (flag === "L") {
        const end = data.indexOf(0);
        const name = end === -1 ? data : data.subarray(0, end);
        if (end !== -1 && data.subarray(end).some((b) => b !== 0)) {
          throw tarSafetyError("unsafe_path", "GNU long name contains NUL");
        }
        longName = name;
      }
      // "K" (GNU long link name) only matters for links, which are rejected anyway.
      continue;
    }

    members += 1;
    if (members > maxMembers) {
      throw tarSafetyError("too_many_members", `archive has more than ${maxMembers} entries`);
    }

    // Name: pax path > GNU long name > ustar prefix + name.
    let rawName: string;
    const paxPath = pax?.get("path");
    if (paxPath !== undefined) {
      rawName = decodeName(paxPath, "pax path");
    } else if (longName !== null) {
      rawName = decodeName(longName, "GNU long name");
    } else {
      const name = decodeName(cString(block, 0, 100), "entry name");
      const magic = block.toString("latin1", 257, 263);
      const prefix = magic === "ustar\0" ? decodeName(cString(block, 345, 155), "entry name prefix") : "";
      rawName = prefix === "" ? name : `${prefix}/${name}`;
    }
    let size = headerSize;
    const paxSize = pax?.get("size");
    if (paxSize !== undefined) {
      const text = paxSize.toString("latin1");
      if (!/^[0-9]+$/.test(text)) throw tarSafetyError("malformed", "bad pax size record");
      size = Number(text);
      if (!Number.isSafeInteger(size)) size = Infinity;
    }
    pax = null;
    longName = null;

    const checked = checkMemberPath(rawName);
    // Old (v7) archives mark folders with a trailing slash on a regular-file entry.
    const isDir = flag === "5" || flag === "D" || (flag === "\0" && checked.trailingSlash && size === 0);
    const isFile = !isDir && (flag === "0" || flag === "\0" || flag === "7");

    if (isDir && opts.directories === "skip") {
      if (checked.path !== "" && files.has(checked.path)) {
        throw tarSafetyError("duplicate", `directory ${JSON.stringify(checked.path)} is also a file in the archive`);
      }
      if (size > opts.maxMemberBytes) throw tarSafetyError("member_too_large", `directory entry declares ${size} bytes`);
      if (checked.path !== "") dirs.add(checked.path);
      await reader.skip(size + padding(size));
      continue;
    }
    if (!isFile) {
      throw tarSafetyError("not_a_file", `archive entry ${JSON.stringify(rawName)} is a ${describeType(flag)}, not a regular file`);
    }
    if (checked.path === "" || checked.trailingSlash) {
      throw tarSafetyError("unsafe_path", `archive file entry ${JSON.stringify(rawName)} has no file name`);
    }
    const filePath = checked.path;
    if (files.has(filePath) || dirs.has(filePath)) {
      throw tarSafetyError("duplicate", `${JSON.stringify(filePath)} appears more than once in the archive`);
    }
    const parts = filePath.split("/");
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join("/");
      if (files.has(parent)) {
        throw tarSafetyError("duplicate", `${JSON.stringify(parent)} is both a file and a folder in the archive`);
      }
      dirs.add(parent);
    }

    if (size > opts.maxMemberBytes) {
      throw tarSafetyError(
        "member_too_large",
        `${JSON.stringify(filePath)} declares ${size} bytes, over the limit of ${opts.maxMemberBytes}`,
      );
    }
    if (total + size > opts.maxTotalBytes) {
      throw tarSafetyError("too_large", `archive contents exceed the limit of ${opts.maxTotalBytes} bytes`);
    }
    total += size;
    files.add(filePath);
    const data = await reader.readInto(size);
    await reader.skip(padding(size));
    const mode = numericField(block, 100, 8, "mode");
    entries.push({ path: filePath, data, mode: Number.isFinite(mode) ? mode & 0o7777 : 0o644 });
  }

  await reader.drain();
  return entries;
}
