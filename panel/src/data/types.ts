/**
 * Wire shapes of the builder's panel API (docs/API.md). They live in
 * src/api/wire.ts (which re-exports the model in src/domain/, both without
 * other imports) that the backend uses too, so the
 * panel and the builder cannot disagree; this file re-exports them under the
 * panel's names and adds the shapes only the panel needs.
 */
import type { EsphomeStatus, EventMap, IdentityView, InitialState as FullInitialState, PairingSummary, PeerSummary, RemoteBuildSnapshot, SubscribedEventMap, TerminalStatus } from "../../../src/api/wire.ts";

export { LOCAL_BUILDS, isTerminal, phasesOf } from "../../../src/api/wire.ts";
export type {
  BuilderProblem,
  BulkFilter,
  Device,
  DeviceFirmware,
  DeviceState,
  DeviceStatus,
  UpdateReason,
  DiscoveredHost,
  EsphomeEnvironmentView,
  EsphomeProvisionPhase,
  EsphomeStatus,
  EsphomeTaskState,
  EsphomeVersionsView,
  FirmwareBinary,
  FirmwareJob,
  JobPhase,
  JobSource,
  JobStatus,
  JobType,
  JobWaiting,
  JobWaitReason,
  LocalBuilds,
  OffloaderAlert,
  OffloaderAlertKind,
  OffloaderSettings,
  PairPreview,
  ProblemCode,
  PeerQueueStatus,
  QueueStatus,
  ReceiverSettings,
  RemoteBuildProblem,
  RemoteBuildProblemKind,
  RemoteBuildSnapshot,
  SerialPort,
  ServerInfo,
  SubscribedEventMap,
  TerminalStatus,
  VersionPolicy,
} from "../../../src/api/wire.ts";
export { VERSION_POLICIES } from "../../../src/api/wire.ts";

/** This builder's peer-link identity (`remote_build/get_identity`). */
export type RemoteIdentity = IdentityView;
/** A builder that asked to (or may) compile here. */
export type ReceiverPeer = PeerSummary;
/** A build server this builder is paired with (or waiting for). */
export type Pairing = PairingSummary;
export type PairingWindow = EventMap["remote_build_pairing_window_changed"];

/** `initial_state`; `remote_build` is left out by builders without remote builds, `esphome` by builders before managed ESPHome, `device_states` by builders without device state. */
export type InitialState = Omit<FullInitialState, "remote_build" | "esphome" | "device_states"> & { remote_build?: RemoteBuildSnapshot; esphome?: EsphomeStatus; device_states?: FullInitialState["device_states"] };

export interface DownloadToken {
  token: string;
  expires_in: number;
  filename: string;
  /** Relative to the panel's page: `api/firmware/download?token=…`. */
  url: string;
}

export type SubscribedEvent = {
  [K in keyof SubscribedEventMap]: { event: K; data: SubscribedEventMap[K] };
}[keyof SubscribedEventMap];

/** The events about build servers (both roles). */
export type RemoteBuildEvent = Extract<SubscribedEvent, { event: `remote_build_${string}` | `offloader_${string}` | "local_builds_changed" }>;

/** Events of a `devices/logs` stream. */
export interface DeviceLogsEventMap {
  started: { address: string };
  line: { line: string };
  ended: { exit_code: number | null; error: string | null };
}

/** Events of a `firmware/follow_job` stream. */
export interface FollowJobEventMap {
  output: { line: string };
  output_batch: { lines: string[] };
  progress: { progress: number };
  result: { status: TerminalStatus; exit_code: number | null; error: string | null };
}
