/**
 * Errors with stable string codes. Every failure a caller can act on is a
 * `BuilderError`; anything else that escapes to an API boundary is reported as
 * `internal_error`.
 */

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
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class BuilderError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "BuilderError";
    this.code = code;
  }
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
