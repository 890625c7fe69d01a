/**
 * What the remote-build side shows: identity, peers, pairings, alerts,
 * state-file problems, discovered hosts.
 */

import type { LocalBuilds, VersionPolicy } from "./policy.ts";

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
