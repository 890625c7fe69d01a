/**
 * The policy every tarball that crosses the peer link is held to (shared by
 * the reader, the extractor and the writer): the error codes, the caps and the
 * member-path rule. Everything in an archive comes from another machine.
 *
 * Paths must be relative, `/`-separated and stay inside the destination: no
 * leading `/`, no drive letter, no backslash, no `..` segment, no NUL or
 * control characters, valid UTF-8. `.` segments and repeated slashes are
 * normalised away (`./a//b` is `a/b`).
 */
import { codedErrors, type BuilderError } from "../../errors.ts";

export const TAR_SAFETY_CODES = [
  "malformed",
  "not_a_file",
  "unsafe_path",
  "member_too_large",
  "too_large",
  "too_many_members",
  "duplicate",
  "destination_exists",
] as const;
export type TarSafetyErrorCode = (typeof TAR_SAFETY_CODES)[number];

/** A tarball refused by the policy (a `BuilderError` with one of `TAR_SAFETY_CODES`). */
export type TarSafetyError = BuilderError<TarSafetyErrorCode>;

export const { error: tarSafetyError, is: isTarSafetyError } = codedErrors(TAR_SAFETY_CODES);

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
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f]/;

/**
 * Normalises and checks one member path; throws `unsafe_path`. Returns the
 * path without `.` segments or repeated slashes, and whether it named a
 * directory (trailing slash).
 */
export function checkMemberPath(raw: string): { path: string; trailingSlash: boolean } {
  const shown = JSON.stringify(raw.length > 200 ? raw.slice(0, 200) + "…" : raw);
  const bad = (why: string) => tarSafetyError("unsafe_path", `unsafe path ${shown} in archive: ${why}`);
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

/** Bytes of a tar block; headers and member data are padded to it. */
export const BLOCK = 512;

/** Padding after `size` bytes of member data. */
export function padding(size: number): number {
  const rem = size % BLOCK;
  return rem === 0 ? 0 : BLOCK - rem;
}

/**
 * How far the inflated stream may run past `maxTotalBytes`: headers, pax
 * records, block padding and the end-of-archive record are not member data.
 */
export function inflatedLimit(opts: ReadTarOptions): number {
  const members = opts.maxMembers ?? DEFAULT_MAX_MEMBERS;
  return opts.maxTotalBytes + 1024 * 1024 + members * 4 * BLOCK;
}

export function checkOptions(opts: ReadTarOptions): void {
  for (const [key, value] of [
    ["maxMemberBytes", opts.maxMemberBytes],
    ["maxTotalBytes", opts.maxTotalBytes],
    ["maxMembers", opts.maxMembers ?? DEFAULT_MAX_MEMBERS],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${key} must be a non-negative integer`);
  }
}
