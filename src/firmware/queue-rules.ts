/**
 * The queue's rules about jobs, as pure functions over plain jobs: which jobs
 * supersede each other, which compiles the router places, and which finished
 * jobs the history keeps.
 */
import { isTerminal, type JobPhase, type StoredJob } from "./job.ts";

/** Jobs that supersede each other: one device's, or the same build environment's clean_all. */
export function sameTarget(a: Readonly<StoredJob>, b: Readonly<StoredJob>): boolean {
  if (a.configuration !== b.configuration) return false;
  const wipe = (j: Readonly<StoredJob>): boolean => j.job_type === "clean_all";
  if (wipe(a) !== wipe(b)) return false;
  return !wipe(a) || (a.source_pin_sha256 === b.source_pin_sha256 && a.remote_peer === b.remote_peer);
}

/** A compile of this builder's own: the router places it (here, on a build server, or not yet). */
export function isPlaceable(job: Readonly<StoredJob>, phase: JobPhase | undefined): boolean {
  return (job.job_type === "compile" || job.job_type === "install") && phase === "compile" && job.remote_peer === "";
}

/** Whether a compile of this job may go to a build server at all. */
export function isOffloadable(job: Readonly<StoredJob>, phase: JobPhase | undefined): boolean {
  return isPlaceable(job, phase) && !job.force_local;
}

export interface HistoryLimits {
  /** Finished compile/upload/install jobs kept (newest per configuration and type). */
  historyLimit: number;
  /** Finished cleans (of a device, or all) kept. */
  auxHistoryLimit: number;
}

/** The finished jobs to drop: all but the newest per configuration and type, within the limits. */
export function finishedToPrune<J extends Readonly<StoredJob>>(jobs: Iterable<J>, limits: HistoryLimits): J[] {
  const finished = [...jobs].filter((j) => isTerminal(j.status)).sort((a, b) => b.created_at.localeCompare(a.created_at));
  const seen = new Set<string>();
  let primary = 0;
  let aux = 0;
  const drop: J[] = [];
  for (const job of finished) {
    const key = `${job.configuration}\u0000${job.job_type}`;
    const isAux = job.job_type === "clean" || job.job_type === "clean_all";
    let keep = !seen.has(key);
    seen.add(key);
    if (keep && isAux) keep = ++aux <= limits.auxHistoryLimit;
    if (keep && !isAux) keep = ++primary <= limits.historyLimit;
    if (!keep) drop.push(job);
  }
  return drop;
}
