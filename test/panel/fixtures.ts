/** Wire objects for the panel's unit tests. */
import type { Device, FirmwareJob, InitialState } from "../../panel/src/data/types.ts";

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
