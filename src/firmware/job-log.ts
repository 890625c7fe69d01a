/**
 * A job's log file. While the job runs, lines are appended in batches (never
 * one write per line); when the in-memory history is trimmed, the file is
 * rewritten atomically from the history, so it stays bounded too. When the
 * job ends the file holds exactly its retained output.
 *
 * Nothing piles up, however fast output comes: one write at a time; a
 * rewrite supersedes the appends waiting behind it and reads the history
 * only when it starts, so any number of trims while a write is under way
 * cost one rewrite; and rewrites are spaced REWRITE_INTERVAL_MS apart while
 * the job runs. What waits is at most the lines since the last trim, which
 * the history's own limits bound.
 *
 * A write that fails (the disk is full) loses nothing the job still needs: the
 * queue keeps the output in memory and the final rewrite writes all of it. The
 * failure is reported once per log folder and cleared by the next write that
 * succeeds; no temp file is left behind.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { errorMessage } from "../errors.ts";
import { getLogger } from "../logger.ts";
import type { ProblemSink } from "../problems.ts";
import { atomicWrite, quarantine, storageError, storageProblemCode } from "../store.ts";
import { splitStoredLog } from "./output.ts";

const log = getLogger("job-log");
/** Appends waiting past this many characters are written at once (else after FLUSH_MS). */
export const FLUSH_CHARS = 64 * 1024;
export const FLUSH_MS = 200;
/** Mid-run rewrites (each a whole file, synced) start at most this often. */
export const REWRITE_INTERVAL_MS = 1000;

export interface JobLogWriterOptions {
  /** The lines a rewrite writes: the job's retained output at that moment. */
  source: () => readonly string[];
  now?: () => number;
  /** Where a failed write is reported (and cleared by the next good one). */
  problems?: ProblemSink | undefined;
}

export class JobLogWriter {
  readonly #file: string;
  readonly #source: () => readonly string[];
  readonly #now: () => number;
  readonly #problems: ProblemSink | undefined;
  #pending: string[] = [];
  #pendingChars = 0;
  /** The file must be replaced by the source's lines; pending appends are part of them. */
  #rewrite = false;
  #lastRewrite = -Infinity;
  #firstPendingAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #timerDue = Infinity;
  #writing: Promise<boolean> | null = null;
  /** Whether the last write landed. */
  #lastOk = true;
  #writes = 0;
  #rewrites = 0;

  constructor(file: string, opts: JobLogWriterOptions) {
    this.#file = file;
    this.#source = opts.source;
    this.#now = opts.now ?? Date.now;
    this.#problems = opts.problems;
  }

  append(line: string): void {
    if (this.#rewrite) return; // the rewrite will write it
    if (this.#pending.length === 0) this.#firstPendingAt = this.#now();
    this.#pending.push(line);
    this.#pendingChars += line.length;
    this.#schedule();
  }

  /** The file is to be replaced by the source's lines (after a trim, or at the end); coalesces. */
  replace(): void {
    this.#rewrite = true;
    this.#pending = [];
    this.#pendingChars = 0;
    this.#schedule();
  }

  /** Writes started so far, and how many of them were rewrites (for tests and diagnostics). */
  get stats(): { writes: number; rewrites: number } {
    return { writes: this.#writes, rewrites: this.#rewrites };
  }

  /** Characters of appended lines waiting to be written. */
  get pendingChars(): number {
    return this.#pendingChars;
  }

  /**
   * Writes what is pending now (a due rewrite does not wait for its interval)
   * and resolves once the file holds it. Never rejects: resolves to whether the
   * last write landed (a failed one is logged and reported).
   */
  async flush(): Promise<boolean> {
    this.#clearTimer();
    while (this.#writing !== null) await this.#writing;
    if (this.#rewrite || this.#pending.length > 0) return this.#start();
    return this.#lastOk;
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerDue = Infinity;
  }

  /** Arms the timer for the next write, unless one is under way (its end re-arms). */
  #schedule(): void {
    if (this.#writing !== null) return;
    let due: number;
    if (this.#rewrite) due = this.#lastRewrite + REWRITE_INTERVAL_MS;
    else if (this.#pending.length === 0) return;
    else if (this.#pendingChars >= FLUSH_CHARS) due = 0;
    else due = this.#firstPendingAt + FLUSH_MS;
    if (due === this.#timerDue) return;
    this.#clearTimer();
    this.#timerDue = due;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerDue = Infinity;
      if (this.#writing === null) void this.#start();
    }, Math.max(0, due - this.#now()));
  }

  #start(): Promise<boolean> {
    this.#clearTimer();
    const rewrite = this.#rewrite;
    const data = rewrite ? this.#source().join("") : this.#pending.join("");
    this.#rewrite = false;
    this.#pending = [];
    this.#pendingChars = 0;
    this.#writes += 1;
    if (rewrite) {
      this.#rewrites += 1;
      this.#lastRewrite = this.#now();
    }
    const writing = this.#write(rewrite, data).then((ok) => {
      this.#lastOk = ok;
      this.#writing = null;
      this.#schedule();
      return ok;
    });
    this.#writing = writing;
    return writing;
  }

  async #write(rewrite: boolean, data: string): Promise<boolean> {
    const dir = path.dirname(this.#file);
    try {
      if (rewrite) {
        await atomicWrite(this.#file, data);
      } else {
        await fs.mkdir(dir, { recursive: true });
        await fs.appendFile(this.#file, data);
      }
    } catch (err) {
      const failure = storageError(err, this.#file);
      log.error(`writing ${this.#file} failed: ${errorMessage(failure)}`);
      const code = storageProblemCode(failure);
      this.#problems?.clear(code === "disk_full" ? "storage_error" : "disk_full", dir);
      this.#problems?.report({
        code,
        subject: dir,
        message: `Job logs could not be written: ${failure.message}. Running jobs keep their output in memory; a log written while this lasts may miss lines.`,
      });
      return false;
    }
    this.#problems?.clear("disk_full", dir);
    this.#problems?.clear("storage_error", dir);
    return true;
  }
}

/** Reads a job's log back into its lines; a missing file is an empty log. */
export async function readJobLog(file: string): Promise<string[]> {
  try {
    return splitStoredLog(await fs.readFile(file));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
}

/**
 * A log read back for a job that runs again after a restart. One that cannot
 * be read (a folder in its place) is moved aside and reported, and the job
 * runs on without its earlier output.
 */
export async function readJobLogForRestore(file: string, problems?: ProblemSink): Promise<string[]> {
  try {
    return await readJobLog(file);
  } catch (err) {
    let done: string;
    try {
      done = `it was moved to ${await quarantine(file)}`;
    } catch (moveErr) {
      done = `it could not be moved aside either (${errorMessage(moveErr)}); remove it`;
    }
    const message = `The job log ${file} could not be read (${errorMessage(err)}); ${done}, and the job runs again without its earlier output.`;
    log.error(message);
    problems?.report({ code: "state_file_unreadable", subject: file, message });
    return [];
  }
}
