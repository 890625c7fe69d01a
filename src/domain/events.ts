/**
 * The builder's event map: what the bus (src/events.ts) carries and its payloads.
 */

import type { Device, DeviceState } from "./device.ts";
import type { EsphomeStatus } from "./esphome.ts";
import type { FirmwareJob, PeerQueueStatus, QueueStatus } from "./job.ts";
import type { LocalBuilds, VersionPolicy } from "./policy.ts";
import type { BuilderProblem } from "./problems.ts";
import type { DiscoveredHost, OffloaderAlert, PairingSummary } from "./remote-build.ts";

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
