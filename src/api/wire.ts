/**
 * The panel API's wire shapes: what `/ws` sends and the event map the bus
 * carries (`subscribe_events` forwards part of it). Plain types and a few
 * pure helpers, with no imports, so the browser panel shares this very file
 * with the backend (type-only, plus the helpers) instead of keeping a copy.
 */

// ---- jobs ----

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

/**
 * Where this builder compiles its own jobs: `always` (when no build server is
 * idle), `fallback` (only when no build server is connected) or `never`.
 */
export const LOCAL_BUILDS = ["always", "fallback", "never"] as const;
export type LocalBuilds = (typeof LOCAL_BUILDS)[number];

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

// ---- devices, the server, this machine ----

export interface Device {
  /** `esphome: name` with substitutions resolved, else the file stem. */
  name: string;
  friendly_name: string;
  /** File name relative to the config dir (the device's key). */
  configuration: string;
  /** Absolute path of the YAML. */
  path: string;
  /** Lowercase platform key (esp32, esp8266, rp2040, bk72xx, rtl87xx, ln882x, host, nrf52, libretiny). */
  platform: string | null;
  board: string | null;
  /** Where OTA/logs connect: `use_address`, a static IP, else `<name>.local`. */
  address: string;
  comment: string | null;
  /** `web_server: port` (80 when omitted); null without a web server or when unreadable. */
  web_port: number | null;
  /** Sorted top-level component keys. */
  loaded_integrations: string[];
  /** Why the YAML could not be read; the device is still listed. */
  error: string | null;
}

/** Whether a device answers: `unknown` until its first probe ends. */
export type DeviceStatus = "unknown" | "online" | "offline";

/** Why a device needs an install: it runs an older ESPHome, or its YAML (or an include) changed since its firmware was built. */
export const UPDATE_REASONS = ["esphome_version", "configuration_changed"] as const;
export type UpdateReason = (typeof UPDATE_REASONS)[number];

/** The firmware a device runs, as it reported it (native API device info, or mDNS TXT for the version alone). */
export interface DeviceFirmware {
  esphome_version: string;
  /** ESPHome's compilation time string as the device reports it, null when only mDNS was heard. */
  compilation_time: string | null;
  project_name: string | null;
  project_version: string | null;
  /** Where this came from. */
  source: "api" | "mdns";
}

/** Where the builder looks for a device (`address`), and why there. */
export type AddressSource = "owner" | "yaml" | "host_default";

/** A configured device as it is now: online or not, what it runs, whether it needs an install. */
export interface DeviceState {
  configuration: string;
  /** Where probes, logs and installs go. */
  address: string;
  /** `owner`: set in the panel; `yaml`: use_address/static IP/`<name>.local`; `host_default`: a host-platform YAML without a network block (127.0.0.1). */
  address_source: AddressSource;
  status: DeviceStatus;
  /** When it last answered (kept across restarts), ISO 8601. */
  last_seen: string | null;
  /** When `status` last changed, ISO 8601. */
  status_since: string | null;
  firmware: DeviceFirmware | null;
  /** Empty when up to date (or unknown). */
  update_reasons: UpdateReason[];
  /** For people: why an update is available ("runs 2026.9.1, this builder has 2026.10.0"). */
  update_detail: string | null;
  /** The last probe's failure (refused, timed out, encryption key rejected), null after an answer. */
  probe_error: string | null;
  /** The YAML has `deep_sleep`: the device is offline most of the time; installs wait for it to wake. */
  deep_sleep: boolean;
}

/** `firmware/install_bulk`'s `filter`: which of the named devices get an install. */
export const BULK_FILTERS = ["all", "outdated", "online", "failed"] as const;
export type BulkFilter = (typeof BULK_FILTERS)[number];

export interface ServerInfo {
  server_version: string;
  esphome_version: string | null;
  config_dir: string;
  label: string;
}

export interface SerialPort {
  /** Path to pass as `--device` (`/dev/ttyUSB0`). */
  port: string;
  /** USB product string, else the port path. */
  desc: string;
  vid: number | null;
  pid: number | null;
  /** `esp`: Espressif native USB; `bridge`: a common USB-UART bridge chip; else null. */
  hint: "esp" | "bridge" | null;
}

export interface FirmwareBinary {
  /** The image's file name in the build folder (what a download token names). */
  file: string;
  title: string;
  /** The name a download gets: `<device>.factory.bin` and so on. */
  download_name: string;
  size: number;
}

// ---- remote builds ----

/**
 * How ESPHome versions decide where a build runs (upstream's names). On a
 * build server: what it does with a job for another version (`any`: builds
 * with its own; `release`: only for its own YYYY.MM; `exact`: installs the
 * sender's version; `exact_required`: the same, and refuses senders that do
 * not say). On the sending builder (`version_match_policy`): which build
 * servers its builds may go to.
 */
export const VERSION_POLICIES = ["any", "release", "exact", "exact_required"] as const;
export type VersionPolicy = (typeof VERSION_POLICIES)[number];

/** This builder's peer-link identity (`remote_build/get_identity`). */
export interface IdentityView {
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

/** Build server side: an offloader that asked to (or may) compile here. */
export interface PeerSummary {
  dashboard_id: string;
  pin_sha256: string;
  label: string;
  status: "pending" | "approved";
  peer_ip: string;
  connected: boolean;
}

export interface ReceiverSettings {
  enabled: boolean;
  /** What this build server does with a job for another ESPHome version. */
  version_policy: VersionPolicy;
  /** Whether it can install other ESPHome versions (off with --esphome, or without a Python for them). */
  auto_provision_supported: boolean;
  /** ccache on PATH: ESPHome wraps compiles with it. */
  ccache: boolean;
  pairing_window_open: boolean;
  expires_in_seconds: number | null;
  peers: PeerSummary[];
}

/** Offloader side: a build server this builder is paired with (or waiting for). */
export interface PairingSummary {
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
  /** It can install the ESPHome version a build asks for (its last intent response). */
  auto_provision_supported: boolean;
  /** Its version policy, when it is a builder of ours that says (null otherwise). */
  version_policy: VersionPolicy | null;
  fingerprint_emoji: string[];
  /** The connected build server takes `reset_build_env` (false while disconnected). */
  reset_build_env_supported: boolean;
}

export interface OffloaderSettings {
  remote_builds_enabled: boolean;
  /** Which build servers this builder's compiles may go to, by their ESPHome version. */
  version_match_policy: VersionPolicy;
  pairings: PairingSummary[];
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

export type RemoteBuildProblemKind = "receiver_file" | "receiver_peer" | "offloader_file" | "offloader_pairing" | "identity_file" | "key_file";

/**
 * A remote-build state file (settings, approved builders, pairings, identity,
 * key) that could not be read as it was at start-up, and what was done about
 * it. Shown in Build servers until dismissed.
 */
export interface RemoteBuildProblem {
  /** Stable key of the problem (e.g. `receiver_peer:2`), used to dismiss it. */
  id: string;
  kind: RemoteBuildProblemKind;
  /** The file it is about. */
  file: string;
  /** Where the unreadable original was kept, or null when nothing needed keeping. */
  kept_at: string | null;
  /** What happened, what it means now, and what to do (English). */
  message: string;
}

/** A builder seen on the LAN over mDNS: a proposal, not a trusted peer. */
export interface DiscoveredHost {
  /** mDNS instance name; the key of the host map (compared case-insensitively). */
  name: string;
  /** SRV target without the trailing dot, e.g. `esphome-builder-abcd1234.local`. */
  hostname: string;
  /** SRV port: the builder's HTTP port. */
  port: number;
  /** Usable unicast addresses (A/AAAA records, else the packet's source). */
  addresses: string[];
  server_version: string;
  esphome_version: string;
  friendly_name: string;
  /** 64 lowercase hex digits, else null. */
  pin_sha256: string | null;
  /** Its peer-link port (where pairing happens), null when its build server is off. */
  remote_build_port: number | null;
}

/** `remote_build/preview_pair`: who answers at an address; changes nothing. */
export interface PairPreview {
  pin_sha256: string;
  fingerprint_emoji: string[];
  label: string;
  esphome_version: string;
  /** A headless build server (`--remote-build-only`): pairing needs the key it printed (`request_pair`'s `pairing_key`). */
  requires_pairing_key: boolean;
}

/** What a panel needs to draw the build-server screens. */
export interface RemoteBuildSnapshot {
  identity: IdentityView;
  receiver: ReceiverSettings;
  offloader: OffloaderSettings;
  alerts: OffloaderAlert[];
  /** State files that could not be read at start-up (not yet dismissed). */
  problems: RemoteBuildProblem[];
  hosts: DiscoveredHost[];
  /** Where this builder compiles its own jobs. */
  local_builds: LocalBuilds;
}

// ---- managed ESPHome ----

/** Where provisioning an ESPHome environment is (src/esphome/pip-progress.ts says how the percentage is counted). */
export type EsphomeProvisionPhase = "python" | "venv" | "downloading" | "installing" | "checking" | "done";

/** The managed ESPHome's task: named transitions in src/esphome/managed-state.ts. */
export type EsphomeTaskState =
  | { status: "idle" }
  | { status: "provisioning"; version: string; percent: number; phase: EsphomeProvisionPhase }
  | { status: "ready"; version: string }
  | { status: "failed"; version: string | null; code: string; message: string };

/** One ESPHome environment (`<data-dir>/esphome/<version>`, or the add-on image's own). */
export interface EsphomeEnvironmentView {
  version: string;
  path: string;
  /** The add-on image's ESPHome: not removable. */
  bundled: boolean;
  python_version: string | null;
  created_at: string | null;
  last_used: string | null;
  /** A running job uses it. */
  in_use: boolean;
  /** The one the next job uses. */
  current: boolean;
  /** Disk use, null for the bundled one (part of the image). */
  bytes: number | null;
}

/** `esphome/status`, `initial_state.esphome`, `esphome_state_changed`. */
export interface EsphomeStatus {
  /** `managed`: the builder's own environments; `external`: `--esphome PATH`, nothing managed. */
  mode: "managed" | "external";
  /** The ESPHome the next job runs; null while none is ready. */
  current_version: string | null;
  /** The version chosen (the pinned one by default, or a user's choice). */
  selected_version: string | null;
  /** The version the project pins (addon/requirements.txt). */
  pinned_version: string | null;
  /** The newest release the package index offers (null until known, e.g. offline). */
  latest_version: string | null;
  state: EsphomeTaskState;
  environments: EsphomeEnvironmentView[];
  /** Bytes all managed environments take. */
  disk_bytes: number;
  /** Environments kept (a bundled one not counted). */
  limit: number;
}

/** `esphome/versions`: what the package index offers, newest first. */
export interface EsphomeVersionsView {
  index: string;
  /** The newest release (pre-releases only when asked for). */
  latest: string | null;
  versions: { version: string; prerelease: boolean; installed: boolean; current: boolean; requires_python: string | null }[];
}

// ---- builder problems ----

/**
 * Stable codes of builder problems: things the builder could not do or had to
 * work around, which a person should know about (docs/API.md lists them).
 */
export const PROBLEM_CODES = [
  /** A state file did not parse or validate; it was moved aside and the builder started without it. */
  "state_file_corrupt",
  /** A state file could not be read at all (a folder, no permission); moved aside, or ignored when that failed too. */
  "state_file_unreadable",
  /** Rows of a state file were refused (say a job whose configuration is not a plain file name) and skipped. */
  "state_rows_skipped",
  /** A write failed because the disk (or quota) is full; cleared by the next write that succeeds. */
  "disk_full",
  /** A write failed for another reason (read-only file system, permissions, I/O error); cleared likewise. */
  "storage_error",
] as const;
export type ProblemCode = (typeof PROBLEM_CODES)[number];

/** One current problem of the builder (`problems/list`, `initial_state.problems`). */
export interface BuilderProblem {
  /** `<code>:<subject>`: reporting the same code and subject again replaces the problem. */
  id: string;
  code: ProblemCode;
  /** What it is about: usually a file or folder path. */
  subject: string;
  /** For people: what happened, what the builder did, and what to do about it. */
  message: string;
  /** When it was (last) reported, ISO 8601. */
  at: string;
}

// ---- subscribe_events ----

export interface InitialState {
  jobs: FirmwareJob[];
  devices: Device[];
  queue_status: QueueStatus;
  server: ServerInfo;
  /** Current builder problems, oldest first. */
  problems: BuilderProblem[];
  remote_build: RemoteBuildSnapshot;
  /** The managed ESPHome (or the one `--esphome` names). */
  esphome: EsphomeStatus;
  /** Every configured device's live state (src/devices/). */
  device_states: DeviceState[];
}

/** The builder's events (the bus in src/events.ts); `SUBSCRIBED_EVENTS` go to panels. */
export interface EventMap {
  /** A job entered the queue (payload: the whole job). */
  job_queued: { job: FirmwareJob };
  /** A job began running (again, after a restart re-queue). */
  job_started: { job: FirmwareJob };
  /** Terminal: the job succeeded. Exactly one terminal event per job. */
  job_completed: { job: FirmwareJob };
  /** Terminal: the job failed; `job.error` says why. */
  job_failed: { job: FirmwareJob };
  /** Terminal: the job was cancelled (by a user, a supersede or a shutdown). */
  job_cancelled: { job: FirmwareJob };
  /** One output chunk, terminator included (`\n`, `\r` or `\r\n`). */
  job_output: { job_id: string; line: string };
  /** Progress 0-100 of the job's current phase. */
  job_progress: { job_id: string; progress: number };
  /** A queued or running job changed without a lifecycle step: what it waits for, or where it builds (re-routed). */
  job_updated: { job: FirmwareJob };
  /** A finished job left the history (pruned or cleared). */
  job_removed: { job_id: string };
  /** The compile lane changed: what a build server advertises to its peers. */
  queue_status_changed: QueueStatus;
  // ---- build server (receiver) ----
  /** The build-server switch changed; the listener is bound (port) or not (null). */
  remote_build_receiver_changed: { enabled: boolean; peer_link_port: number | null };
  /** The pairing window opened, was extended, or closed (expires_in_seconds null). */
  remote_build_pairing_window_changed: { open: boolean; expires_in_seconds: number | null };
  /** An offloader asks to pair; compare its fingerprint, then approve or remove. */
  remote_build_pair_request_received: { dashboard_id: string; pin_sha256: string; label: string; peer_ip: string };
  /** A peer was approved, or a pending/approved peer was removed. */
  remote_build_pair_status_changed: { dashboard_id: string; status: "approved" | "removed" };
  /** An approved offloader's session opened or closed. */
  remote_build_peer_session_changed: { dashboard_id: string; connected: boolean; reason: string };
  /** This builder's peer-link key was replaced; every peer must pair again. */
  remote_build_identity_rotated: { dashboard_id: string; pin_sha256: string };
  /** A remote-build problem (`RemoteBuildSnapshot.problems`) was dismissed. */
  remote_build_problem_dismissed: { id: string };
  /** mDNS found (or updated) another builder. */
  remote_build_host_added: { host: DiscoveredHost };
  /** A discovered builder went away. */
  remote_build_host_removed: { name: string };

  // ---- offloader ----
  /** A session with a paired build server opened. */
  offloader_peer_link_opened: { pin_sha256: string; receiver_hostname: string; receiver_port: number; esphome_version: string };
  /** A session ended; `reason` is the terminate reason or a local one (transport_error, heartbeat_timeout, …). */
  offloader_peer_link_closed: { pin_sha256: string; receiver_hostname: string; receiver_port: number; reason: string; error_detail: string };
  /** A build server's compile lane changed. */
  offloader_queue_status_changed: { pin_sha256: string } & PeerQueueStatus;
  /** One output line of a job running on a build server. */
  offloader_job_output: { pin_sha256: string; job_id: string; stream: string; line: string };
  /** A job on a build server changed state. */
  offloader_job_state_changed: { pin_sha256: string; job_id: string; status: string; error_message: string; failure_reason?: string };
  /** A pairing was added, approved, changed or its connection state moved. */
  offloader_pairing_changed: { pairing: PairingSummary };
  /** A pairing was removed (unpaired, or refused by the build server). */
  offloader_pairing_removed: { pin_sha256: string; reason: string };
  /** Something needs the user: the build server's key changed, or it revoked us. */
  offloader_alert: { alert: OffloaderAlert };
  /** The offloader's master switch or its version_match_policy changed. */
  offloader_settings_changed: { remote_builds_enabled: boolean; version_match_policy: VersionPolicy };
  /** The build server's version policy changed. */
  remote_build_version_policy_changed: { version_policy: VersionPolicy; auto_provision_supported: boolean };
  /** The `local_builds` setting changed. */
  local_builds_changed: { local_builds: LocalBuilds };

  /** A device YAML appeared or changed. */
  device_updated: { device: Device };
  /** A device YAML disappeared. */
  device_removed: { configuration: string };
  /** A device's live state changed (online/offline, firmware, update available, address). */
  device_state_changed: { state: DeviceState };

  // ---- managed ESPHome ----
  /** The ESPHome status changed: provisioning progress, ready, failed, an environment added or removed. */
  esphome_state_changed: { status: EsphomeStatus };
  /** One output line of provisioning (venv, pip), terminator included. */
  esphome_provision_output: { version: string; line: string };

  // ---- builder problems ----
  /** A problem was reported (new, or an existing id with a new message). */
  builder_problem_added: { problem: BuilderProblem };
  /** A problem went away (fixed, or dismissed by a user). */
  builder_problem_cleared: { id: string };
}

export type EventName = keyof EventMap;

export const JOB_LIFECYCLE_EVENTS = [
  "job_queued",
  "job_started",
  "job_completed",
  "job_failed",
  "job_cancelled",
] as const satisfies readonly EventName[];

/** Events a `subscribe_events` stream forwards; output and progress may be dropped under backlog. */
export const SUBSCRIBED_EVENTS = [
  ...JOB_LIFECYCLE_EVENTS,
  "job_output",
  "job_progress",
  "job_removed",
  "job_updated",
  "queue_status_changed",
  "device_updated",
  "device_removed",
  "device_state_changed",
  "builder_problem_added",
  "builder_problem_cleared",
  "esphome_state_changed",
  "esphome_provision_output",
  "remote_build_receiver_changed",
  "remote_build_pairing_window_changed",
  "remote_build_pair_request_received",
  "remote_build_pair_status_changed",
  "remote_build_peer_session_changed",
  "remote_build_identity_rotated",
  "remote_build_problem_dismissed",
  "remote_build_version_policy_changed",
  "remote_build_host_added",
  "remote_build_host_removed",
  "offloader_peer_link_opened",
  "offloader_peer_link_closed",
  "offloader_queue_status_changed",
  "offloader_pairing_changed",
  "offloader_pairing_removed",
  "offloader_alert",
  "offloader_settings_changed",
  "local_builds_changed",
] as const satisfies readonly EventName[];

export type SubscribedEventName = (typeof SUBSCRIBED_EVENTS)[number];
/** The payloads a panel's `subscribe_events` stream carries after `initial_state`. */
export type SubscribedEventMap = Pick<EventMap, SubscribedEventName>;
