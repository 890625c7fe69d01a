/**
 * What the queue asks of whoever runs a job's phase. The queue owns the job's
 * state and events; a runner only does the work and reports how it ended.
 */
import type { JobPhase, StoredJob } from "./job.ts";

export interface PhaseContext {
  readonly job: Readonly<StoredJob>;
  readonly phase: JobPhase;
  /** Aborted when the job is cancelled; the runner stops its work promptly. */
  readonly signal: AbortSignal;
  /** One output chunk with its terminator; the queue stores it and fires `job_output`/`job_progress`. */
  readonly onLine: (line: string) => void;
  /** A runner reports the process group it started (and null when it ended), so a restart can reap it. */
  readonly onProcess?: (pid: number | null) => void;
}

export interface PhaseResult {
  /** The process's exit code, when there was a process. */
  readonly exitCode: number | null;
  /** Null when the phase succeeded; else a message for the job's `error`. */
  readonly error: string | null;
  /**
   * The build server compiling it was lost mid-build (its session closed):
   * the queue dispatches the compile again instead of failing the job.
   */
  readonly buildServerLost?: boolean;
  /** With an error: why, when it is not the build itself ("provision": the ESPHome version could not be installed). */
  readonly failureReason?: string;
  /**
   * A remote compile the build server could not do with the ESPHome version
   * asked for (it said `failure_reason: "provision"`): the queue runs the
   * compile on this machine instead, and this note says why in the job's output.
   */
  readonly fallbackLocal?: string;
}

export interface JobRunner {
  runPhase(ctx: PhaseContext): Promise<PhaseResult>;
}
