/**
 * The managed ESPHome's status.
 */

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
