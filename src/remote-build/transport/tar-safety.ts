/**
 * Safe reading and writing of the gzip tarballs that cross the peer link
 * (config bundles and build artifacts). Everything in them comes from another
 * machine, so the reader trusts nothing:
 *
 * - It inflates with node:zlib and parses ustar/pax/GNU headers itself, one
 *   header at a time, so every entry is judged from its header before a byte of
 *   its data is read, and a gzip bomb is stopped after at most a little more
 *   than `maxTotalBytes` of inflated output (inflation is pulled, never run
 *   ahead: the inflated stream is counted as it arrives).
 * - Only regular files are accepted. Symlinks, hard links, devices, FIFOs and
 *   unknown entry types are `not_a_file`. Directory entries are rejected too by
 *   default; with `directories: "skip"` they are dropped (their path is still
 *   checked), since the files under them create the folders anyway.
 * - Paths must be relative, `/`-separated and stay inside the destination: no
 *   leading `/`, no drive letter, no backslash, no `..` segment, no NUL or
 *   control characters, valid UTF-8. `.` segments and repeated slashes are
 *   normalised away (`./a//b` is `a/b`).
 * - Sizes are capped per member (from the header, before reading) and in total.
 *
 * `extractSafely` writes the accepted entries into a destination that must not
 * exist yet: it builds a fresh temp folder beside it and renames it into place,
 * so nothing is ever written through a pre-existing symlink and a failure
 * leaves nothing behind.
 */
import { promises as fs, type Stats } from "node:fs";
import path from "node:path";
import { Readable, pipeline } from "node:stream";
import { promisify } from "node:util";
import { crc32, createGunzip, deflateRawSync, gzip as gzipCallback, gzipSync } from "node:zlib";

const gzipAsync = promisify(gzipCallback);

export type TarSafetyErrorCode =
  | "malformed"
  | "not_a_file"
  | "unsafe_path"
  | "member_too_large"
  | "too_large"
  | "too_many_members"
  | "duplicate"
  | "destination_exists";

export class TarSafetyError extends Error {
  readonly code: TarSafetyErrorCode;

  constructor(code: TarSafetyErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TarSafetyError";
    this.code = code;
  }
}

export interface TarEntry {
  /** Normalised relative path, `/`-separated. */
  path: string;
  data: Buffer;
  /** Permission bits from the header (informational; extraction always writes 0644). */
  mode: number;
}

export interface ReadTarOptions {
  /** Largest declared size of one member; checked from its header before its data is read. */
  maxMemberBytes: number;
  /** Largest sum of member sizes; also bounds how much the gzip stream may inflate. */
  maxTotalBytes: number;
  /** Most entries (files and skipped directories). Default 10 000. */
  maxMembers?: number;
  /** What to do with directory entries: reject (`not_a_file`, the default) or skip them. */
  directories?: "reject" | "skip";
  /**
   * Slice and buffer size of the pipeline (default 16 KiB). Small slices make a
   * rejected archive stop early; a reader of an already-buffered archive that
   * expects large members (artifacts) can pass more for speed. The inflated
   * bytes are counted against the caps either way.
   */
  bufferBytes?: number;
}

export const DEFAULT_MAX_MEMBERS = 10_000;
/** Longest accepted path, in UTF-8 bytes, and longest segment. */
const MAX_PATH_BYTES = 4096;
const MAX_SEGMENT_BYTES = 255;
/** Cap on a pax extended header or GNU long-name record. */
const MAX_META_BYTES = 64 * 1024;
const BLOCK = 512;
/** Slices fed to the inflater, so it is never handed the whole input at once. */
const FEED_BYTES = 16 * 1024;
/** Stream buffer sizes between the input, the inflater and the parser. */
const STREAM_BUFFER_BYTES = 16 * 1024;

/**
 * How far the inflated stream may run past `maxTotalBytes`: headers, pax
 * records, block padding and the end-of-archive record are not member data.
 */
export function inflatedLimit(opts: ReadTarOptions): number {
  const members = opts.maxMembers ?? DEFAULT_MAX_MEMBERS;
  return opts.maxTotalBytes + 1024 * 1024 + members * 4 * BLOCK;
}

// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f]/;
const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Normalises and checks one member path; throws `unsafe_path`. Returns the
 * path without `.` segments or repeated slashes, and whether it named a
 * directory (trailing slash).
 */
export function checkMemberPath(raw: string): { path: string; trailingSlash: boolean } {
  const shown = JSON.stringify(raw.length > 200 ? raw.slice(0, 200) + "…" : raw);
  const bad = (why: string) => new TarSafetyError("unsafe_path", `unsafe path ${shown} in archive: ${why}`);
  if (raw === "") throw bad("empty name");
  if (Buffer.byteLength(raw, "utf8") > MAX_PATH_BYTES) throw bad(`longer than ${MAX_PATH_BYTES} bytes`);
  if (raw.includes("\u0000")) throw bad("contains NUL");
  if (CONTROL_RE.test(raw)) throw bad("contains control characters");
  if (raw.includes("\\")) throw bad("contains a backslash");
  if (raw.startsWith("/")) throw bad("absolute path");
  if (/^[A-Za-z]:/.test(raw)) throw bad("Windows drive path");
  const segments: string[] = [];
  for (const segment of raw.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") throw bad('contains a ".." segment');
    if (Buffer.byteLength(segment, "utf8") > MAX_SEGMENT_BYTES) throw bad(`a segment is longer than ${MAX_SEGMENT_BYTES} bytes`);
    segments.push(segment);
  }
  return { path: segments.join("/"), trailingSlash: raw.endsWith("/") };
}

function decodeName(bytes: Buffer, what: string): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new TarSafetyError("unsafe_path", `${what} is not valid UTF-8`);
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
    if (first === 0xff) throw new TarSafetyError("malformed", `negative ${what} in tar header`);
    let value = first & 0x7f;
    for (let i = 1; i < field.length; i++) {
      value = value * 256 + (field[i] ?? 0);
      if (value > Number.MAX_SAFE_INTEGER) return Infinity;
    }
    return value;
  }
  const text = field.toString("latin1").replace(/[\0 ]+$/, "").replace(/^ +/, "");
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarSafetyError("malformed", `bad ${what} field in tar header`);
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
    if (space === -1 || space - pos > 10) throw new TarSafetyError("malformed", "bad pax header record");
    const lenText = data.toString("latin1", pos, space);
    if (!/^[0-9]+$/.test(lenText)) throw new TarSafetyError("malformed", "bad pax header record length");
    const len = parseInt(lenText, 10);
    const end = pos + len;
    if (len <= space - pos + 1 || end > data.length || data[end - 1] !== 0x0a) {
      throw new TarSafetyError("malformed", "bad pax header record length");
    }
    const record = data.subarray(space + 1, end - 1);
    const eq = record.indexOf(0x3d);
    if (eq <= 0) throw new TarSafetyError("malformed", "bad pax header record");
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
      throw new TarSafetyError("malformed", `corrupt gzip stream: ${(err as Error).message}`, { cause: err });
    }
    if (result.done === true) {
      this.#ended = true;
      return false;
    }
    const chunk = result.value;
    this.#total += chunk.length;
    if (this.#total > this.#limit) {
      throw new TarSafetyError(
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
        throw new TarSafetyError("malformed", "archive is truncated");
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
        throw new TarSafetyError("malformed", "archive is truncated");
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
        throw new TarSafetyError("malformed", "archive is truncated");
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

function padding(size: number): number {
  const rem = size % BLOCK;
  return rem === 0 ? 0 : BLOCK - rem;
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

function checkOptions(opts: ReadTarOptions): void {
  for (const [key, value] of [
    ["maxMemberBytes", opts.maxMemberBytes],
    ["maxTotalBytes", opts.maxTotalBytes],
    ["maxMembers", opts.maxMembers ?? DEFAULT_MAX_MEMBERS],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${key} must be a non-negative integer`);
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
    throw new TarSafetyError("malformed", "not a gzip file");
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
      if (pax !== null || longName !== null) throw new TarSafetyError("malformed", "archive ends after an extended header");
      if (block === null && members === 0) throw new TarSafetyError("malformed", "empty stream: not a tar archive");
      break;
    }
    if (!checksumOk(block)) throw new TarSafetyError("malformed", "bad tar header checksum (not a tar archive or corrupt)");

    const flag = String.fromCharCode(block[156] ?? 0);
    const headerSize = numericField(block, 124, 12, "size");

    // Metadata records that describe the next entry.
    if (flag === "x" || flag === "L" || flag === "K") {
      if (headerSize > MAX_META_BYTES) throw new TarSafetyError("malformed", `extended header of ${headerSize} bytes is too large`);
      const data = await reader.readInto(headerSize);
      await reader.skip(padding(headerSize));
      if (flag === "x") {
        pax = new Map([...(pax ?? new Map<string, Buffer>()), ...parsePax(data)]);
      } else if (flag === "L") {
        const end = data.indexOf(0);
        const name = end === -1 ? data : data.subarray(0, end);
        if (end !== -1 && data.subarray(end).some((b) => b !== 0)) {
          throw new TarSafetyError("unsafe_path", "GNU long name contains NUL");
        }
        longName = name;
      }
      // "K" (GNU long link name) only matters for links, which are rejected anyway.
      continue;
    }

    members += 1;
    if (members > maxMembers) {
      throw new TarSafetyError("too_many_members", `archive has more than ${maxMembers} entries`);
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
      if (!/^[0-9]+$/.test(text)) throw new TarSafetyError("malformed", "bad pax size record");
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
        throw new TarSafetyError("duplicate", `directory ${JSON.stringify(checked.path)} is also a file in the archive`);
      }
      if (size > opts.maxMemberBytes) throw new TarSafetyError("member_too_large", `directory entry declares ${size} bytes`);
      if (checked.path !== "") dirs.add(checked.path);
      await reader.skip(size + padding(size));
      continue;
    }
    if (!isFile) {
      throw new TarSafetyError("not_a_file", `archive entry ${JSON.stringify(rawName)} is a ${describeType(flag)}, not a regular file`);
    }
    if (checked.path === "" || checked.trailingSlash) {
      throw new TarSafetyError("unsafe_path", `archive file entry ${JSON.stringify(rawName)} has no file name`);
    }
    const filePath = checked.path;
    if (files.has(filePath) || dirs.has(filePath)) {
      throw new TarSafetyError("duplicate", `${JSON.stringify(filePath)} appears more than once in the archive`);
    }
    const parts = filePath.split("/");
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join("/");
      if (files.has(parent)) {
        throw new TarSafetyError("duplicate", `${JSON.stringify(parent)} is both a file and a folder in the archive`);
      }
      dirs.add(parent);
    }

    if (size > opts.maxMemberBytes) {
      throw new TarSafetyError(
        "member_too_large",
        `${JSON.stringify(filePath)} declares ${size} bytes, over the limit of ${opts.maxMemberBytes}`,
      );
    }
    if (total + size > opts.maxTotalBytes) {
      throw new TarSafetyError("too_large", `archive contents exceed the limit of ${opts.maxTotalBytes} bytes`);
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

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

async function lstatOrNull(p: string): Promise<Stats | null> {
  try {
    return await fs.lstat(p);
  } catch (err) {
    if (errno(err) === "ENOENT") return null;
    throw err;
  }
}

/**
 * Writes entries (from `readTarGz`) as files under `destDir`, which must not
 * exist yet (`destination_exists` otherwise; a symlink there counts as
 * existing and is never followed). Its parent is created if needed. Files are
 * written into a fresh temp folder beside `destDir` (mode 0644, folders 0755)
 * and the folder is renamed into place at the end; on any failure the temp
 * folder is removed, so nothing is left behind. Every path is checked again
 * and resolved to verify it stays inside.
 */
export async function extractSafely(entries: readonly TarEntry[], destDir: string): Promise<string[]> {
  const dest = path.resolve(destDir);
  if ((await lstatOrNull(dest)) !== null) {
    throw new TarSafetyError("destination_exists", `extraction target ${dest} already exists`);
  }
  const parent = path.dirname(dest);
  await fs.mkdir(parent, { recursive: true });
  const tmp = await fs.mkdtemp(path.join(parent, `.${path.basename(dest)}.extract-`));
  try {
    const written = await writeEntries(entries, tmp);
    await fs.chmod(tmp, 0o755);
    try {
      await fs.rename(tmp, dest);
    } catch (err) {
      const code = errno(err);
      if (code === "ENOTEMPTY" || code === "EEXIST" || code === "ENOTDIR" || code === "EISDIR") {
        throw new TarSafetyError("destination_exists", `extraction target ${dest} appeared while extracting`, { cause: err });
      }
      throw err;
    }
    return written;
  } catch (err) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** Writes entries into `root`, a folder this process just created (so it holds no links). */
async function writeEntries(entries: readonly TarEntry[], root: string): Promise<string[]> {
  const seen = new Set<string>();
  const madeDirs = new Set<string>();
  const written: string[] = [];
  for (const entry of entries) {
    const checked = checkMemberPath(entry.path);
    if (checked.path === "" || checked.trailingSlash) {
      throw new TarSafetyError("unsafe_path", `entry ${JSON.stringify(entry.path)} has no file name`);
    }
    const target = path.resolve(root, ...checked.path.split("/"));
    const rel = path.relative(root, target);
    if (rel === "" || rel.startsWith("..") || path.isAbsolute(rel)) {
      throw new TarSafetyError("unsafe_path", `entry ${JSON.stringify(entry.path)} resolves outside the destination`);
    }
    if (seen.has(checked.path)) {
      throw new TarSafetyError("duplicate", `${JSON.stringify(checked.path)} appears more than once`);
    }
    seen.add(checked.path);
    const dir = path.dirname(target);
    try {
      if (!madeDirs.has(dir)) {
        await fs.mkdir(dir, { recursive: true, mode: 0o755 });
        madeDirs.add(dir);
      }
      // "wx": never replace or follow whatever might already be there.
      await fs.writeFile(target, entry.data, { flag: "wx", mode: 0o644 });
    } catch (err) {
      const code = errno(err);
      if (code === "EEXIST" || code === "EISDIR" || code === "ENOTDIR") {
        throw new TarSafetyError("duplicate", `${JSON.stringify(checked.path)} collides with another entry`, { cause: err });
      }
      throw err;
    }
    await fs.chmod(target, 0o644);
    written.push(checked.path);
  }
  return written;
}

// ---------------------------------------------------------------------------
// Writing

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
      throw new TarSafetyError("unsafe_path", `no file name in ${JSON.stringify(file.path)}`);
    }
    if (seen.has(checked.path)) throw new TarSafetyError("duplicate", `${JSON.stringify(checked.path)} given twice`);
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
