/**
 * One job as the queue holds it in memory: the stored job plus what only a
 * live builder has (retained output, the log writer, the phase it is on, the
 * abort of a running phase, a pending cancel). The store (queue.ts) owns the
 * entries; the dispatcher (dispatcher.ts) moves them through their phases.
 */
import type { FirmwareJob, StoredJob } from "./job.ts";
import type { JobLogWriter } from "./job-log.ts";
import { type OutputHistory, ProgressParser } from "./output.ts";

export interface QueueEntry {
  readonly job: StoredJob;
  /** Retained output; null once the job is terminal and its log is on disk. */
  history: OutputHistory | null;
  readonly progress: ProgressParser;
  log: JobLogWriter | null;
  phaseIndex: number;
  /** Set while a phase executes. */
  abort: AbortController | null;
  cancelRequested: boolean;
  cancelReason: string;
  /** Build servers lost while compiling it (it was dispatched again each time). */
  remoteLosses: number;
  /** Why a build server gave its compile back to be built here (`fallbackLocal`), or null. */
  fellBackFrom: string | null;
}

export function newEntry(job: StoredJob): QueueEntry {
  return {
    job,
    history: null,
    progress: new ProgressParser(),
    log: null,
    phaseIndex: 0,
    abort: null,
    cancelRequested: false,
    cancelReason: "",
    remoteLosses: 0,
    fellBackFrom: null,
  };
}

/** The job as events and the API carry it (output is fetched on its own). */
export function wireJob(entry: QueueEntry): FirmwareJob {
  return { ...entry.job, output: [] };
}
