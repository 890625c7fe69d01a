/**
 * Wire shapes of the builder's panel API (docs/API.md). The panel keeps its
 * own copy: it is bundled for the browser and never imports backend code.
 */

export type JobType = "compile" | "upload" | "install" | "clean";
export type JobStatus = "queued" | "running" | "completed" | "failed" | "cancelled";
export type TerminalStatus = "completed" | "failed" | "cancelled";
export type JobPhase = "compile" | "upload" | "clean";
export type JobSource = "local" | "remote";

export interface FirmwareJob {
  job_id: string;
  configuration: string;
  job_type: JobType;
  status: JobStatus;
  phase: JobPhase | null;
  port: string;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  exit_code: number | null;
  error: string | null;
  progress: number | null;
  output: string[];
  source: JobSource;
  source_pin_sha256: string;
  source_label: string;
  remote_peer: string;
  remote_job_id: string;
  remote_peer_label: string;
  force_local: boolean;
}

export interface Device {
  name: string;
  friendly_name: string;
  configuration: string;
  path: string;
  platform: string | null;
  board: string | null;
  address: string;
  comment: string | null;
  web_port: number | null;
  loaded_integrations: string[];
  error: string | null;
}

export interface QueueStatus {
  idle: boolean;
  running: number;
  queue_depth: number;
}

export interface ServerInfo {
  server_version: string;
  esphome_version: string | null;
  config_dir: string;
  label: string;
}

export interface SerialPort {
  port: string;
  desc: string;
  vid: number | null;
  pid: number | null;
  hint: "esp" | "bridge" | null;
}

export interface FirmwareBinary {
  file: string;
  title: string;
  download_name: string;
  size: number;
}

export interface DownloadToken {
  token: string;
  expires_in: number;
  filename: string;
  /** Relative to the panel's page: `api/firmware/download?token=…`. */
  url: string;
}

export interface InitialState {
  jobs: FirmwareJob[];
  devices: Device[];
  queue_status: QueueStatus;
  server: ServerInfo;
  problems: string[];
}

/** Events of a `subscribe_events` stream, after its `initial_state`. */
export interface SubscribedEventMap {
  job_queued: { job: FirmwareJob };
  job_started: { job: FirmwareJob };
  job_completed: { job: FirmwareJob };
  job_failed: { job: FirmwareJob };
  job_cancelled: { job: FirmwareJob };
  job_output: { job_id: string; line: string };
  job_progress: { job_id: string; progress: number };
  job_removed: { job_id: string };
  queue_status_changed: QueueStatus;
  device_updated: { device: Device };
  device_removed: { configuration: string };
}

export type SubscribedEvent = {
  [K in keyof SubscribedEventMap]: { event: K; data: SubscribedEventMap[K] };
}[keyof SubscribedEventMap];

/** Events of a `firmware/follow_job` stream. */
export interface FollowJobEventMap {
  output: { line: string };
  progress: { progress: number };
  result: { status: TerminalStatus; exit_code: number | null; error: string | null };
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
      return ["clean"];
  }
}
