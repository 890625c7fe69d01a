/**
 * The job index on disk (`jobs.json`): job metadata only, never output. It is
 * trusted no more than a client: every row is parsed on its own and held to
 * the API's rules (`parseStoredJob`); a row that fails is skipped, kept beside
 * the file (`jobs.json.skipped`) and reported, and the rest load. A file that
 * cannot be read, parsed or validated is moved aside by the store and
 * reported; the queue then starts empty.
 */
import path from "node:path";
import { z } from "zod";
import { errorMessage } from "../errors.ts";
import { getLogger } from "../logger.ts";
import type { ProblemSink } from "../problems.ts";
import { JsonStore, keepSkippedRows, removeStaleTempFiles } from "../store.ts";
import { parseStoredJob, type StoredJob } from "./job.ts";

const log = getLogger("job-index");

const indexSchema = z.object({ version: z.literal(1), jobs: z.array(z.unknown()) });
type IndexFile = z.infer<typeof indexSchema>;

export class JobIndex {
  readonly file: string;
  readonly #store: JsonStore<IndexFile>;
  readonly #problems: ProblemSink | undefined;

  constructor(file: string, problems?: ProblemSink) {
    this.file = file;
    this.#problems = problems;
    this.#store = new JsonStore({ file, schema: indexSchema, debounceMs: 50, title: "The job index", ...(problems === undefined ? {} : { problems }) });
  }

  /** The jobs that pass the rules, in file order (temp files a killed builder left are removed first). */
  async load(): Promise<StoredJob[]> {
    await removeStaleTempFiles(path.dirname(this.file), [path.basename(this.file)]);
    const loaded = await this.#store.load();
    const jobs = new Map<string, StoredJob>();
    const skipped: string[] = [];
    const skippedRows: unknown[] = [];
    for (const raw of loaded.kind === "ok" ? loaded.value.jobs : []) {
      try {
        const job = parseStoredJob(raw);
        if (jobs.has(job.job_id)) throw new Error("a second row with this job_id");
        jobs.set(job.job_id, job);
      } catch (err) {
        const id = typeof raw === "object" && raw !== null && "job_id" in raw ? JSON.stringify(raw.job_id).slice(0, 40) : "?";
        const reason = err instanceof z.ZodError ? err.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ") : errorMessage(err);
        log.error(`skipping job ${id} from ${this.file}: ${reason}`);
        skipped.push(`job ${id} (${reason})`);
        skippedRows.push(raw);
      }
    }
    if (skipped.length > 0) await this.#reportSkipped(skipped, skippedRows);
    return [...jobs.values()];
  }

  /** Writes now; throws `disk_full`/`storage_error` (the file is then as it was). */
  saveNow(jobs: () => StoredJob[]): Promise<void> {
    return this.#store.saveNow(() => ({ version: 1, jobs: jobs() }));
  }

  /** Writes soon (debounced); a failure is reported and retried until a write succeeds. */
  scheduleSave(jobs: () => StoredJob[]): void {
    this.#store.scheduleSave(() => ({ version: 1, jobs: jobs() }));
  }

  flush(): Promise<void> {
    return this.#store.flush();
  }

  async #reportSkipped(skipped: readonly string[], rows: readonly unknown[]): Promise<void> {
    const keptAt = await keepSkippedRows(this.file, rows);
    const message =
      `${skipped.length} job(s) in ${this.file} could not be loaded and were skipped: ` +
      `${skipped.slice(0, 5).join("; ")}${skipped.length > 5 ? `; and ${skipped.length - 5} more (see the log)` : ""}. ` +
      (keptAt === null ? "They could not be kept aside (see the log)." : `They were kept in ${keptAt}; delete it once you have looked.`);
    this.#problems?.report({ code: "state_rows_skipped", subject: this.file, message });
  }
}
