/**
 * The job model every part shares: types, statuses, sources, phases, waiting,
 * and the two queue-status shapes. The ground floor: imports nothing
 * (src/domain/ only imports src/domain/).
 */

/**
 * `clean_all`: wipes a whole build environment (this builder's build folders,
 * or on a build server, the folders of the offloader that asked), never one
 * device's: its `configuration` is "" here and the peer's pin on a build server.
 */
export const JOB_TYPES = ["compile", "upload", "install", "clean", "clean_all"] as const;
export type JobType = (typeof JOB_TYPES)[number];

export const JOB_STATUSES = ["queued", "running", "completed", "failed", "cancelled"] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export type TerminalStatus = "completed" | "failed" | "cancelled";

/** Who compiles: this machine, or a paired build server. */
export const JOB_SOURCES = ["local", "remote"] as const;
export type JobSource = (typeof JOB_SOURCES)[number];

/**
 * What a job waits for besides a free slot (the panel shows it): `build_server`
 * (a queued compile, `local_builds`, a re-route), `device` (an install whose
 * compile is done holds its upload until the device is online).
 */
export const JOB_WAIT_REASONS = ["build_server", "device"] as const;
export type JobWaitReason = (typeof JOB_WAIT_REASONS)[number];

export interface JobWaiting {
  reason: JobWaitReason;
  /** Since when, ISO 8601. */
  since: string;
}

/** The step an install (or any job) is in: installs compile, then upload. */
export type JobPhase = "compile" | "upload" | "clean";

/** A job as clients see it (the disk schema is `firmwareJobSchema` in src/firmware/job.ts, held to this by a test). */
export interface FirmwareJob {
  job_id: string;
  configuration: string;
  job_type: JobType;
  status: JobStatus;
  port: string;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  exit_code: number | null;
  error: string | null;
  progress: number | null;
  phase: JobPhase | null;
  source: JobSource;
  source_pin_sha256: string;
  source_label: string;
  remote_peer: string;
  remote_job_id: string;
  remote_peer_label: string;
  force_local: boolean;
  /** Set while the job waits for something other than a free slot: a build server (`local_builds`, a re-route). */
  waiting?: JobWaiting;
  /** A build server's job for a peer: the ESPHome version it compiles with when not this builder's own ("" = its own). */
  target_esphome_version: string;
  /** Why a failed job failed, when that is not the build itself: "provision" (the ESPHome version could not be installed); else "". */
  failure_reason: string;
  /** Its output lines (the retained tail). */
  output: string[];
}

export function isTerminal(status: JobStatus): status is TerminalStatus {
  return status === "completed" || status === "failed" || status === "cancelled";
}

/** The phases a job runs through, in order. */
export function phasesOf(jobType: JobType): readonly JobPhase[] {
  switch (jobType) {
    case "compile":
      return ["compile"];
    case "upload":
      return ["upload"];
    case "install":
      return ["compile", "upload"];
    case "clean":
    case "clean_all":
      return ["clean"];
  }
}

export interface QueueStatus {
  /** True when the compile lane runs nothing and nothing waits for it (a job waiting for a build server does not). */
  idle: boolean;
  running: number;
  queue_depth: number;
}

/** A build server's queue as it reports it over the peer link (`running` is a boolean there). */
export interface PeerQueueStatus {
  idle: boolean;
  /** A compile is executing there. */
  running: boolean;
  queue_depth: number;
}
