/**
 * The persistent firmware queue: the public API and the job store.
 *
 * The store holds every job in memory, writes the index (`jobs.json`) on each
 * change, restores and re-queues interrupted work on start, supersedes and
 * cancels, and drops old history. Dispatching - the compile and upload lanes,
 * routing to build servers, the gate for offline devices, running phases -
 * is the dispatcher's (dispatcher.ts), which it constructs and feeds.
 *
 * The queue (this store and its dispatcher) owns every job's state and fires
 * every job event; runners only do the work. Exactly one terminal event fires
 * per job, and a cancel request always wins over a failure (or success) that
 * races it.
 */
import { promises as fs } from "node:fs";
import { BuilderError, ErrorCode, errorMessage, invalidArgs, notFound } from "../errors.ts";
import type { EventBus } from "../events.ts";
import { getLogger } from "../logger.ts";
import type { Paths } from "../paths.ts";
import type { ProblemSink } from "../problems.ts";
import { removeStaleTempFiles } from "../store.ts";
import type { QueueStatus } from "../domain/job.ts";
import { JobDispatcher, type JobGate, type JobRouter } from "./dispatcher.ts";
import { RESTART_MARKER, createJob, isTerminal, resetForRestart, type FirmwareJob, type NewJobInput, type StoredJob } from "./job.ts";
import { JobIndex } from "./job-index.ts";
import { JobLogWriter, readJobLog, readJobLogForRestore } from "./job-log.ts";
import { OutputHistory } from "./output.ts";
import { ProcessRegistry } from "./process-registry.ts";
import { newEntry, wireJob, type QueueEntry } from "./queue-entry.ts";
import { finishedToPrune, sameTarget } from "./queue-rules.ts";
import type { JobRunner } from "./runner.ts";

export type { JobGate, JobRouter, RouteContext, RouteDecision } from "./dispatcher.ts";
export type { QueueStatus };

const log = getLogger("queue");

export interface QueueOptions {
  /** Compiles (and cleans) at once. */
  compileConcurrency: number;
  /** Uploads at once. */
  uploadConcurrency: number;
  /** Finished compile/upload/install jobs kept (newest per configuration and type). */
  historyLimit: number;
  /** Finished clean jobs kept. */
  auxHistoryLimit: number;
}

export const DEFAULT_QUEUE_OPTIONS: QueueOptions = {
  compileConcurrency: 1,
  uploadConcurrency: 4,
  historyLimit: 200,
  auxHistoryLimit: 5,
};

export interface FirmwareQueueDeps {
  bus: EventBus;
  paths: Paths;
  runner: JobRunner;
  /** Sends compiles to build servers; without one everything builds here. */
  router?: JobRouter;
  options?: Partial<QueueOptions>;
  now?: () => Date;
  /** Where a corrupt index, skipped rows and failing writes are reported. */
  problems?: ProblemSink;
  /**
   * Whether this machine's ESPHome can run jobs now (false while the managed ESPHome is first
   * provisioned): local phases wait, queued, until it is; `wake()` when it changes.
   */
  localReady?: () => boolean;
}

export class FirmwareQueue {
  readonly #bus: EventBus;
  readonly #paths: Paths;
  readonly #options: QueueOptions;
  readonly #now: () => Date;
  readonly #index: JobIndex;
  readonly #processes: ProcessRegistry;
  readonly #jobs = new Map<string, QueueEntry>();
  readonly #dispatcher: JobDispatcher;
  readonly #inflight = new Set<Promise<unknown>>();
  readonly #problems: ProblemSink | undefined;

  constructor(deps: FirmwareQueueDeps) {
    this.#bus = deps.bus;
    this.#paths = deps.paths;
    this.#options = { ...DEFAULT_QUEUE_OPTIONS, ...deps.options };
    this.#now = deps.now ?? (() => new Date());
    this.#problems = deps.problems;
    this.#index = new JobIndex(deps.paths.jobsFile, deps.problems);
    this.#processes = new ProcessRegistry(deps.paths.processesFile, deps.problems);
    this.#dispatcher = new JobDispatcher({
      bus: deps.bus,
      runner: deps.runner,
      router: deps.router,
      now: this.#now,
      localReady: deps.localReady ?? (() => true),
      compileConcurrency: this.#options.compileConcurrency,
      uploadConcurrency: this.#options.uploadConcurrency,
      jobs: this.#jobs,
      processes: this.#processes,
      logWriter: (jobId, history) => this.#logWriter(jobId, history),
      persist: () => {
        this.#persist();
      },
      track: (work) => {
        this.#track(work);
      },
      ended: () => {
        this.#prune();
        this.#persist();
      },
    });
  }

  /** Loads the job index, re-queues interrupted work and starts dispatching. */
  async start(): Promise<void> {
    // Temp files of log writes a killed builder did not finish (nothing writes logs yet).
    await removeStaleTempFiles(this.#paths.jobLogsDir);
    // Anything a killed builder left running goes first: its jobs are about to run again.
    await this.#processes.reapStale();
    for (const job of await this.#index.load()) await this.#restore(job);
    this.#dispatcher.start();
    this.#prune();
    try {
      await this.#index.saveNow(() => this.#jobList());
    } catch (err) {
      // Reported by the store, which writes the index again once it can; the builder starts either way.
      log.error(`saving the job index failed: ${errorMessage(err)}`);
      this.#persist();
    }
    this.#dispatcher.pump();
  }

  async #restore(job: StoredJob): Promise<void> {
    const entry = newEntry(job);
    this.#jobs.set(job.job_id, entry);
    if (isTerminal(job.status)) return;
    const history = new OutputHistory(await readJobLogForRestore(this.#paths.jobLog(job.job_id), this.#problems));
    if (job.status === "running") {
      resetForRestart(job);
      if (history.endsOpen) history.append("\n");
      history.append(RESTART_MARKER);
      log.info(`job ${job.job_id} (${job.job_type} ${job.configuration}) was running when the builder stopped; queued again`);
    }
    entry.history = history;
    if (history.length > 0) {
      entry.log = this.#logWriter(job.job_id, history);
      entry.log.replace();
    }
    this.#dispatcher.place(entry);
  }

  /** Cancels running jobs, waits for them and writes everything down. Queued jobs stay queued. */
  async stop(): Promise<void> {
    this.#dispatcher.stop();
    for (const entry of this.#jobs.values()) {
      if (entry.abort !== null) this.#requestCancel(entry, "the builder was stopped");
    }
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
    await this.#index.flush();
  }

  /**
   * Adds a job; an older active job of the same configuration is superseded
   * (cancelled). The job is on disk before anything else happens: when the
   * index cannot be written (`disk_full`, `storage_error`) nothing changed,
   * no event was sent, and the error says what to do.
   */
  async enqueue(input: NewJobInput): Promise<FirmwareJob> {
    if (this.#dispatcher.stopping) throw new BuilderError(ErrorCode.Unavailable, "The builder is shutting down");
    const job = createJob(input, this.#now());
    await this.#index.saveNow(() => this.#jobList(job));
    const entry = newEntry(job);
    entry.history = new OutputHistory();
    this.#jobs.set(job.job_id, entry);
    this.#bus.emit("job_queued", { job: wireJob(entry) });
    for (const other of [...this.#jobs.values()]) {
      if (other !== entry && sameTarget(other.job, job) && !isTerminal(other.job.status)) {
        this.#cancelEntry(other, `superseded by job ${job.job_id}`);
      }
    }
    this.#dispatcher.place(entry);
    this.#persist();
    this.#dispatcher.pump();
    return wireJob(entry);
  }

  /**
   * Cancels a job. A queued job (or an install between its phases) ends at
   * once; a running one is signalled and its runner finalises it.
   */
  cancel(jobId: string): FirmwareJob {
    const entry = this.#jobs.get(jobId);
    if (entry === undefined) throw notFound(`Job not found: ${jobId}`);
    if (isTerminal(entry.job.status)) throw invalidArgs(`Cannot cancel a ${entry.job.status} job`);
    this.#cancelEntry(entry, "cancelled by user");
    return wireJob(entry);
  }

  /** Removes finished jobs and their logs. Returns how many were removed. */
  async clearHistory(): Promise<number> {
    const removed = [...this.#jobs.values()].filter((e) => isTerminal(e.job.status));
    for (const entry of removed) this.#remove(entry);
    await this.#index.saveNow(() => this.#jobList());
    return removed.length;
  }

  get(jobId: string): FirmwareJob | undefined {
    const entry = this.#jobs.get(jobId);
    return entry === undefined ? undefined : wireJob(entry);
  }

  /** Every job, newest first. Output is not included (see `output`). */
  list(): FirmwareJob[] {
    return [...this.#jobs.values()].reverse().map((e) => wireJob(e));
  }

  /** The retained output of an active job, synchronously (null when the job's log is on disk). */
  liveOutput(jobId: string): readonly string[] | null {
    const entry = this.#jobs.get(jobId);
    return entry?.history === null || entry === undefined ? null : [...entry.history.lines];
  }

  /** The retained output of any job, from memory or its log file. */
  async output(jobId: string): Promise<string[]> {
    const entry = this.#jobs.get(jobId);
    if (entry === undefined) throw notFound(`Job not found: ${jobId}`);
    if (entry.history !== null) return [...entry.history.lines];
    return readJobLog(this.#paths.jobLog(jobId));
  }

  status(): QueueStatus {
    return this.#dispatcher.status();
  }

  /** Sets the router (remote builds start after the queue). */
  setRouter(router: JobRouter): void {
    this.#dispatcher.setRouter(router);
  }

  /** Sets the gate that holds uploads for offline devices. */
  setGate(gate: JobGate): void {
    this.#dispatcher.setGate(gate);
  }

  /**
   * Fails a job that is held (`waiting`) and not running, with `error`; for
   * a wait that expired. Returns false (and changes nothing) for any other job.
   */
  failWaiting(jobId: string, error: string): boolean {
    return this.#dispatcher.failWaiting(jobId, error);
  }

  /** Dispatches again: something a routing decision depends on changed. */
  wake(): void {
    this.#dispatcher.pump();
  }

  // ---- internals ----

  /** The job's log file, rewritten from this history. */
  #logWriter(jobId: string, history: OutputHistory): JobLogWriter {
    return new JobLogWriter(this.#paths.jobLog(jobId), { source: () => history.lines, problems: this.#problems });
  }

  /** The jobs to write down; `adding` is a job about to be added. */
  #jobList(adding?: StoredJob): StoredJob[] {
    const jobs: StoredJob[] = [...this.#jobs.values()].map((e) => e.job);
    if (adding !== undefined && !this.#jobs.has(adding.job_id)) jobs.push(adding);
    return jobs;
  }

  #persist(): void {
    this.#index.scheduleSave(() => this.#jobList());
  }

  /** Background work `stop` waits for. A failure is logged: a rejection here must not crash the builder. */
  #track(promise: Promise<unknown>): void {
    this.#inflight.add(promise);
    promise.then(
      () => { this.#inflight.delete(promise); },
      (err: unknown) => {
        this.#inflight.delete(promise);
        log.error(`background work failed: ${errorMessage(err)}`);
      },
    );
  }

  #cancelEntry(entry: QueueEntry, reason: string): void {
    if (entry.abort !== null) {
      this.#requestCancel(entry, reason);
      return;
    }
    this.#dispatcher.unplace(entry.job.job_id);
    this.#dispatcher.finish(entry, "cancelled", { error: reason });
  }

  #requestCancel(entry: QueueEntry, reason: string): void {
    if (entry.cancelRequested) return;
    entry.cancelRequested = true;
    entry.cancelReason = reason;
    entry.abort?.abort();
  }

  #remove(entry: QueueEntry): void {
    this.#jobs.delete(entry.job.job_id);
    this.#track(fs.rm(this.#paths.jobLog(entry.job.job_id), { force: true }));
    this.#bus.emit("job_removed", { job_id: entry.job.job_id });
  }

  /** Keeps the newest finished job per configuration and type, within the limits. */
  #prune(): void {
    for (const job of finishedToPrune([...this.#jobs.values()].map((e) => e.job), this.#options)) {
      const entry = this.#jobs.get(job.job_id);
      if (entry !== undefined) this.#remove(entry);
    }
  }
}
