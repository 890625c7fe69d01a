/**
 * The panel API's wire shapes: what `/ws` sends. The shared model (jobs,
 * devices, remote builds, the event map) lives in src/domain/, which imports
 * nothing; this file re-exports it so the browser panel imports one module,
 * and adds the API's own shapes. Plain types and a few pure helpers, no
 * imports outside src/domain/.
 */
import type { Device, DeviceState } from "../domain/device.ts";
import type { EsphomeStatus } from "../domain/esphome.ts";
import type { EventMap, EventName } from "../domain/events.ts";
import { JOB_LIFECYCLE_EVENTS } from "../domain/events.ts";
import type { FirmwareJob, QueueStatus } from "../domain/job.ts";
import type { BuilderProblem } from "../domain/problems.ts";
import type { RemoteBuildSnapshot } from "../domain/remote-build.ts";

export * from "../domain/device.ts";
export * from "../domain/esphome.ts";
export * from "../domain/events.ts";
export * from "../domain/job.ts";
export * from "../domain/policy.ts";
export * from "../domain/problems.ts";
export * from "../domain/remote-build.ts";

// ---- devices, the server, this machine (the API's own) ----

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

// ---- managed ESPHome (the API's own) ----

/** `esphome/versions`: what the package index offers, newest first. */
export interface EsphomeVersionsView {
  index: string;
  /** The newest release (pre-releases only when asked for). */
  latest: string | null;
  versions: { version: string; prerelease: boolean; installed: boolean; current: boolean; requires_python: string | null }[];
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
