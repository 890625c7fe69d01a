/**
 * The process groups this builder's jobs run in, written down while they run.
 * Each job runs in its own session, so when the builder itself is killed its
 * ESPHome process keeps going; at the next start the job runs again, and the
 * orphan would compile into the same build folder. The registry lets the next
 * start kill such leftovers, and only them. The file is not trusted: a row is
 * used only when its pid is a plain integer above 1 (never init, never "every
 * process"), and a group is killed only when the process still has the start
 * time recorded with it (pids are reused) and still leads its own session and
 * group, as every job's process does. Bad rows are skipped and reported.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { z } from "zod";
import { errorMessage } from "../errors.ts";
import { getLogger } from "../logger.ts";
import type { ProblemSink } from "../problems.ts";
import { JsonStore, keepSkippedRows, removeStaleTempFiles } from "../store.ts";

const log = getLogger("processes");

/** Linux's largest pid (pid_max can be at most 2^22). */
const PID_MAX = 4_194_304;

export const processRowSchema = z.strictObject({
  pid: z.number().int().min(2, "pid must be above 1").max(PID_MAX),
  start: z.string().regex(/^\d{1,20}$/, "start must be the process start time in clock ticks"),
});
const jobIdSchema = z.string().regex(/^[0-9a-f]{12}$/);
type Row = z.infer<typeof processRowSchema>;
/** Rows are checked one by one, so one bad row does not cost the others. */
const fileSchema = z.record(z.string(), z.unknown());
type Recorded = Record<string, Row>;

interface ProcStat {
  pgrp: number;
  session: number;
  /** Field 22: when the process started, in clock ticks since boot. */
  start: string;
}

async function procStat(pid: number): Promise<ProcStat | null> {
  try {
    const stat = await fs.readFile(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may contain spaces; it ends at the last ')'. Fields from 3 on:
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const start = fields[19];
    if (start === undefined) return null;
    return { pgrp: Number(fields[2]), session: Number(fields[3]), start };
  } catch {
    return null;
  }
}

export class ProcessRegistry {
  readonly #store: JsonStore<Record<string, unknown>>;
  readonly #problems: ProblemSink | undefined;
  #recorded: Recorded = {};

  constructor(file: string, problems?: ProblemSink) {
    this.#problems = problems;
    this.#store = new JsonStore({ file, schema: fileSchema, debounceMs: 0, title: "The list of running build processes", ...(problems === undefined ? {} : { problems }) });
  }

  /** Kills process groups left by a previous run of the builder; returns how many. */
  async reapStale(): Promise<number> {
    // Temp files of a write a killed builder did not finish (nothing writes this file yet).
    await removeStaleTempFiles(path.dirname(this.#store.file), [path.basename(this.#store.file)]);
    const loaded = await this.#store.load();
    let killed = 0;
    const skipped: string[] = [];
    const skippedRows: unknown[] = [];
    for (const [jobId, raw] of Object.entries(loaded.kind === "ok" ? loaded.value : {})) {
      const row = processRowSchema.safeParse(raw);
      if (!jobIdSchema.safeParse(jobId).success || !row.success) {
        const why = row.success ? "the key is not a job id" : row.error.issues.map((i) => `${i.path.join(".") || "(row)"}: ${i.message}`).join("; ");
        skipped.push(`${JSON.stringify(jobId.slice(0, 40))} (${why})`);
        skippedRows.push({ [jobId]: raw });
        continue;
      }
      const { pid, start } = row.data;
      if (pid === process.pid) continue;
      const stat = await procStat(pid);
      // Ours only if it is the same process (start time) and still leads the session and group its job made.
      if (stat?.start !== start || stat.pgrp !== pid || stat.session !== pid) continue;
      try {
        process.kill(-pid, "SIGKILL");
        killed++;
        log.warning(`killed ESPHome process group ${pid} left running by job ${jobId} when the builder stopped`);
      } catch {
        // already gone
      }
    }
    if (skipped.length > 0) await this.#reportSkipped(skipped, skippedRows);
    this.#recorded = {};
    try {
      await this.#store.saveNow(() => this.#recorded);
    } catch (err) {
      // Reported by the store; the builder starts anyway and records the next processes when it can.
      log.error(`clearing ${this.#store.file} failed: ${errorMessage(err)}`);
    }
    return killed;
  }

  async #reportSkipped(skipped: readonly string[], rows: readonly unknown[]): Promise<void> {
    const keptAt = await keepSkippedRows(this.#store.file, rows);
    const message =
      `${skipped.length} row(s) of ${this.#store.file} were refused and no process was signalled for them: ` +
      `${skipped.slice(0, 5).join("; ")}${skipped.length > 5 ? `; and ${skipped.length - 5} more` : ""}. ` +
      (keptAt === null ? "" : `They were kept in ${keptAt}. `) +
      "Something other than the builder wrote this file; check who can write to the builder's state folder.";
    log.error(message);
    this.#problems?.report({ code: "state_rows_skipped", subject: this.#store.file, message });
  }

  /** Records a job's process group (operations run in order, so a quick job's remove follows its add). */
  add(jobId: string, pid: number): Promise<void> {
    return this.#then(async () => {
      const stat = await procStat(pid);
      if (stat === null) return;
      this.#recorded[jobId] = { pid, start: stat.start };
      await this.#store.saveNow(() => ({ ...this.#recorded }));
    });
  }

  remove(jobId: string): Promise<void> {
    return this.#then(async () => {
      if (!(jobId in this.#recorded)) return;
      this.#recorded = Object.fromEntries(Object.entries(this.#recorded).filter(([id]) => id !== jobId));
      await this.#store.saveNow(() => ({ ...this.#recorded }));
    });
  }

  #chain: Promise<void> = Promise.resolve();

  #then(op: () => Promise<void>): Promise<void> {
    this.#chain = this.#chain.then(op).catch((err: unknown) => {
      log.warning(`recording job processes failed: ${errorMessage(err)}`);
    });
    return this.#chain;
  }
}
