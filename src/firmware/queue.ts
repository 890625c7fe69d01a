/**
 * The persistent firmware queue.
 *
 * Jobs run on two lanes: the compile lane (one at a time by default) runs
 * compiles and cleans, the upload lane (up to four at once) runs flashes. An
 * install is one job that runs its compile phase on the compile lane and then
 * moves to the upload lane, so a bulk install pipelines: device B compiles
 * while device A uploads.
 *
 * The queue owns every job's state and fires every job event; runners only do
 * the work. Exactly one terminal event fires per job, and a cancel request
 * always wins over a failure (or success) that races it.
 */
import { promises as fs } from "node:fs";
import { BuilderError, ErrorCode, errorMessage, invalidArgs, notFound } from "../errors.ts";
import type { EventBus } from "../events.ts";
import { getLogger } from "../logger.ts";
import type { Paths } from "../paths.ts";
import type { ProblemSink } from "../problems.ts";
import { removeStaleTempFiles } from "../store.ts";
import {
  RESTART_MARKER,
  createJob,
  fallBackToLocal,
  enterPhase,
  isTerminal,
  markStarted,
  markTerminal,
  phasesOf,
  resetForRestart,
  setWaiting,
  type FirmwareJob,
  type JobPhase,
  type JobWaitReason,
  type NewJobInput,
  type StoredJob,
  type TerminalStatus,
} from "./job.ts";
import { JobIndex } from "./job-index.ts";
import { finishedToPrune, isOffloadable, isPlaceable, sameTarget } from "./queue-rules.ts";
import { JobLogWriter, readJobLog, readJobLogForRestore } from "./job-log.ts";
import { ProcessRegistry } from "./process-registry.ts";
import { OUTPUT_LINES_RETAINED, OutputHistory, ProgressParser } from "./output.ts";
import type { JobRunner, PhaseResult } from "./runner.ts";

const log = getLogger("queue");

import type { QueueStatus } from "../domain/job.ts";

export type { QueueStatus };

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

/** Where a compile should run, decided when the job is dispatched. */
export type RouteDecision =
  | { kind: "local"; note?: string }
  | { kind: "remote"; pinSha256: string; label: string }
  /** Not yet: a build server this job is waiting for may come back, or become idle. */
  | { kind: "wait" }
  /** It cannot build anywhere it is allowed to (say `local_builds: never` and `force_local`). */
  | { kind: "fail"; error: string };

export interface RouteContext {
  /** Build servers already compiling one of our jobs. */
  busyPins: ReadonlySet<string>;
  /** Whether a build server may take it at all (not forced here, no serial port). */
  offloadable?: boolean;
  /** How often a build server compiling it was lost mid-build. */
  remoteLosses?: number;
}

export interface JobRouter {
  route(job: Readonly<StoredJob>, ctx: RouteContext): RouteDecision;
}

/**
 * Holds uploads back: an install's upload (or an upload job) that `holds`
 * names a reason for stays in its lane, marked `waiting`, until a `wake()`
 * finds it free (src/devices/waiting.ts: the device is offline).
 */
export interface JobGate {
  holds(job: Readonly<StoredJob>): JobWaitReason | null;
}

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

type LaneName = "compile" | "upload";

interface Lane {
  readonly name: LaneName;
  readonly concurrency: number;
  readonly active: Set<string>;
  readonly waiting: string[];
}

interface Entry {
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
}

function laneFor(phase: JobPhase): LaneName {
  return phase === "upload" ? "upload" : "compile";
}

export class FirmwareQueue {
  readonly #bus: EventBus;
  readonly #paths: Paths;
  readonly #runner: JobRunner;
  readonly #options: QueueOptions;
  readonly #now: () => Date;
  readonly #index: JobIndex;
  readonly #processes: ProcessRegistry;
  readonly #jobs = new Map<string, Entry>();
  readonly #lanes: Record<LaneName, Lane>;
  /** Compiles running on build servers: they take no local compile slot. */
  readonly #remoteLane: Lane = { name: "compile", concurrency: Infinity, active: new Set(), waiting: [] };
  readonly #remotePins = new Map<string, string>();
  #router: JobRouter | undefined;
  #gate: JobGate | undefined;
  readonly #inflight = new Set<Promise<unknown>>();
  #started = false;
  #stopping = false;
  #lastStatus = "";
  readonly #problems: ProblemSink | undefined;
  readonly #localReady: () => boolean;

  constructor(deps: FirmwareQueueDeps) {
    this.#localReady = deps.localReady ?? (() => true);
    this.#bus = deps.bus;
    this.#paths = deps.paths;
    this.#runner = deps.runner;
    this.#router = deps.router;
    this.#options = { ...DEFAULT_QUEUE_OPTIONS, ...deps.options };
    this.#now = deps.now ?? (() => new Date());
    this.#problems = deps.problems;
    this.#index = new JobIndex(deps.paths.jobsFile, deps.problems);
    this.#processes = new ProcessRegistry(deps.paths.processesFile, deps.problems);
    this.#lanes = {
      compile: { name: "compile", concurrency: this.#options.compileConcurrency, active: new Set(), waiting: [] },
      upload: { name: "upload", concurrency: this.#options.uploadConcurrency, active: new Set(), waiting: [] },
    };
  }

  /** Loads the job index, re-queues interrupted work and starts dispatching. */
  async start(): Promise<void> {
    // Temp files of log writes a killed builder did not finish (nothing writes logs yet).
    await removeStaleTempFiles(this.#paths.jobLogsDir);
    // Anything a killed builder left running goes first: its jobs are about to run again.
    await this.#processes.reapStale();
    for (const job of await this.#index.load()) await this.#restore(job);
    this.#started = true;
    this.#prune();
    try {
      await this.#index.saveNow(() => this.#jobList());
    } catch (err) {
      // Reported by the store, which writes the index again once it can; the builder starts either way.
      log.error(`saving the job index failed: ${errorMessage(err)}`);
      this.#persist();
    }
    this.#pump();
  }

  async #restore(job: StoredJob): Promise<void> {
    const entry = this.#newEntry(job);
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
    this.#place(entry);
  }

  /** Cancels running jobs, waits for them and writes everything down. Queued jobs stay queued. */
  async stop(): Promise<void> {
    this.#stopping = true;
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
    if (this.#stopping) throw new BuilderError(ErrorCode.Unavailable, "The builder is shutting down");
    const job = createJob(input, this.#now());
    await this.#index.saveNow(() => this.#jobList(job));
    const entry = this.#newEntry(job);
    entry.history = new OutputHistory();
    this.#jobs.set(job.job_id, entry);
    this.#bus.emit("job_queued", { job: this.#wire(entry) });
    for (const other of [...this.#jobs.values()]) {
      if (other !== entry && sameTarget(other.job, job) && !isTerminal(other.job.status)) {
        this.#cancelEntry(other, `superseded by job ${job.job_id}`);
      }
    }
    this.#place(entry);
    this.#persist();
    this.#pump();
    return this.#wire(entry);
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
    return this.#wire(entry);
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
    return entry === undefined ? undefined : this.#wire(entry);
  }

  /** Every job, newest first. Output is not included (see `output`). */
  list(): FirmwareJob[] {
    return [...this.#jobs.values()].reverse().map((e) => this.#wire(e));
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
    const lane = this.#lanes.compile;
    // A job waiting for a build server does not keep this machine's compile lane busy
    // (a build server that is also an offloader with `local_builds: never` stays usable).
    const forThisLane = lane.waiting.filter((id) => this.#jobs.get(id)?.job.waiting === undefined).length;
    return {
      idle: lane.active.size === 0 && forThisLane === 0,
      running: lane.active.size,
      queue_depth: lane.waiting.length,
    };
  }

  // ---- internals ----

  #newEntry(job: StoredJob): Entry {
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
    };
  }

  /** The job's log file, rewritten from this history. */
  #logWriter(jobId: string, history: OutputHistory): JobLogWriter {
    return new JobLogWriter(this.#paths.jobLog(jobId), { source: () => history.lines, problems: this.#problems });
  }

  #wire(entry: Entry): FirmwareJob {
    return { ...entry.job, output: [] };
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
  #track<T>(promise: Promise<T>): void {
    this.#inflight.add(promise);
    promise.then(
      () => { this.#inflight.delete(promise); },
      (err: unknown) => {
        this.#inflight.delete(promise);
        log.error(`background work failed: ${errorMessage(err)}`);
      },
    );
  }

  #place(entry: Entry, opts: { front?: boolean } = {}): void {
    const phase = phasesOf(entry.job.job_type)[entry.phaseIndex];
    if (phase === undefined) return;
    const waiting = this.#lanes[laneFor(phase)].waiting;
    if (opts.front === true) waiting.unshift(entry.job.job_id);
    else waiting.push(entry.job.job_id);
    this.#statusMaybeChanged();
  }

  #cancelEntry(entry: Entry, reason: string): void {
    if (entry.abort !== null) {
      this.#requestCancel(entry, reason);
      return;
    }
    for (const lane of Object.values(this.#lanes)) {
      const i = lane.waiting.indexOf(entry.job.job_id);
      if (i !== -1) lane.waiting.splice(i, 1);
    }
    this.#finish(entry, "cancelled", { error: reason });
  }

  #requestCancel(entry: Entry, reason: string): void {
    if (entry.cancelRequested) return;
    entry.cancelRequested = true;
    entry.cancelReason = reason;
    entry.abort?.abort();
  }

  /** Sets the router (remote builds start after the queue). */
  setRouter(router: JobRouter): void {
    this.#router = router;
  }

  /** Sets the gate that holds uploads for offline devices. */
  setGate(gate: JobGate): void {
    this.#gate = gate;
  }

  /**
   * Fails a job that is held (`waiting`) and not running, with `error`; for
   * a wait that expired. Returns false (and changes nothing) for any other job.
   */
  failWaiting(jobId: string, error: string): boolean {
    const entry = this.#jobs.get(jobId);
    if (entry === undefined || entry.abort !== null || isTerminal(entry.job.status) || entry.job.waiting === undefined) return false;
    for (const lane of Object.values(this.#lanes)) {
      const i = lane.waiting.indexOf(jobId);
      if (i !== -1) lane.waiting.splice(i, 1);
    }
    this.#finish(entry, "failed", { error });
    this.#pump();
    return true;
  }

  /** Dispatches again: something a routing decision depends on changed. */
  wake(): void {
    this.#pump();
  }

  /**
   * The job starts (`on`) or stops waiting for `kind`; clients hear it
   * (`job_updated`). Stopping clears only that kind's wait: another belongs to
   * whoever set it.
   */
  #waiting(entry: Entry, kind: JobWaitReason, on: boolean): void {
    if (!on && entry.job.waiting?.reason !== kind) return;
    if (!setWaiting(entry.job, on ? kind : null, this.#now())) return;
    if (on && kind === "device") this.#ingest(entry, `*** waiting for ${entry.job.configuration}'s device to come online before uploading ***\n`);
    this.#persist();
    this.#statusMaybeChanged();
    this.#bus.emit("job_updated", { job: this.#wire(entry) });
  }

  #pump(): void {
    if (!this.#started || this.#stopping) return;
    this.#dispatchCompiles();
    const upload = this.#lanes.upload;
    for (const id of [...upload.waiting]) {
      if (upload.active.size >= upload.concurrency || !this.#localReady()) break;
      const entry = this.#jobs.get(id);
      if (entry === undefined || isTerminal(entry.job.status)) {
        upload.waiting.splice(upload.waiting.indexOf(id), 1);
        continue;
      }
      const hold = this.#gate?.holds(entry.job) ?? null;
      if (hold !== null) {
        this.#waiting(entry, hold, true);
        continue;
      }
      this.#waiting(entry, "device", false);
      upload.waiting.splice(upload.waiting.indexOf(id), 1);
      upload.active.add(entry.job.job_id);
      this.#track(this.#execute(entry, upload));
    }
    this.#statusMaybeChanged();
  }

  /**
   * Walks the compile lane in order. A job a build server can take starts
   * there at once (one compile per build server); the rest take the local
   * slots as they free up, so the local machine compiles alongside.
   */
  #dispatchCompiles(): void {
    const lane = this.#lanes.compile;
    for (const id of [...lane.waiting]) {
      const entry = this.#jobs.get(id);
      if (entry === undefined || isTerminal(entry.job.status)) {
        lane.waiting.splice(lane.waiting.indexOf(id), 1);
        continue;
      }
      // No ESPHome here yet: a local compile cannot run, nor can a remote one be bundled.
      if (!this.#localReady()) continue;
      let decision: RouteDecision = { kind: "local" };
      if (entry.job.job_type === "clean_all" && entry.job.source === "remote") {
        // A reset of a build server's environment runs there, once none of our compiles does.
        const pin = entry.job.source_pin_sha256;
        decision = [...this.#remotePins.values()].includes(pin) ? { kind: "wait" } : { kind: "remote", pinSha256: pin, label: entry.job.source_label };
      } else if (this.#router !== undefined && isPlaceable(entry.job, phasesOf(entry.job.job_type)[entry.phaseIndex])) {
        decision = this.#router.route(entry.job, {
          busyPins: new Set(this.#remotePins.values()),
          offloadable: isOffloadable(entry.job, phasesOf(entry.job.job_type)[entry.phaseIndex]),
          remoteLosses: entry.remoteLosses,
        });
      }
      if (decision.kind === "wait") {
        this.#waiting(entry, "build_server", true);
        continue;
      }
      if (decision.kind === "fail") {
        lane.waiting.splice(lane.waiting.indexOf(id), 1);
        this.#ingest(entry, `*** ${decision.error} ***\n`);
        this.#finish(entry, "failed", { error: decision.error });
        continue;
      }
      this.#waiting(entry, "build_server", false);
      if (decision.kind === "remote") {
        lane.waiting.splice(lane.waiting.indexOf(id), 1);
        entry.job.source = "remote";
        entry.job.source_pin_sha256 = decision.pinSha256;
        entry.job.source_label = decision.label;
        this.#remotePins.set(id, decision.pinSha256);
        this.#remoteLane.active.add(id);
        // Dispatched again after a lost build server: no job_started this time.
        if (entry.job.status === "running") this.#bus.emit("job_updated", { job: this.#wire(entry) });
        this.#track(this.#execute(entry, this.#remoteLane));
        continue;
      }
      if (lane.active.size >= lane.concurrency) continue;
      lane.waiting.splice(lane.waiting.indexOf(id), 1);
      if (entry.job.source === "remote" && phasesOf(entry.job.job_type)[entry.phaseIndex] === "compile") {
        entry.job.source = "local";
        entry.job.source_pin_sha256 = "";
        entry.job.source_label = "";
      }
      if (decision.note !== undefined) this.#ingest(entry, `*** ${decision.note} ***\n`);
      if (entry.job.status === "running" && entry.remoteLosses > 0) this.#bus.emit("job_updated", { job: this.#wire(entry) });
      lane.active.add(id);
      this.#track(this.#execute(entry, lane));
    }
  }

  async #execute(entry: Entry, lane: Lane): Promise<void> {
    const { job } = entry;
    const phase = phasesOf(job.job_type)[entry.phaseIndex] ?? "compile";
    const abort = new AbortController();
    entry.abort = abort;
    if (job.status === "queued") {
      markStarted(job, this.#now());
      entry.log ??= this.#logWriter(job.job_id, entry.history ??= new OutputHistory());
      this.#persist();
      this.#bus.emit("job_started", { job: this.#wire(entry) });
    }
    if (job.phase !== phase) enterPhase(job, phase);
    entry.progress.reset();
    let result: PhaseResult;
    try {
      result = await this.#runner.runPhase({
        job,
        phase,
        signal: abort.signal,
        onLine: (line) => {
          this.#ingest(entry, line);
        },
        onProcess: (pid) => {
          this.#track(pid === null ? this.#processes.remove(job.job_id) : this.#processes.add(job.job_id, pid));
        },
      });
    } catch (err) {
      result = { exitCode: null, error: errorMessage(err) };
    }
    entry.abort = null;
    // The slot is free before the terminal event, so a listener sees the lane as it now is.
    lane.active.delete(job.job_id);
    this.#remotePins.delete(job.job_id);
    if (!entry.cancelRequested && !this.#stopping && result.buildServerLost === true && phase === "compile" && job.source === "remote") {
      this.#reroute(entry);
    } else if (entry.cancelRequested) {
      this.#finish(entry, "cancelled", { error: entry.cancelReason, exitCode: result.exitCode });
    } else if (result.fallbackLocal !== undefined && job.source === "remote" && phase === "compile") {
      fallBackToLocal(job);
      this.#ingest(entry, `*** ${result.fallbackLocal} ***\n`);
      this.#place(entry, { front: true });
      this.#persist();
    } else if (result.error !== null) {
      this.#finish(entry, "failed", { error: result.error, exitCode: result.exitCode, ...(result.failureReason === undefined ? {} : { failureReason: result.failureReason }) });
    } else if (entry.phaseIndex + 1 < phasesOf(job.job_type).length) {
      entry.phaseIndex += 1;
      job.exit_code = result.exitCode ?? 0;
      // The next phase starts from 0, even while it waits for its lane.
      enterPhase(job, phasesOf(job.job_type)[entry.phaseIndex] ?? phase);
      this.#bus.emit("job_progress", { job_id: job.job_id, progress: 0 });
      this.#place(entry);
      this.#persist();
    } else {
      this.#finish(entry, "completed", { exitCode: result.exitCode ?? 0 });
    }
    this.#pump();
  }

  /**
   * The build server compiling this job was lost mid-build: the compile goes
   * back to the front of the compile lane and is dispatched again (another
   * build server, the same one once it is back, or here), still one running
   * job. The router decides when losses are too many.
   */
  #reroute(entry: Entry): void {
    const { job } = entry;
    entry.remoteLosses += 1;
    const label = job.source_label || job.source_pin_sha256.slice(0, 8);
    this.#ingest(entry, `*** build server ${label} was lost mid-build (${entry.remoteLosses}x); dispatching the compile again ***\n`);
    job.source = "local";
    job.source_pin_sha256 = "";
    job.source_label = "";
    enterPhase(job, "compile");
    entry.progress.reset();
    this.#bus.emit("job_progress", { job_id: job.job_id, progress: 0 });
    this.#lanes.compile.waiting.unshift(job.job_id);
    this.#persist();
    this.#bus.emit("job_updated", { job: this.#wire(entry) });
  }

  #ingest(entry: Entry, line: string): void {
    const { job } = entry;
    if (isTerminal(job.status)) return;
    const history = entry.history ?? (entry.history = new OutputHistory());
    const trims = history.trims;
    history.append(line);
    entry.log ??= this.#logWriter(job.job_id, history);
    if (history.trims !== trims) entry.log.replace();
    else entry.log.append(line);
    this.#bus.emit("job_output", { job_id: job.job_id, line });
    const progress = entry.progress.feed(line);
    if (progress !== null) {
      job.progress = progress;
      this.#bus.emit("job_progress", { job_id: job.job_id, progress });
    }
  }

  #finish(entry: Entry, status: TerminalStatus, detail: { exitCode?: number | null; error?: string | null; failureReason?: string }): void {
    const { job } = entry;
    if (isTerminal(job.status)) return;
    markTerminal(job, status, this.#now(), detail);
    const history = entry.history;
    if (history !== null && history.length > 0) {
      history.trim(OUTPUT_LINES_RETAINED);
      entry.log ??= this.#logWriter(job.job_id, history);
      entry.log.replace();
    }
    const writer = entry.log;
    if (writer !== null) {
      // Memory holds the output until the log file has it, so a reader never finds neither.
      // A log that could not be written (disk full) leaves the output in memory, where readers find it.
      this.#track(
        writer.flush().then((written) => {
          if (written) entry.history = null;
        }),
      );
    } else {
      entry.history = null;
    }
    entry.log = null;
    this.#prune();
    this.#persist();
    this.#statusMaybeChanged();
    this.#bus.emit(`job_${status}`, { job: this.#wire(entry) });
  }

  #remove(entry: Entry): void {
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

  #statusMaybeChanged(): void {
    const status = this.status();
    const key = `${status.idle}/${status.running}/${status.queue_depth}`;
    if (key === this.#lastStatus) return;
    this.#lastStatus = key;
    this.#bus.emit("queue_status_changed", status);
  }
}
