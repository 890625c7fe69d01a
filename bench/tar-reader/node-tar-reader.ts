/**
 * The candidate measured against src/remote-build/transport/tar-reader.ts: the
 * same policy (paths, types, caps, duplicates, counted inflation) on top of
 * node-tar's maintained `Parser` instead of our own header parsing. It is kept
 * here, not in src/, because the measurement chose the hand-written reader
 * (docs/ARCHITECTURE.md, "Why the tar reader is what it is"); bench/tar-reader.ts
 * runs both over the hostile cases and the artifact and bundle timings.
 *
 * Fair effort, not a strawman: strict mode (every parser warning is an error),
 * its own gunzip so inflation stays counted and pulled, oversize metadata and
 * unknown types caught from `ignoredEntry`, a NUL inside a long name caught
 * from the raw `meta` text, lossy UTF-8 caught from U+FFFD in the decoded name.
 */
import { Readable, pipeline } from "node:stream";
import { createGunzip } from "node:zlib";
import { Parser, type ReadEntry } from "tar";
import { DEFAULT_MAX_MEMBERS, checkMemberPath, checkOptions, inflatedLimit, type ReadTarOptions, type TarEntry, isTarSafetyError, tarSafetyError } from "../../src/remote-build/transport/tar-policy.ts";

const FILE_TYPES = new Set(["File", "OldFile", "ContiguousFile"]);
const DIR_TYPES = new Set(["Directory", "GNUDumpDir"]);

async function* slices(bytes: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let pos = 0; pos < bytes.length; pos += size) yield bytes.subarray(pos, pos + size);
  await Promise.resolve();
}

export async function readTarGzNodeTar(bytes: Buffer, opts: ReadTarOptions): Promise<TarEntry[]> {
  checkOptions(opts);
  if (bytes.length < 2 || bytes[0] !== 0x1f || bytes[1] !== 0x8b) throw tarSafetyError("malformed", "not a gzip file");
  const buffer = opts.bufferBytes ?? 16 * 1024;
  const maxMembers = opts.maxMembers ?? DEFAULT_MAX_MEMBERS;
  const limit = inflatedLimit(opts);
  const entries: TarEntry[] = [];
  const files = new Set<string>();
  const dirs = new Set<string>();
  let members = 0;
  let total = 0;
  const seen = { eof: false };

  const parser = new Parser({ strict: true, maxMetaEntrySize: 64 * 1024 });
  parser.on("eof", () => {
    seen.eof = true;
  });
  parser.on("meta", (text: string) => {
    if (/\0[^\0]/.test(text)) throw tarSafetyError("unsafe_path", "extended header or long name contains NUL");
  });
  parser.on("ignoredEntry", (entry: ReadEntry) => {
    if (entry.meta) throw tarSafetyError("malformed", `extended header of ${entry.size} bytes is too large`);
    throw tarSafetyError("not_a_file", `archive entry ${JSON.stringify(entry.path)} is a ${entry.type}, not a regular file`);
  });
  parser.on("error", (err: Error & { tarCode?: string; header?: { type?: string } }) => {
    // An empty archive (end-of-archive record only) is "unrecognized" to node-tar.
    if (err.tarCode === "TAR_BAD_ARCHIVE" && seen.eof && members === 0 && /Unrecognized/.test(err.message)) return;
    const type = err.header?.type;
    if (type !== undefined && !FILE_TYPES.has(type) && !/ExtendedHeader|LongPath|LongLinkpath/.test(type)) {
      throw tarSafetyError("not_a_file", `archive entry is a ${type}, not a regular file`, { cause: err });
    }
    throw tarSafetyError("malformed", `bad tar archive: ${err.message}`, { cause: err });
  });
  parser.on("entry", (entry: ReadEntry) => {
    members += 1;
    if (members > maxMembers) throw tarSafetyError("too_many_members", `archive has more than ${maxMembers} entries`);
    if (entry.globalExtended !== undefined) throw tarSafetyError("not_a_file", "archive has a pax global header");
    if (entry.path.includes("\uFFFD")) throw tarSafetyError("unsafe_path", "entry name is not valid UTF-8");
    const checked = checkMemberPath(entry.path);
    const size = entry.size;
    if (DIR_TYPES.has(entry.type) && opts.directories === "skip") {
      if (checked.path !== "" && files.has(checked.path)) {
        throw tarSafetyError("duplicate", `directory ${JSON.stringify(checked.path)} is also a file in the archive`);
      }
      if (checked.path !== "") dirs.add(checked.path);
      entry.resume();
      return;
    }
    if (!FILE_TYPES.has(entry.type)) {
      throw tarSafetyError("not_a_file", `archive entry ${JSON.stringify(entry.path)} is a ${entry.type}, not a regular file`);
    }
    if (checked.path === "" || checked.trailingSlash) {
      throw tarSafetyError("unsafe_path", `archive file entry ${JSON.stringify(entry.path)} has no file name`);
    }
    const filePath = checked.path;
    if (files.has(filePath) || dirs.has(filePath)) {
      throw tarSafetyError("duplicate", `${JSON.stringify(filePath)} appears more than once in the archive`);
    }
    const parts = filePath.split("/");
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join("/");
      if (files.has(parent)) throw tarSafetyError("duplicate", `${JSON.stringify(parent)} is both a file and a folder in the archive`);
      dirs.add(parent);
    }
    if (size > opts.maxMemberBytes) {
      throw tarSafetyError("member_too_large", `${JSON.stringify(filePath)} declares ${size} bytes, over the limit of ${opts.maxMemberBytes}`);
    }
    if (total + size > opts.maxTotalBytes) throw tarSafetyError("too_large", `archive contents exceed the limit of ${opts.maxTotalBytes} bytes`);
    total += size;
    files.add(filePath);
    const data = Buffer.allocUnsafe(size);
    let filled = 0;
    entry.on("data", (chunk: Buffer) => {
      filled += chunk.copy(data, filled);
    });
    entry.on("end", () => {
      entries.push({ path: filePath, data: data.subarray(0, filled), mode: entry.mode ?? 0o644 });
    });
  });

  const streamOptions = { writableHighWaterMark: buffer, readableHighWaterMark: buffer, chunkSize: buffer };
  const inflated = pipeline(Readable.from(slices(bytes, buffer), { objectMode: false, highWaterMark: buffer }), createGunzip(streamOptions), () => {});
  let inflatedBytes = 0;
  try {
    try {
      for await (const chunk of inflated as AsyncIterable<Buffer>) {
        inflatedBytes += chunk.length;
        if (inflatedBytes > limit) {
          throw tarSafetyError("too_large", `archive inflates past ${limit} bytes (stopped after ${inflatedBytes} inflated bytes)`);
        }
        if (!seen.eof) parser.write(chunk);
      }
    } catch (err) {
      if (isTarSafetyError(err)) throw err;
      throw tarSafetyError("malformed", `corrupt gzip stream: ${(err as Error).message}`, { cause: err });
    }
    parser.end();
  } finally {
    inflated.destroy();
  }
  if (inflatedBytes === 0) throw tarSafetyError("malformed", "empty stream: not a tar archive");
  return entries;
}
