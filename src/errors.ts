/**
 * Errors with stable string codes. Every failure a caller can act on is a
 * `BuilderError`; anything else that escapes to an API boundary is reported as
 * `internal_error`.
 */

/**
 * Why a request to a build server failed, on the offloader's side of the peer
 * link (never an API reply's code: the runner words them into the job's
 * error): the session's own, the build server's `artifacts_end` reasons
 * (WIRE-FACTS §6) and the chunk checks of a download (transport/chunks.ts).
 */
const PeerLinkCode = {
  /** The build server did not acknowledge within the limit. */
  Timeout: "timeout",
  /** The session closed first; the build server is lost (a compile is dispatched again). */
  SessionLost: "session_lost",
  DuplicateDownload: "duplicate_download",
  UnknownJob: "unknown_job",
  JobNotCompleted: "job_not_completed",
  BuildDirMissing: "build_dir_missing",
  PackFailed: "pack_failed",
  /** The download ended before all chunks came. */
  Incomplete: "incomplete",
  Malformed: "malformed",
  InvalidHeader: "invalid_header",
  Oversized: "oversized",
  Undersized: "undersized",
  EmptyBundle: "empty_bundle",
  ChunkCountMismatch: "chunk_count_mismatch",
  OutOfOrder: "out_of_order",
  ChunkDecodeFailed: "chunk_decode_failed",
  PostCompletion: "post_completion",
  HashMismatch: "hash_mismatch",
  /** A refusal reason the build server gave that is none of the above (the message quotes it). */
  PeerRefused: "peer_refused",
} as const;

const PEER_LINK_CODES: ReadonlySet<string> = new Set(Object.values(PeerLinkCode));

export const ErrorCode = {
  InvalidMessage: "invalid_message",
  UnknownCommand: "unknown_command",
  InvalidArgs: "invalid_args",
  NotFound: "not_found",
  InternalError: "internal_error",
  NotAuthenticated: "not_authenticated",
  Unavailable: "unavailable",
  TooManyStreams: "too_many_streams",
  /** A write failed because the disk (or the user's quota) is full; nothing was changed. */
  DiskFull: "disk_full",
  /** A write failed for another reason (read-only file system, permissions, I/O error); nothing was changed. */
  StorageError: "storage_error",
  /** No Python 3.12 or newer to make an ESPHome environment with (managed ESPHome). */
  NoPython: "no_python",
  /** Making an ESPHome environment failed (venv, pip, or the installed ESPHome did not answer). */
  ProvisionFailed: "provision_failed",
  /** The package index could not be asked (unreachable, an error status, an answer that does not parse). */
  IndexUnavailable: "index_unavailable",
  /** The thing is in use (an ESPHome environment a running job holds). */
  Busy: "busy",
  /** A headless build server did not take the pairing key: wrong, already used, or its window lapsed (it cannot tell which, on purpose). */
  PairingKeyRefused: "pairing_key_refused",
  ...PeerLinkCode,
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * The one error shape of the whole builder: a stable string code and a
 * message. `C` is the code set of whoever throws it: the API's `ErrorCode` by
 * default, or a module's own (the tar policy's, the bundle's, the Noise
 * handshake's...) where the codes are that module's vocabulary; a caller tells
 * them apart with `isCodedError(err, CODES)`, never with a class of its own.
 */
export class BuilderError<C extends string = ErrorCode> extends Error {
  readonly code: C;
  /** A machine-readable word that goes with the code (e.g. the pin a build server presented for `pin_mismatch`). */
  readonly detail: string | null;

  constructor(code: C, message: string, options?: { cause?: unknown; detail?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "BuilderError";
    this.code = code;
    this.detail = options?.detail ?? null;
  }
}

/** Whether `err` is a `BuilderError` whose code is one of `codes` (a module's code list). */
export function isCodedError<C extends string>(err: unknown, codes: readonly C[]): err is BuilderError<C> {
  return err instanceof BuilderError && (codes as readonly string[]).includes((err as BuilderError<string>).code);
}

/**
 * A module's error helpers over its code list: `error(code, message)` makes
 * the `BuilderError<C>`, `is(err)` recognises one.
 */
export function codedErrors<C extends string>(codes: readonly C[]): {
  error: (code: C, message: string, options?: { cause?: unknown; detail?: string }) => BuilderError<C>;
  is: (err: unknown) => err is BuilderError<C>;
} {
  return {
    error: (code, message, options) => new BuilderError(code, message, options),
    is: (err): err is BuilderError<C> => isCodedError(err, codes),
  };
}

const ERROR_CODES: readonly ErrorCode[] = Object.values(ErrorCode);

/** Whether `err` is a `BuilderError` with one of the API's codes (`ErrorCode`). */
export function isBuilderError(err: unknown): err is BuilderError {
  return isCodedError(err, ERROR_CODES);
}

/** A peer-link reason as an error code: a known one as it is, any other `peer_refused`. */
export function peerLinkCode(reason: string): ErrorCode {
  return PEER_LINK_CODES.has(reason) ? (reason as ErrorCode) : ErrorCode.PeerRefused;
}

export function invalidArgs(message: string): BuilderError {
  return new BuilderError(ErrorCode.InvalidArgs, message);
}

export function notFound(message: string): BuilderError {
  return new BuilderError(ErrorCode.NotFound, message);
}

/** Human-readable text of any thrown value. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
