/**
 * What the install dialog and the jobs view show for a job, as pure
 * functions of the job (so the rules are tested without a browser).
 */
import { isTerminal, phasesOf, type FirmwareJob, type JobPhase, type JobType } from "./types.ts";

export interface ProgressView {
  /** The phase the bar describes (null before a job starts). */
  phase: JobPhase | null;
  /** 1-based step and the number of steps (an install has two). */
  step: number;
  steps: number;
  /** 0-100 for the current phase. */
  value: number;
  /** No figure to show yet: the bar animates instead. */
  indeterminate: boolean;
}

export function progressView(job: FirmwareJob): ProgressView {
  const phases = phasesOf(job.job_type);
  const phase = job.phase ?? (job.status === "queued" ? null : (phases[0] ?? null));
  const index = phase === null ? 0 : Math.max(0, phases.indexOf(phase));
  const value = Math.min(100, Math.max(0, job.progress ?? 0));
  if (isTerminal(job.status)) {
    return {
      phase,
      step: index + 1,
      steps: phases.length,
      value: job.status === "completed" ? 100 : value,
      indeterminate: false,
    };
  }
  return {
    phase,
    step: index + 1,
    steps: phases.length,
    value,
    indeterminate: job.status === "queued" || value === 0,
  };
}

/** The "Building on {label}" line: only while a remote job is active. */
export function remoteBuildLabel(job: FirmwareJob): string | null {
  if (job.source !== "remote" || isTerminal(job.status)) return null;
  return job.source_label !== "" ? job.source_label : job.source_pin_sha256.slice(0, 12);
}

/** "Build locally instead" makes sense for a remote job that still compiles or waits. */
export function canBuildLocally(job: FirmwareJob): boolean {
  if (remoteBuildLabel(job) === null) return false;
  if (job.job_type !== "install" && job.job_type !== "compile") return false;
  return job.phase !== "upload";
}

/** The arguments that re-issue a job on this machine (same configuration and port). */
export function localRetryArgs(job: FirmwareJob): { configuration: string; port?: string; forceLocal: true } {
  return { configuration: job.configuration, ...(job.port === "" ? {} : { port: job.port }), forceLocal: true };
}

/** What a job is about: its device, or for a clean_all, all devices here or this builder's files on a build server. */
export function jobSubject(job: FirmwareJob, device: string, localize: (key: "jobs.all_devices" | "jobs.build_server_env", args?: { label: string }) => string): string {
  if (job.job_type !== "clean_all") return device;
  if (job.source === "remote") return localize("jobs.build_server_env", { label: job.source_label || job.source_pin_sha256.slice(0, 12) });
  return localize("jobs.all_devices");
}

/** The badge for a job this builder compiles for another one. */
export function remotePeerLabel(job: FirmwareJob): string | null {
  return job.remote_peer_label !== "" ? job.remote_peer_label : null;
}

export type ResultKind = "success" | "failed" | "cancelled";

export function resultKind(job: FirmwareJob): ResultKind | null {
  switch (job.status) {
    case "completed":
      return "success";
    case "failed":
      return "failed";
    case "cancelled":
      return "cancelled";
    case "queued":
    case "running":
      return null;
  }
}

/** The dialog's purpose decides its title and result text. */
export type DialogPurpose = JobType | "download";
