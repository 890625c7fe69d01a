/**
 * Wire shapes of the builder's panel API (docs/API.md). The panel keeps its
 * own copy: it is bundled for the browser and never imports backend code.
 * test/api/wire-types.test.ts holds this copy to the backend's types at
 * compile time, so the two cannot drift apart.
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

// ---- remote builds ----

/** This builder's peer-link identity (`remote_build/get_identity`). */
export interface RemoteIdentity {
  dashboard_id: string;
  /** Lowercase hex SHA-256 of the X25519 public key. */
  pin_sha256: string;
  fingerprint_emoji: string[];
  /** "ab cd ef …" */
  fingerprint_hex: string;
  label: string;
  esphome_version: string | null;
  /** The peer-link listener's port, or null while the build server is off. */
  listener_port: number | null;
}

/** A builder that asked to (or may) compile here. */
export interface ReceiverPeer {
  dashboard_id: string;
  pin_sha256: string;
  label: string;
  status: "pending" | "approved";
  peer_ip: string;
  connected: boolean;
}

export interface ReceiverSettings {
  enabled: boolean;
  pairing_window_open: boolean;
  expires_in_seconds: number | null;
  peers: ReceiverPeer[];
}

export interface PairingWindow {
  open: boolean;
  expires_in_seconds: number | null;
}

/** A build server this builder is paired with (or waiting for). */
export interface Pairing {
  pin_sha256: string;
  label: string;
  receiver_hostname: string;
  receiver_port: number;
  status: "pending" | "approved";
  enabled: boolean;
  connected: boolean;
  /** From the build server's last queue status; null before one arrived. */
  idle: boolean | null;
  last_connect_error: string;
  esphome_version: string;
  fingerprint_emoji: string[];
}

export interface OffloaderSettings {
  remote_builds_enabled: boolean;
  pairings: Pairing[];
}

export type OffloaderAlertKind = "pin_mismatch" | "peer_revoked";

export interface OffloaderAlert {
  pin_sha256: string;
  kind: OffloaderAlertKind;
  label: string;
  receiver_hostname: string;
  receiver_port: number;
  observed_pin: string | null;
  message: string;
}

/** A builder seen on the LAN over mDNS: a proposal, not a trusted peer. */
export interface DiscoveredHost {
  name: string;
  hostname: string;
  /** Its HTTP port. */
  port: number;
  addresses: string[];
  server_version: string;
  esphome_version: string;
  friendly_name: string;
  pin_sha256: string | null;
  /** Its peer-link port (where pairing happens), null when its build server is off. */
  remote_build_port: number | null;
}

export interface RemoteBuildSnapshot {
  identity: RemoteIdentity;
  receiver: ReceiverSettings;
  offloader: OffloaderSettings;
  alerts: OffloaderAlert[];
  hosts: DiscoveredHost[];
}

/** `remote_build/preview_pair`: who answers at an address; changes nothing. */
export interface PairPreview {
  pin_sha256: string;
  fingerprint_emoji: string[];
  label: string;
  esphome_version: string;
}

export interface InitialState {
  jobs: FirmwareJob[];
  devices: Device[];
  queue_status: QueueStatus;
  server: ServerInfo;
  problems: string[];
  /** Left out by builders without remote builds. */
  remote_build?: RemoteBuildSnapshot;
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
  remote_build_receiver_changed: { enabled: boolean; peer_link_port: number | null };
  remote_build_pairing_window_changed: PairingWindow;
  remote_build_pair_request_received: { dashboard_id: string; pin_sha256: string; label: string; peer_ip: string };
  remote_build_pair_status_changed: { dashboard_id: string; status: "approved" | "removed" };
  remote_build_peer_session_changed: { dashboard_id: string; connected: boolean; reason: string };
  remote_build_identity_rotated: { dashboard_id: string; pin_sha256: string };
  remote_build_host_added: { host: DiscoveredHost };
  remote_build_host_removed: { name: string };
  offloader_peer_link_opened: { pin_sha256: string; receiver_hostname: string; receiver_port: number; esphome_version: string };
  offloader_peer_link_closed: { pin_sha256: string; receiver_hostname: string; receiver_port: number; reason: string; error_detail: string };
  offloader_queue_status_changed: { pin_sha256: string; idle: boolean; running: number; queue_depth: number };
  offloader_pairing_changed: { pairing: Pairing };
  offloader_pairing_removed: { pin_sha256: string; reason: string };
  offloader_alert: { alert: OffloaderAlert };
  offloader_settings_changed: { remote_builds_enabled: boolean };
}

export type SubscribedEvent = {
  [K in keyof SubscribedEventMap]: { event: K; data: SubscribedEventMap[K] };
}[keyof SubscribedEventMap];

/** The events about build servers (both roles). */
export type RemoteBuildEvent = Extract<SubscribedEvent, { event: `remote_build_${string}` | `offloader_${string}` }>;

/** Events of a `firmware/follow_job` stream. */
export interface FollowJobEventMap {
  output: { line: string };
  output_batch: { lines: string[] };
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
