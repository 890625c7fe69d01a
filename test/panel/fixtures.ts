/** Wire objects for the panel's unit tests. */
import type {
  BuilderProblem,
  Device,
  DeviceState,
  DiscoveredHost,
  FirmwareJob,
  InitialState,
  Pairing,
  ProblemCode,
  ReceiverPeer,
  RemoteBuildSnapshot,
} from "../../panel/src/data/types.ts";

export function job(overrides: Partial<FirmwareJob> = {}): FirmwareJob {
  return {
    job_id: "0123456789ab",
    configuration: "kitchen.yaml",
    job_type: "install",
    status: "queued",
    phase: null,
    port: "",
    created_at: "2026-11-23T10:00:00.000Z",
    started_at: null,
    completed_at: null,
    exit_code: null,
    error: null,
    progress: null,
    output: [],
    source: "local",
    source_pin_sha256: "",
    source_label: "",
    remote_peer: "",
    remote_job_id: "",
    remote_peer_label: "",
    force_local: false,
    target_esphome_version: "",
    failure_reason: "",
    ...overrides,
  };
}

export function deviceState(configuration: string, overrides: Partial<DeviceState> = {}): DeviceState {
  return {
    configuration,
    address: configuration.replace(/\.ya?ml$/, ".local"),
    address_source: "yaml",
    status: "online",
    last_seen: "2026-11-23T10:00:00.000Z",
    status_since: "2026-11-23T09:00:00.000Z",
    firmware: { esphome_version: "2026.11.0", compilation_time: "2026-11-23 09:00:00 +0000", project_name: null, project_version: null, source: "api" },
    update_reasons: [],
    update_detail: null,
    probe_error: null,
    deep_sleep: false,
    ...overrides,
  };
}

export function device(name: string, overrides: Partial<Device> = {}): Device {
  return {
    name,
    friendly_name: "",
    configuration: `${name}.yaml`,
    path: `/config/${name}.yaml`,
    platform: "esp32",
    board: "esp32dev",
    address: `${name}.local`,
    comment: null,
    web_port: null,
    loaded_integrations: ["api", "esp32", "logger", "ota", "wifi"],
    error: null,
    ...overrides,
  };
}

export function problem(code: ProblemCode, subject: string, message = `${code} on ${subject}`): BuilderProblem {
  return { id: `${code}:${subject}`, code, subject, message, at: "2026-11-23T10:00:00.000Z" };
}

export function initialState(overrides: Partial<InitialState> = {}): InitialState {
  return {
    jobs: [],
    devices: [device("kitchen"), device("garage")],
    queue_status: { idle: true, running: 0, queue_depth: 0 },
    server: { server_version: "0.1.0", esphome_version: "2026.11.0", config_dir: "/config", label: "test" },
    problems: [],
    ...overrides,
  };
}

export const PIN_A = "a1".repeat(32);
export const PIN_B = "b2".repeat(32);
export const PIN_SELF = "5e".repeat(32);

export function pairing(overrides: Partial<Pairing> = {}): Pairing {
  return {
    pin_sha256: PIN_B,
    label: "Desktop",
    receiver_hostname: "192.168.1.20",
    receiver_port: 6055,
    status: "approved",
    enabled: true,
    connected: false,
    idle: null,
    last_connect_error: "",
    esphome_version: "2026.11.0",
    auto_provision_supported: false,
    version_policy: null,
    fingerprint_emoji: [],
    reset_build_env_supported: false,
    ...overrides,
  };
}

export function receiverPeer(overrides: Partial<ReceiverPeer> = {}): ReceiverPeer {
  return {
    dashboard_id: "d".repeat(32),
    pin_sha256: PIN_A,
    label: "Attic Pi",
    status: "pending",
    peer_ip: "192.168.1.30",
    connected: false,
    ...overrides,
  };
}

export function host(overrides: Partial<DiscoveredHost> = {}): DiscoveredHost {
  return {
    name: "esphome-builder-0123abcd",
    hostname: "esphome-builder-0123abcd.local",
    port: 6052,
    addresses: ["fe80::1", "192.168.1.20"],
    server_version: "0.1.0",
    esphome_version: "2026.11.0",
    friendly_name: "Desktop",
    pin_sha256: PIN_B,
    remote_build_port: 6055,
    ...overrides,
  };
}

export function remoteSnapshot(overrides: Partial<RemoteBuildSnapshot> = {}): RemoteBuildSnapshot {
  return {
    identity: {
      dashboard_id: "s".repeat(32),
      pin_sha256: PIN_SELF,
      fingerprint_emoji: [],
      fingerprint_hex: "",
      label: "Home Assistant",
      esphome_version: "2026.11.0",
      listener_port: 6055,
    },
    receiver: { enabled: true, version_policy: "any", auto_provision_supported: false, ccache: false, pairing_window_open: false, expires_in_seconds: null, peers: [] },
    offloader: { remote_builds_enabled: true, version_match_policy: "any", pairings: [] },
    alerts: [],
    problems: [],
    hosts: [],
    local_builds: "always",
    ...overrides,
  };
}
