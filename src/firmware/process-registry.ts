/**
 * The process groups this builder's jobs run in, written down while they run.
 * Each job runs in its own session, so when the builder itself is killed its
 * ESPHome process keeps going; at the next start the job runs again, and the
 * orphan would compile into the same build folder. The registry lets the next
 * start kill such leftovers, and only them: a pid is trusted only if the
 * process still has the start time recorded with it (pids are reused).
 */
import { promises as fs } from "node:fs";
import { z } from "zod";
import { getLogger } from "../logger.ts";
import { JsonStore } from "../store.ts";

const log = getLogger("processes");

const fileSchema = z.record(z.string(), z.object({ pid: z.number().int().positive(), start: z.string().max(32) }));
type Recorded = z.infer<typeof fileSchema>;

/** Field 22 of /proc/<pid>/stat: when the process started, in clock ticks since boot. */
async function startTime(pid: number): Promise<string | null> {
  try {
    const stat = await fs.readFile(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may contain spaces; it ends at the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

export class ProcessRegistry {
  readonly #store: JsonStore<Recorded>;
  #recorded: Recorded = {};

  constructor(file: string) {
    this.#store = new JsonStore({ file, schema: fileSchema, debounceMs: 0 });
  }

  /** Kills process groups left by a previous run of the builder; returns how many. */
  async reapStale(): Promise<number> {
    const loaded = await this.#store.load();
    let killed = 0;
    if (loaded.kind === "ok") {
      for (const [jobId, { pid, start }] of Object.entries(loaded.value)) {
        if ((await startTime(pid)) !== start) continue;
        try {
          process.kill(-pid, "SIGKILL");
          killed++;
          log.warning(`killed ESPHome process group ${pid} left running by job ${jobId} when the builder stopped`);
        } catch {
          // already gone
        }
      }
    }
    this.#recorded = {};
    await this.#store.saveNow(() => this.#recorded);
    return killed;
  }

  /** Records a job's process group (operations run in order, so a quick job's remove follows its add). */
  add(jobId: string, pid: number): Promise<void> {
    return this.#then(async () => {
      const start = await startTime(pid);
      if (start === null) return;
      this.#recorded[jobId] = { pid, start };
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
      log.warning(`recording job processes failed: ${String(err)}`);
    });
    return this.#chain;
  }
}
