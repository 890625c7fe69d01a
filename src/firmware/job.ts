/**
 * The FirmwareJob: its wire and disk shape, and the named transitions that
 * change it. The queue owns the jobs; this module carries no I/O.
 */
import { randomBytes } from "node:crypto";
import { z } from "zod";
import { validateConfigurationName } from "../esphome/configuration.ts";
import { validatePort } from "../esphome/port.ts";
import { errorMessage, invalidArgs } from "../errors.ts";
import { bundleDirFor } from "../remote-build/archives/bundle.ts";
import { isPin } from "../remote-build/transport/pin.ts";
import { isPinnable } from "../esphome/version-policy.ts";

import { JOB_SOURCES, JOB_STATUSES, JOB_TYPES, JOB_WAIT_REASONS, type FirmwareJob, type JobPhase, type JobSource, type JobType, type JobWaitReason, type TerminalStatus } from "../domain/job.ts";

export { JOB_SOURCES, JOB_STATUSES, JOB_TYPES, JOB_WAIT_REASONS, isTerminal, phasesOf } from "../domain/job.ts";
export type { FirmwareJob, JobPhase, JobSource, JobStatus, JobType, JobWaitReason, JobWaiting, TerminalStatus } from "../domain/job.ts";

export const RESTART_MARKER =
  "*** builder restarted mid-build; the previous run's log is above, the rebuild begins below ***\n";

/**
 * Disk and wire schema. Every field has a default so files written by older
 * versions load; an unknown `source` (or status, or type) is rejected rather
 * than guessed.
 */
export const firmwareJobSchema = z.object({
  job_id: z.string().regex(/^[0-9a-f]{12}$/),
  // Empty only for a `clean_all` of this builder's own build environment (checked below).
  configuration: z.string().max(255),
  job_type: z.enum(JOB_TYPES),
  status: z.enum(JOB_STATUSES).default("queued"),
  port: z.string().max(255).default(""),
  created_at: z.string().default(() => new Date(0).toISOString()),
  started_at: z.string().nullable().default(null),
  completed_at: z.string().nullable().default(null),
  exit_code: z.number().int().nullable().default(null),
  error: z.string().nullable().default(null),
  progress: z.number().int().min(0).max(100).nullable().default(null),
  phase: z.enum(["compile", "upload", "clean"]).nullable().default(null),
  source: z.enum(JOB_SOURCES).default("local"),
  source_pin_sha256: z.string().max(64).default(""),
  source_label: z.string().max(256).default(""),
  remote_peer: z.string().max(64).default(""),
  remote_job_id: z.string().max(64).default(""),
  remote_peer_label: z.string().max(256).default(""),
  force_local: z.boolean().default(false),
  waiting: z.object({ reason: z.enum(JOB_WAIT_REASONS), since: z.string().max(64) }).exactOptional(),
  // Goes to `pip install esphome==<it>`: only a version PyPI can serve by its exact name.
  target_esphome_version: z
    .string()
    .max(64)
    .refine((v) => v === "" || isPinnable(v), "not an installable ESPHome version")
    .default(""),
  failure_reason: z.string().max(32).default(""),
});

/**
 * The job as stored in the index (output lives in the job's log file): the
 * wire job without its output. test/api/wire-types.test.ts holds the schema
 * to it.
 */
export type StoredJob = Omit<FirmwareJob, "output">;

export function newJobId(): string {
  return randomBytes(6).toString("hex");
}

export interface NewJobInput {
  configuration: string;
  job_type: JobType;
  port?: string;
  source?: JobSource;
  source_pin_sha256?: string;
  source_label?: string;
  remote_peer?: string;
  remote_job_id?: string;
  remote_peer_label?: string;
  force_local?: boolean;
  target_esphome_version?: string;
}

export function createJob(input: NewJobInput, now: Date, jobId: string = newJobId()): StoredJob {
  return {
    job_id: jobId,
    configuration: input.configuration,
    job_type: input.job_type,
    status: "queued",
    port: input.port ?? "",
    created_at: now.toISOString(),
    started_at: null,
    completed_at: null,
    exit_code: null,
    error: null,
    progress: null,
    phase: null,
    source: input.source ?? "local",
    source_pin_sha256: input.source_pin_sha256 ?? "",
    source_label: input.source_label ?? "",
    remote_peer: input.remote_peer ?? "",
    remote_job_id: input.remote_job_id ?? "",
    remote_peer_label: input.remote_peer_label ?? "",
    force_local: input.force_local ?? false,
    target_esphome_version: input.target_esphome_version ?? "",
    failure_reason: "",
  };
}

/**
 * Parses one stored job; throws a ZodError naming the bad field. The index is
 * not trusted more than a client: the configuration must pass the API's file
 * name rule (a peer's job: `<pin>/<device>/<file>` as the build server lays
 * bundles out) and the port the API's port rule, else `invalid_args`.
 */
export function parseStoredJob(raw: unknown): StoredJob {
  const job = firmwareJobSchema.parse(raw);
  checkStoredConfiguration(job);
  if (job.port !== "") validatePort(job.port);
  return job;
}

function checkStoredConfiguration(job: Pick<StoredJob, "configuration" | "remote_peer" | "job_type">): void {
  if (job.job_type === "clean_all") {
    checkCleanAllScope(job);
    return;
  }
  if (job.remote_peer === "") {
    validateConfigurationName(job.configuration);
    return;
  }
  const parts = job.configuration.split("/");
  const [folder, stem, file] = parts;
  const bad = (why: string) => invalidArgs(`invalid configuration ${JSON.stringify(job.configuration)} of a build server job: ${why}`);
  if (parts.length !== 3 || folder === undefined || stem === undefined || file === undefined) {
    throw bad("must be <peer>/<device>/<file>");
  }
  if (folder !== job.remote_peer) throw bad("its folder is not the peer's");
  try {
    bundleDirFor("/", job.remote_peer, stem);
  } catch (err) {
    throw bad(errorMessage(err));
  }
  validateConfigurationName(file);
}

/**
 * A `clean_all` names no device: "" for this builder's build environment, the
 * peer's pin (its folder under `.remote_builds`) for a build server's.
 */
export function checkCleanAllScope(job: Pick<StoredJob, "configuration" | "remote_peer">): void {
  if (job.configuration !== job.remote_peer || (job.remote_peer !== "" && !isPin(job.remote_peer))) {
    throw invalidArgs(`invalid clean_all scope ${JSON.stringify(job.configuration)}: "" for this builder, or the peer's pin`);
  }
}

/** Sets (or with null clears) what a job waits for; false when nothing changed. */
export function setWaiting(job: StoredJob, reason: JobWaitReason | null, now: Date): boolean {
  if (reason === null) {
    if (job.waiting === undefined) return false;
    delete job.waiting;
    return true;
  }
  if (job.waiting?.reason === reason) return false;
  job.waiting = { reason, since: now.toISOString() };
  return true;
}

export function markStarted(job: StoredJob, now: Date): void {
  job.status = "running";
  job.started_at ??= now.toISOString();
  job.progress = 0;
}

export function enterPhase(job: StoredJob, phase: JobPhase): void {
  job.phase = phase;
  job.progress = 0;
}

export function markTerminal(
  job: StoredJob,
  status: TerminalStatus,
  now: Date,
  detail: { exitCode?: number | null; error?: string | null; failureReason?: string } = {},
): void {
  job.status = status;
  job.failure_reason = status === "failed" ? (detail.failureReason ?? "") : "";
  job.completed_at = now.toISOString();
  delete job.waiting;
  if (detail.exitCode !== undefined) job.exit_code = detail.exitCode;
  job.error = detail.error ?? (status === "completed" ? null : job.error);
  if (status === "completed") job.progress = 100;
}

/**
 * Crash recovery: a job that was running when the process died goes back to
 * the queue. Per-run fields are cleared; identity and all five dispatch-origin
 * fields are kept (a REMOTE job must still know its build server).
 */
export function resetForRestart(job: StoredJob): void {
  job.status = "queued";
  job.started_at = null;
  job.completed_at = null;
  job.exit_code = null;
  job.error = null;
  job.progress = null;
  job.phase = null;
  job.failure_reason = "";
  delete job.waiting;
}

/**
 * A compile that was to run on a build server runs here instead (the build
 * server could not provide the ESPHome version it asked for): the job stays
 * on this machine for the rest of its life.
 */
export function fallBackToLocal(job: StoredJob): void {
  job.source = "local";
  job.source_pin_sha256 = "";
  job.source_label = "";
  job.force_local = true;
  job.progress = 0;
}
