/**
 * Atomic, debounced JSON files.
 *
 * A write goes to a temp file in the destination folder, is flushed to disk and
 * then renamed over the target, so a crash leaves either the old or the new
 * file, never half of one; a write that fails (say the disk is full) removes
 * its temp file and leaves the old file as it was. A file that cannot be read,
 * parsed or validated is moved aside to `<file>.corrupt` and reported, never
 * silently dropped, and its owner starts without it.
 */
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import type { z } from "zod";
import { BuilderError, ErrorCode, errorMessage, isBuilderError } from "./errors.ts";
import { getLogger } from "./logger.ts";
import type { ProblemCode, ProblemSink } from "./problems.ts";

const log = getLogger("store");

function errnoOf(err: unknown): string | undefined {
  if (err instanceof BuilderError) {
    const cause = err.cause;
    return typeof cause === "object" && cause !== null && "code" in cause && typeof cause.code === "string" ? cause.code : undefined;
  }
  return typeof err === "object" && err !== null && "code" in err && typeof err.code === "string" ? err.code : undefined;
}

/**
 * A failed write as an API error that names the folder and the fix:
 * `disk_full` when the disk (or quota) is full, else `storage_error`.
 */
export function storageError(err: unknown, file: string): BuilderError {
  if (isBuilderError(err)) return err;
  const errno = errnoOf(err);
  const dir = path.dirname(file);
  if (errno === "ENOSPC" || errno === "EDQUOT") {
    return new BuilderError(
      ErrorCode.DiskFull,
      `No space left on ${dir} (${errno} writing ${path.basename(file)}): free some space and try again`,
      { cause: err },
    );
  }
  return new BuilderError(
    ErrorCode.StorageError,
    `Could not write ${file} (${errorMessage(err)}): check that ${dir} exists and is writable, then try again`,
    { cause: err },
  );
}

/** The problem code of a failed write. */
export function storageProblemCode(err: unknown): ProblemCode {
  return storageError(err, ".").code === ErrorCode.DiskFull ? "disk_full" : "storage_error";
}

/**
 * Writes a file atomically. On any failure (mkdir, open, write, fsync, close,
 * chmod, rename) the temp file is removed, the target is left as it was, and a
 * `disk_full` or `storage_error` BuilderError is thrown (the system error is
 * its cause).
 */
export async function atomicWrite(file: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    await fs.mkdir(dir, { recursive: true });
    const handle = await fs.open(tmp, "wx", mode);
    let failure: Error | undefined;
    const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));
    try {
      await handle.writeFile(data);
      await handle.sync();
    } catch (err) {
      failure = asError(err);
    }
    // Closed either way; the first error is the one that counts.
    await handle.close().catch((err: unknown) => {
      failure ??= asError(err);
    });
    if (failure !== undefined) throw failure;
    await fs.chmod(tmp, mode);
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true }).catch((rmErr: unknown) => {
      log.warning(`could not remove the temp file ${tmp}: ${errorMessage(rmErr)}`);
    });
    throw storageError(err, file);
  }
}

const TEMP_RE = /^\.(.+)\.[0-9a-f]{12}\.tmp$/;

/**
 * Removes the temp files `atomicWrite` left in `dir` when the process died in
 * the middle of a write (a failed write removes its own). Only for targets
 * named in `targets` (every target when left out): call it before anything
 * writes to them. Returns how many were removed; never throws.
 */
export async function removeStaleTempFiles(dir: string, targets?: readonly string[]): Promise<number> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    const target = TEMP_RE.exec(name)?.[1];
    if (target === undefined || (targets !== undefined && !targets.includes(target))) continue;
    try {
      await fs.rm(path.join(dir, name), { force: true });
      removed++;
    } catch (err) {
      log.warning(`could not remove the stale temp file ${path.join(dir, name)}: ${errorMessage(err)}`);
    }
  }
  if (removed > 0) log.info(`removed ${removed} temp file(s) an interrupted write left in ${dir}`);
  return removed;
}

export type LoadResult<T> =
  | { kind: "missing" }
  | { kind: "ok"; value: T }
  /** Unreadable, not JSON or not valid: moved aside (`movedTo`), or ignored where it is when even that failed (null). */
  | { kind: "corrupt"; movedTo: string | null; reason: string };

/** A free name beside `file`: `<file>.<suffix>`, or `<file>.<ms>.<suffix>` when that is taken. */
async function asideName(file: string, suffix: string): Promise<string> {
  const plain = `${file}.${suffix}`;
  try {
    await fs.lstat(plain);
  } catch {
    return plain;
  }
  return `${file}.${Date.now()}.${suffix}`;
}

/** Moves a bad file (or folder) aside so the next write does not destroy the evidence. */
export async function quarantine(file: string): Promise<string> {
  const target = await asideName(file, "corrupt");
  await fs.rename(file, target);
  return target;
}

/**
 * Keeps rows its owner refused (say job rows that no longer validate) beside
 * the file, `<file>.skipped`, so dropping them from the file loses nothing.
 * Returns where they went, or null when they could not be written.
 */
export async function keepSkippedRows(file: string, rows: readonly unknown[]): Promise<string | null> {
  try {
    const target = await asideName(file, "skipped");
    await atomicWrite(target, JSON.stringify(rows, null, 1) + "\n", 0o600);
    return target;
  } catch (err) {
    log.error(`could not keep the skipped rows of ${file}: ${errorMessage(err)}`);
    return null;
  }
}

export interface JsonStoreOptions<T> {
  file: string;
  schema: z.ZodType<T>;
  /** File mode; 0o600 for anything secret. */
  mode?: number;
  /** Delay of `scheduleSave`; several calls within it write once. */
  debounceMs?: number;
  /** A scheduled write that failed is tried again after this long (default 10 s). */
  retryMs?: number;
  /** What the file holds, for messages: "The job index". */
  title?: string;
  /**
   * Where a file moved aside (or ignored) at load and a failing write are
   * reported; a write problem is cleared by the next write that succeeds.
   */
  problems?: ProblemSink;
}

export class JsonStore<T> {
  readonly file: string;
  readonly #schema: z.ZodType<T>;
  readonly #mode: number;
  readonly #debounceMs: number;
  readonly #retryMs: number;
  readonly #title: string;
  readonly #problems: ProblemSink | undefined;
  #timer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #pending: (() => T) | undefined;
  #writing: Promise<void> = Promise.resolve();

  constructor(opts: JsonStoreOptions<T>) {
    this.file = opts.file;
    this.#schema = opts.schema;
    this.#mode = opts.mode ?? 0o644;
    this.#debounceMs = opts.debounceMs ?? 250;
    this.#retryMs = opts.retryMs ?? 10_000;
    this.#title = opts.title ?? path.basename(opts.file);
    this.#problems = opts.problems;
  }

  /**
   * Reads the file. Missing is `missing`; one that cannot be read (a folder,
   * no permission), is not JSON or does not validate is moved aside and
   * reported, and the caller starts without it. Never throws.
   */
  async load(): Promise<LoadResult<T>> {
    let text: string;
    try {
      text = await fs.readFile(this.file, "utf8");
    } catch (err) {
      if (errnoOf(err) === "ENOENT") return { kind: "missing" };
      return this.#setAside("state_file_unreadable", `could not be read (${errorMessage(err)})`);
    }
    let reason: string;
    try {
      const parsed = this.#schema.safeParse(JSON.parse(text));
      if (parsed.success) return { kind: "ok", value: parsed.data };
      reason = parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
      reason = `is not valid (${reason})`;
    } catch (err) {
      reason = `is not valid JSON (${errorMessage(err)})`;
    }
    return this.#setAside("state_file_corrupt", reason);
  }

  async #setAside(code: ProblemCode, reason: string): Promise<LoadResult<T>> {
    let movedTo: string | null = null;
    let message: string;
    try {
      movedTo = await quarantine(this.file);
      message =
        `${this.#title} ${this.file} ${reason}; it was moved to ${movedTo} and the builder started without it. ` +
        `Look there for anything you need from it, then delete it.`;
    } catch (err) {
      message =
        `${this.#title} ${this.file} ${reason} and could not be moved aside (${errorMessage(err)}); it is ignored ` +
        `and will not be saved. Remove or repair it, then restart the builder.`;
    }
    log.error(message);
    this.#problems?.report({ code, subject: this.file, message });
    return { kind: "corrupt", movedTo, reason };
  }

  /**
   * Write soon; the data is taken when the write happens, so it is always the
   * newest. A failed write is reported and tried again until one succeeds.
   */
  scheduleSave(data: () => T): void {
    this.#pending = data;
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#flushAndRetry();
    }, this.#debounceMs);
  }

  /**
   * Write now (and any scheduled write with it). Throws `disk_full` or
   * `storage_error` when the write fails; the file is then as it was, and
   * the scheduled write this one took over is tried again later.
   */
  async saveNow(data: () => T): Promise<void> {
    const absorbed = this.#pending;
    this.#pending = data;
    try {
      await this.flush();
    } catch (err) {
      if (absorbed !== undefined && !this.#hasPending()) {
        this.#pending = absorbed;
        this.#armRetry();
      }
      throw err;
    }
  }

  /** Writes a pending change, if any, and waits for every write in flight. */
  async flush(): Promise<void> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#retryTimer !== undefined) {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
    }
    const pending = this.#pending;
    this.#pending = undefined;
    if (pending !== undefined) {
      this.#writing = this.#writing.catch(() => undefined).then(() => this.#write(pending));
    }
    await this.#writing;
  }

  async #write(data: () => T): Promise<void> {
    try {
      await atomicWrite(this.file, JSON.stringify(data(), null, 1) + "\n", this.#mode);
    } catch (err) {
      const failure = storageError(err, this.file);
      const code = storageProblemCode(failure);
      this.#problems?.clear(code === "disk_full" ? "storage_error" : "disk_full", this.file);
      this.#problems?.report({
        code,
        subject: this.file,
        message: `${this.#title} could not be saved: ${failure.message}. The builder keeps working from memory and saves it once it can.`,
      });
      throw failure;
    }
    this.#problems?.clear("disk_full", this.file);
    this.#problems?.clear("storage_error", this.file);
  }

  #flushAndRetry(): void {
    const data = this.#pending;
    this.flush().catch((err: unknown) => {
      log.error(`writing ${this.file} failed: ${errorMessage(err)}; trying again in ${Math.round(this.#retryMs / 1000)} s`);
      if (data !== undefined && this.#pending === undefined) this.#pending = data;
      this.#armRetry();
    });
  }

  /** Whether a write waits (a method: TypeScript keeps `#pending` narrowed across an await). */
  #hasPending(): boolean {
    return this.#pending !== undefined;
  }

  #armRetry(): void {
    if (this.#retryTimer !== undefined || this.#pending === undefined) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#flushAndRetry();
    }, this.#retryMs);
    // A retry alone never keeps the process alive.
    this.#retryTimer.unref();
  }
}
