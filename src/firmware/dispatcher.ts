/**
 * The queue's dispatcher: the two lanes and everything that moves a job
 * through its phases.
 *
 * The compile lane (one at a time by default) runs compiles and cleans, the
 * upload lane (up to four at once) runs flashes. An install is one job that
 * runs its compile phase on the compile lane and then moves to the upload
 * lane, so a bulk install pipelines: device B compiles while device A uploads.
 * Compiles a build server takes run beside the lanes (one per build server)
 * and take no local slot; the router decides, at dispatch, where each runs,
 * and the gate holds uploads for offline devices.
 *
 * The dispatcher reads the store's entries and never adds or removes one; it
 * fires the events of a job's run (started, output, progress, updated and the
 * one terminal event). Together with the store (queue.ts) it is the only
 * place job events come from: runners only do the work.
 */
import type { QueueStatus } from "../domain/job.ts";
import { errorMessage } from "../errors.ts";
import type { EventBus } from "../events.ts";
import {
  enterPhase,
  fallBackToLocal,
  isTerminal,
  markStarted,
  markTerminal,
  phasesOf,
  setWaiting,
  type JobPhase,
  type JobWaitReason,
  type StoredJob,
  type TerminalStatus,
} from "./job.ts";
import type { JobLogWriter } from "./job-log.ts";
import { OUTPUT_LINES_RETAINED, OutputHistory } from "./output.ts";
import type { ProcessRegistry } from "./process-registry.ts";
import { wireJob, type QueueEntry } from "./queue-entry.ts";
import { isOffloadable, isPlaceable } from "./queue-rules.ts";
import type { JobRunner, PhaseResult } from "./runner.ts";

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

export interface DispatcherDeps {
  bus: EventBus;
  runner: JobRunner;
  router?: JobRouter | undefined;
  now: () => Date;
  /** Whether this machine's ESPHome can run jobs now; local phases wait, queued, until it can. */
  localReady: () => boolean;
  compileConcurrency: number;
  uploadConcurrency: number;
  /** The store's entries by job id: read here, never added to or removed from. */
  jobs: ReadonlyMap<string, QueueEntry>;
  /** Where a running phase's process ids are written down (reaped after a crash). */
  processes: ProcessRegistry;
  /** The job's log file, rewritten from this history. */
  logWriter: (jobId: string, history: OutputHistory) => JobLogWriter;
  /** Writes the job index soon. */
  persist: () => void;
  /** Background work the store's `stop` waits for. */
  track: (work: Promise<unknown>) => void;
  /** A job just ended: the store drops finished jobs past its limits and writes the index. */
  ended: () => void;
}

type LaneName = "compile" | "upload";

interface Lane {
  readonly name: LaneName;
  readonly concurrency: number;
  readonly active: Set<string>;
  readonly waiting: string[];
}

function laneFor(phase: JobPhase): LaneName {
  return phase === "upload" ? "upload" : "compile";
}

export class JobDispatcher {
  readonly #deps: DispatcherDeps;
  readonly #lanes: Record<LaneName, Lane>;
  /** Compiles running on build servers: they take no local compile slot. */
  readonly #remoteLane: Lane = { name: "compile", concurrency: Infinity, active: new Set(), waiting: [] };
  readonly #remotePins = new Map<string, string>();
  #router: JobRouter | undefined;
  #gate: JobGate | undefined;
  #started = false;
  #stopping = false;
  #lastStatus = "";

  constructor(deps: DispatcherDeps) {
    this.#deps = deps;
    this.#router = deps.router;
    this.#lanes = {
      compile: { name: "compile", concurrency: deps.compileConcurrency, active: new Set(), waiting: [] },
      upload: { name: "upload", concurrency: deps.uploadConcurrency, active: new Set(), waiting: [] },
    };
  }

  /** From now on `pump` dispatches (the store has restored its jobs). */
  start(): void {
    this.#started = true;
  }

  /** Nothing more is dispatched, and a lost build server no longer re-routes a compile. */
  stop(): void {
    this.#stopping = true;
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  /** Sets the router (remote builds start after the queue). */
  setRouter(router: JobRouter): void {
    this.#router = router;
  }

  /** Sets the gate that holds uploads for offline devices. */
  setGate(gate: JobGate): void {
    this.#gate = gate;
  }

  status(): QueueStatus {
    const lane = this.#lanes.compile;
    // A job waiting for a build server does not keep this machine's compile lane busy
    // (a build server that is also an offloader with `local_builds: never` stays usable).
    const forThisLane = lane.waiting.filter((id) => this.#deps.jobs.get(id)?.job.waiting === undefined).length;
    return {
      idle: lane.active.size === 0 && forThisLane === 0,
      running: lane.active.size,
      queue_depth: lane.waiting.length,
    };
  }

  /** Puts the job in the lane of its current phase (at the back, or the front). */
  place(entry: QueueEntry, opts: { front?: boolean } = {}): void {
    const phase = phasesOf(entry.job.job_type)[entry.phaseIndex];
    if (phase === undefined) return;
    const waiting = this.#lanes[laneFor(phase)].waiting;
    if (opts.front === true) waiting.unshift(entry.job.job_id);
    else waiting.push(entry.job.job_id);
    this.#statusMaybeChanged();
  }

  /** Takes a job that is not running out of the lane it waits in. */
  unplace(jobId: string): void {
    for (const lane of Object.values(this.#lanes)) {
      const i = lane.waiting.indexOf(jobId);
      if (i !== -1) lane.waiting.splice(i, 1);
    }
  }

  /**
   * Fails a job that is held (`waiting`) and not running, with `error`; for
   * a wait that expired. Returns false (and changes nothing) for any other job.
   */
  failWaiting(jobId: string, error: string): boolean {
    const entry = this.#deps.jobs.get(jobId);
    if (entry === undefined || entry.abort !== null || isTerminal(entry.job.status) || entry.job.waiting === undefined) return false;
    this.unplace(jobId);
    this.finish(entry, "failed", { error });
    this.pump();
    return true;
  }

  /**
   * The job starts (`on`) or stops waiting for `kind`; clients hear it
   * (`job_updated`). Stopping clears only that kind's wait: another belongs to
   * whoever set it.
   */
  #waiting(entry: QueueEntry, kind: JobWaitReason, on: boolean): void {
    if (!on && entry.job.waiting?.reason !== kind) return;
    if (!setWaiting(entry.job, on ? kind : null, this.#deps.now())) return;
    if (on && kind === "device") this.#ingest(entry, `*** waiting for ${entry.job.configuration}'s device to come online before uploading ***\n`);
    this.#deps.persist();
    this.#statusMaybeChanged();
    this.#deps.bus.emit("job_updated", { job: wireJob(entry) });
  }

  /** Starts whatever the lanes have room for. */
  pump(): void {
    if (!this.#started || this.#stopping) return;
    this.#dispatchCompiles();
    const upload = this.#lanes.upload;
    for (const id of [...upload.waiting]) {
      if (upload.active.size >= upload.concurrency || !this.#deps.localReady()) break;
      const entry = this.#deps.jobs.get(id);
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
      this.#deps.track(this.#execute(entry, upload));
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
    const { bus } = this.#deps;
    for (const id of [...lane.waiting]) {
      const entry = this.#deps.jobs.get(id);
      if (entry === undefined || isTerminal(entry.job.status)) {
        lane.waiting.splice(lane.waiting.indexOf(id), 1);
        continue;
      }
      // No ESPHome here yet: a local compile cannot run, nor can a remote one be bundled.
      if (!this.#deps.localReady()) continue;
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
        // A compile a build server gave back says first why it came back.
        const error = entry.fellBackFrom === null ? decision.error : `${entry.fellBackFrom}; ${decision.error}`;
        this.finish(entry, "failed", { error });
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
        if (entry.job.status === "running") bus.emit("job_updated", { job: wireJob(entry) });
        this.#deps.track(this.#execute(entry, this.#remoteLane));
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
      if (entry.job.status === "running" && entry.remoteLosses > 0) bus.emit("job_updated", { job: wireJob(entry) });
      lane.active.add(id);
      this.#deps.track(this.#execute(entry, lane));
    }
  }

  async #execute(entry: QueueEntry, lane: Lane): Promise<void> {
    const { job } = entry;
    const { bus, processes } = this.#deps;
    const phase = phasesOf(job.job_type)[entry.phaseIndex] ?? "compile";
    const abort = new AbortController();
    entry.abort = abort;
    if (job.status === "queued") {
      markStarted(job, this.#deps.now());
      entry.log ??= this.#deps.logWriter(job.job_id, entry.history ??= new OutputHistory());
      this.#deps.persist();
      bus.emit("job_started", { job: wireJob(entry) });
    }
    if (job.phase !== phase) enterPhase(job, phase);
    entry.progress.reset();
    let result: PhaseResult;
    try {
      result = await this.#deps.runner.runPhase({
        job,
        phase,
        signal: abort.signal,
        onLine: (line) => {
          this.#ingest(entry, line);
        },
        onProcess: (pid) => {
          this.#deps.track(pid === null ? processes.remove(job.job_id) : processes.add(job.job_id, pid));
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
      this.finish(entry, "cancelled", { error: entry.cancelReason, exitCode: result.exitCode });
    } else if (result.fallbackLocal !== undefined && job.source === "remote" && phase === "compile") {
      fallBackToLocal(job);
      entry.fellBackFrom = result.error;
      this.#ingest(entry, `*** ${result.fallbackLocal} ***\n`);
      this.place(entry, { front: true });
      this.#deps.persist();
    } else if (result.error !== null) {
      this.finish(entry, "failed", { error: result.error, exitCode: result.exitCode, ...(result.failureReason === undefined ? {} : { failureReason: result.failureReason }) });
    } else if (entry.phaseIndex + 1 < phasesOf(job.job_type).length) {
      entry.phaseIndex += 1;
      job.exit_code = result.exitCode ?? 0;
      // The next phase starts from 0, even while it waits for its lane.
      enterPhase(job, phasesOf(job.job_type)[entry.phaseIndex] ?? phase);
      bus.emit("job_progress", { job_id: job.job_id, progress: 0 });
      this.place(entry);
      this.#deps.persist();
    } else {
      this.finish(entry, "completed", { exitCode: result.exitCode ?? 0 });
    }
    this.pump();
  }

  /**
   * The build server compiling this job was lost mid-build: the compile goes
   * back to the front of the compile lane and is dispatched again (another
   * build server, the same one once it is back, or here), still one running
   * job. The router decides when losses are too many.
   */
  #reroute(entry: QueueEntry): void {
    const { job } = entry;
    entry.remoteLosses += 1;
    const label = job.source_label || job.source_pin_sha256.slice(0, 8);
    this.#ingest(entry, `*** build server ${label} was lost mid-build (${entry.remoteLosses}x); dispatching the compile again ***\n`);
    job.source = "local";
    job.source_pin_sha256 = "";
    job.source_label = "";
    enterPhase(job, "compile");
    entry.progress.reset();
    this.#deps.bus.emit("job_progress", { job_id: job.job_id, progress: 0 });
    this.#lanes.compile.waiting.unshift(job.job_id);
    this.#deps.persist();
    this.#deps.bus.emit("job_updated", { job: wireJob(entry) });
  }

  #ingest(entry: QueueEntry, line: string): void {
    const { job } = entry;
    if (isTerminal(job.status)) return;
    const history = entry.history ?? (entry.history = new OutputHistory());
    const trims = history.trims;
    history.append(line);
    entry.log ??= this.#deps.logWriter(job.job_id, history);
    if (history.trims !== trims) entry.log.replace();
    else entry.log.append(line);
    this.#deps.bus.emit("job_output", { job_id: job.job_id, line });
    const progress = entry.progress.feed(line);
    if (progress !== null) {
      job.progress = progress;
      this.#deps.bus.emit("job_progress", { job_id: job.job_id, progress });
    }
  }

  /**
   * Ends the job (once: a terminal job is left as it is) and fires its one
   * terminal event, after its output is bounded and on its way to the log file.
   */
  finish(entry: QueueEntry, status: TerminalStatus, detail: { exitCode?: number | null; error?: string | null; failureReason?: string }): void {
    const { job } = entry;
    if (isTerminal(job.status)) return;
    markTerminal(job, status, this.#deps.now(), detail);
    const history = entry.history;
    if (history !== null && history.length > 0) {
      history.trim(OUTPUT_LINES_RETAINED);
      entry.log ??= this.#deps.logWriter(job.job_id, history);
      entry.log.replace();
    }
    const writer = entry.log;
    if (writer !== null) {
      // Memory holds the output until the log file has it, so a reader never finds neither.
      // A log that could not be written (disk full) leaves the output in memory, where readers find it.
      this.#deps.track(
        writer.flush().then((written) => {
          if (written) entry.history = null;
        }),
      );
    } else {
      entry.history = null;
    }
    entry.log = null;
    this.#deps.ended();
    this.#statusMaybeChanged();
    this.#deps.bus.emit(`job_${status}`, { job: wireJob(entry) });
  }

  #statusMaybeChanged(): void {
    const status = this.status();
    const key = `${status.idle}/${status.running}/${status.queue_depth}`;
    if (key === this.#lastStatus) return;
    this.#lastStatus = key;
    this.#deps.bus.emit("queue_status_changed", status);
  }
}
