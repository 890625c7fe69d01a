/**
 * A job's log file. While the job runs, lines are appended in batches (never
 * one write per line); when the in-memory history is trimmed, the file is
 * rewritten atomically to match, so it stays bounded too. When the job ends the
 * file holds exactly its retained output.
 *
 * A write that fails (the disk is full) loses nothing the job still needs: the
 * queue keeps the output in memory and the final rewrite writes all of it. The
 * failure is reported once per log folder and cleared by the next write that
 * succeeds; no temp file is left behind.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { getLogger } from "../logger.ts";
import { errorMessage } from "../errors.ts";
import type { ProblemSink } from "../problems.ts";
import { atomicWrite, quarantine, storageError, storageProblemCode } from "../store.ts";
import { splitStoredLog } from "./output.ts";

const log = getLogger("job-log");
const FLUSH_BYTES = 64 * 1024;
const FLUSH_MS = 200;

export class JobLogWriter {
  readonly #file: string;
  #pending: string[] = [];
  #pendingBytes = 0;
  #rewrite = false;
  #timer: NodeJS.Timeout | undefined;
  #urgent = false;
  readonly #problems: ProblemSink | undefined;
  /** Resolves to whether the last write landed. */
  #chain: Promise<boolean> = Promise.resolve(true);

  constructor(file: string, problems?: ProblemSink) {
    this.#file = file;
    this.#problems = problems;
  }

  append(line: string): void {
    this.#pending.push(line);
    this.#pendingBytes += line.length;
    if (this.#pendingBytes >= FLUSH_BYTES) this.#flushSoon(0);
    else this.#flushSoon(FLUSH_MS);
  }

  /** Replaces the whole file with these lines (after a trim, or at the end). */
  replace(lines: readonly string[]): void {
    this.#pending = [...lines];
    this.#pendingBytes = 0;
    this.#rewrite = true;
    this.#flushSoon(FLUSH_MS);
  }

  #flushSoon(ms: number): void {
    if (this.#timer !== undefined) {
      if (ms > 0 || this.#urgent) return;
      clearTimeout(this.#timer);
    }
    this.#urgent = ms === 0;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#urgent = false;
      void this.flush();
    }, ms);
  }

  /**
   * Writes what is pending and waits for it. Never rejects: resolves to
   * whether the last write landed (a failed one is logged and reported).
   */
  flush(): Promise<boolean> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#urgent = false;
    }
    const data = this.#pending.join("");
    const rewrite = this.#rewrite;
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#rewrite = false;
    if (data === "" && !rewrite) return this.#chain;
    this.#chain = this.#chain.then(async () => {
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
    });
    return this.#chain;
  }
}

/** Reads a job's log back into its lines; a missing file is an empty log. */
export async function readJobLog(file: string): Promise<string[]> {
  try {
    return splitStoredLog(await fs.readFile(file, "utf8"));
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
