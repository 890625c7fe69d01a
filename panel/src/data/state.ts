/**
 * The panel's state and the pure reducer that keeps it: seeded from
 * `initial_state`, then updated by each live event. Nothing here does I/O.
 */
import type { ConnectionStatus } from "./connection.ts";
import { applyRemoteEvent, seedRemoteBuild, withIdentity, type RemoteBuildState } from "./remote-build.ts";
import {
  isTerminal,
  phasesOf,
  type BuilderProblem,
  type Device,
  type EsphomeStatus,
  type DeviceState,
  type FirmwareJob,
  type InitialState,
  type JobPhase,
  type QueueStatus,
  type RemoteIdentity,
  type ServerInfo,
  type SubscribedEvent,
} from "./types.ts";

export interface AppState {
  connection: ConnectionStatus;
  /** True once an `initial_state` arrived (lists are meaningful). */
  seeded: boolean;
  /** Jobs by id, without output. */
  jobs: Readonly<Record<string, FirmwareJob>>;
  /** Devices by configuration file name. */
  devices: Readonly<Record<string, Device>>;
  /** Live device state by configuration file name (online, firmware, update available). */
  deviceStates: Readonly<Record<string, DeviceState>>;
  queueStatus: QueueStatus | null;
  server: ServerInfo | null;
  /** The builder's current problems (banner at the top), oldest first. */
  problems: readonly BuilderProblem[];
  /** Build servers (both roles); null when the builder has no remote builds. */
  remote: RemoteBuildState | null;
  /** The managed ESPHome (or the one `--esphome` names); null before a builder said. */
  esphome: EsphomeStatus | null;
  /** Provisioning output of `esphomeLogVersion` (the newest lines, at most ESPHOME_LOG_LINES). */
  esphomeLog: readonly string[];
  esphomeLogVersion: string | null;
}

/** Provisioning lines the panel keeps. */
export const ESPHOME_LOG_LINES = 2000;

export type Action =
  | { type: "connection"; status: ConnectionStatus }
  | { type: "initial_state"; state: InitialState }
  | { type: "event"; event: SubscribedEvent }
  /** A command answered with this builder's identity (after a key rotation). */
  | { type: "remote_identity"; identity: RemoteIdentity }
  /** `esphome/log` answered: the provisioning output so far. */
  | { type: "esphome_log"; version: string | null; lines: readonly string[] };

export const INITIAL_STATE: AppState = {
  connection: "connecting",
  seeded: false,
  jobs: {},
  devices: {},
  deviceStates: {},
  queueStatus: null,
  server: null,
  problems: [],
  remote: null,
  esphome: null,
  esphomeLog: [],
  esphomeLogVersion: null,
};

/** Jobs in the store carry no output: the log comes from `firmware/follow_job`. */
function stripOutput(job: FirmwareJob): FirmwareJob {
  return job.output.length === 0 ? job : { ...job, output: [] };
}

/**
 * A job after a progress event. Within a phase progress only rises, and the
 * builder sends `0` exactly when an install moves on to its next phase (there
 * is no separate phase event), so a drop moves the job to its next phase.
 */
export function applyProgress(job: FirmwareJob, progress: number): FirmwareJob {
  if (isTerminal(job.status)) return job;
  const phases = phasesOf(job.job_type);
  const current: JobPhase | null = job.phase ?? phases[0] ?? null;
  const previous = job.progress ?? 0;
  let phase = current;
  if (progress === 0 || progress < previous) {
    const index = current === null ? -1 : phases.indexOf(current);
    const next = phases[index + 1];
    if (next !== undefined) phase = next;
  }
  if (phase === job.phase && progress === job.progress) return job;
  return { ...job, phase, progress };
}

/**
 * A job from a lifecycle event. Lifecycle events carry the whole job; a
 * `job_started` snapshot may still say `phase: null` (it is sent before the
 * first phase begins), so keep a phase we already know.
 */
function mergeJob(known: FirmwareJob | undefined, incoming: FirmwareJob): FirmwareJob {
  const job = stripOutput(incoming);
  if (known === undefined || isTerminal(job.status)) return job;
  if (job.phase === null && known.phase !== null && known.status === "running") return { ...job, phase: known.phase };
  return job;
}

function without<T>(record: Readonly<Record<string, T>>, key: string): Readonly<Record<string, T>> {
  if (!Object.hasOwn(record, key)) return record;
  return Object.fromEntries(Object.entries(record).filter(([k]) => k !== key));
}

export function reducer(state: AppState, action: Action): AppState {
  switch (action.type) {
    case "connection":
      return state.connection === action.status ? state : { ...state, connection: action.status };
    case "initial_state": {
      const jobs: Record<string, FirmwareJob> = {};
      for (const job of action.state.jobs) jobs[job.job_id] = stripOutput(job);
      const devices: Record<string, Device> = {};
      for (const device of action.state.devices) devices[device.configuration] = device;
      const deviceStates: Record<string, DeviceState> = {};
      for (const ds of action.state.device_states ?? []) deviceStates[ds.configuration] = ds;
      return {
        ...state,
        seeded: true,
        jobs,
        devices,
        deviceStates,
        queueStatus: action.state.queue_status,
        server: action.state.server,
        problems: action.state.problems,
        remote: action.state.remote_build === undefined ? null : seedRemoteBuild(action.state.remote_build),
        esphome: action.state.esphome ?? null,
      };
    }
    case "event":
      return applyEvent(state, action.event);
    case "remote_identity":
      return state.remote === null ? state : { ...state, remote: withIdentity(state.remote, action.identity) };
    case "esphome_log":
      return { ...state, esphomeLog: action.lines.slice(-ESPHOME_LOG_LINES), esphomeLogVersion: action.version };
  }
}

export function applyEvent(state: AppState, e: SubscribedEvent): AppState {
  switch (e.event) {
    case "job_queued":
    case "job_started":
    case "job_completed":
    case "job_failed":
    case "job_cancelled":
    case "job_updated": {
      const id = e.data.job.job_id;
      return { ...state, jobs: { ...state.jobs, [id]: mergeJob(state.jobs[id], e.data.job) } };
    }
    case "device_state_changed":
      return { ...state, deviceStates: { ...state.deviceStates, [e.data.state.configuration]: e.data.state } };
    case "job_progress": {
      const job = state.jobs[e.data.job_id];
      if (job === undefined) return state;
      const next = applyProgress(job, e.data.progress);
      return next === job ? state : { ...state, jobs: { ...state.jobs, [job.job_id]: next } };
    }
    case "job_output":
      // The log is followed per job; the store does not keep output.
      return state;
    case "job_removed": {
      const jobs = without(state.jobs, e.data.job_id);
      return jobs === state.jobs ? state : { ...state, jobs };
    }
    case "queue_status_changed":
      return { ...state, queueStatus: e.data };
    case "device_updated":
      return { ...state, devices: { ...state.devices, [e.data.device.configuration]: e.data.device } };
    case "device_removed": {
      const devices = without(state.devices, e.data.configuration);
      const deviceStates = without(state.deviceStates, e.data.configuration);
      return devices === state.devices && deviceStates === state.deviceStates ? state : { ...state, devices, deviceStates };
    }
    case "builder_problem_added": {
      // A problem reported again (same id) moves to the end with its new message, as on the builder.
      const problems = state.problems.filter((p) => p.id !== e.data.problem.id);
      return { ...state, problems: [...problems, e.data.problem] };
    }
    case "builder_problem_cleared": {
      const problems = state.problems.filter((p) => p.id !== e.data.id);
      return problems.length === state.problems.length ? state : { ...state, problems };
    }
    case "esphome_state_changed": {
      const status = e.data.status;
      const task = status.state;
      // A new provisioning starts a new log.
      const restart = task.status === "provisioning" && task.version !== state.esphomeLogVersion;
      return restart ? { ...state, esphome: status, esphomeLog: [], esphomeLogVersion: task.version } : { ...state, esphome: status };
    }
    case "esphome_provision_output": {
      const fresh = e.data.version !== state.esphomeLogVersion;
      const log = fresh ? [e.data.line] : [...state.esphomeLog.slice(-(ESPHOME_LOG_LINES - 1)), e.data.line];
      return { ...state, esphomeLog: log, esphomeLogVersion: e.data.version };
    }
    case "remote_build_receiver_changed":
    case "remote_build_pairing_window_changed":
    case "remote_build_pair_request_received":
    case "remote_build_pair_status_changed":
    case "remote_build_peer_session_changed":
    case "remote_build_identity_rotated":
    case "remote_build_problem_dismissed":
    case "remote_build_version_policy_changed":
    case "remote_build_host_added":
    case "remote_build_host_removed":
    case "offloader_peer_link_opened":
    case "offloader_peer_link_closed":
    case "offloader_queue_status_changed":
    case "offloader_pairing_changed":
    case "offloader_pairing_removed":
    case "offloader_alert":
    case "offloader_settings_changed":
    case "local_builds_changed": {
      if (state.remote === null) return state;
      const remote = applyRemoteEvent(state.remote, e);
      return remote === state.remote ? state : { ...state, remote };
    }
  }
}

// ---- selectors (memoised on the identity of their input) ----

function memoize<A, R>(fn: (arg: A) => R): (arg: A) => R {
  let lastArg: A | undefined;
  let lastResult: R | undefined;
  let primed = false;
  return (arg) => {
    if (!primed || arg !== lastArg) {
      lastResult = fn(arg);
      lastArg = arg;
      primed = true;
    }
    return lastResult as R;
  };
}

/** Newest first (by creation time, then id for a stable order). */
export function compareJobsNewestFirst(a: FirmwareJob, b: FirmwareJob): number {
  if (a.created_at !== b.created_at) return a.created_at < b.created_at ? 1 : -1;
  return a.job_id < b.job_id ? 1 : a.job_id > b.job_id ? -1 : 0;
}

export const selectJobs = memoize((jobs: Readonly<Record<string, FirmwareJob>>): readonly FirmwareJob[] =>
  Object.values(jobs).sort(compareJobsNewestFirst),
);

/** Each configuration's newest job: what the devices view shows as "last job". */
export const selectLastJobs = memoize((jobs: Readonly<Record<string, FirmwareJob>>): ReadonlyMap<string, FirmwareJob> => {
  const last = new Map<string, FirmwareJob>();
  for (const job of selectJobs(jobs)) if (!last.has(job.configuration)) last.set(job.configuration, job);
  return last;
});

export function deviceTitle(device: Device | undefined, configuration: string): string {
  if (device === undefined) return configuration.replace(/\.ya?ml$/, "");
  return device.friendly_name !== "" ? device.friendly_name : device.name;
}

export const selectDevices = memoize((devices: Readonly<Record<string, Device>>): readonly Device[] =>
  Object.values(devices).sort((a, b) => {
    const ta = deviceTitle(a, a.configuration).toLowerCase();
    const tb = deviceTitle(b, b.configuration).toLowerCase();
    return ta < tb ? -1 : ta > tb ? 1 : a.configuration < b.configuration ? -1 : 1;
  }),
);

/** Devices whose name, file, platform, board or address contain every word of `query`. */
export function filterDevices(devices: readonly Device[], query: string): readonly Device[] {
  const words = query.toLowerCase().split(/\s+/).filter((w) => w !== "");
  if (words.length === 0) return devices;
  return devices.filter((d) => {
    const hay = [d.name, d.friendly_name, d.configuration, d.platform ?? "", d.board ?? "", d.address, d.comment ?? ""]
      .join("\n")
      .toLowerCase();
    return words.every((w) => hay.includes(w));
  });
}

/** The device-list filters: everything, by reachability, with an update available, or whose last install failed. */
export const DEVICE_FILTERS = ["all", "online", "offline", "outdated", "failed"] as const;
export type DeviceFilter = (typeof DEVICE_FILTERS)[number];

/** Whether a device passes a filter, from its live state and its newest job. */
export function deviceMatches(filter: DeviceFilter, state: DeviceState | undefined, lastJob: FirmwareJob | undefined): boolean {
  switch (filter) {
    case "all":
      return true;
    case "online":
      return state?.status === "online";
    case "offline":
      return state?.status === "offline";
    case "outdated":
      return (state?.update_reasons.length ?? 0) > 0;
    case "failed":
      return lastJob?.status === "failed" && (lastJob.job_type === "install" || lastJob.job_type === "upload");
  }
}

export interface JobGroups {
  running: readonly FirmwareJob[];
  queued: readonly FirmwareJob[];
  finished: readonly FirmwareJob[];
}

export const selectJobGroups = memoize((jobs: Readonly<Record<string, FirmwareJob>>): JobGroups => {
  const running: FirmwareJob[] = [];
  const queued: FirmwareJob[] = [];
  const finished: FirmwareJob[] = [];
  for (const job of selectJobs(jobs)) {
    if (job.status === "running") running.push(job);
    else if (job.status === "queued") queued.push(job);
    else finished.push(job);
  }
  // The queue runs the oldest first: show waiting jobs in that order.
  queued.reverse();
  return { running, queued, finished };
});

/** A job is on a build server while it is remote and not finished. */
export function isRemoteActive(job: FirmwareJob): boolean {
  return job.source === "remote" && !isTerminal(job.status);
}

/** Milliseconds a job ran (to `now` while it runs), or null before it started. */
export function jobDuration(job: FirmwareJob, now: number): number | null {
  if (job.started_at === null) return null;
  const start = Date.parse(job.started_at);
  const end = job.completed_at === null ? now : Date.parse(job.completed_at);
  if (Number.isNaN(start) || Number.isNaN(end)) return null;
  return Math.max(0, end - start);
}

// ---- a minimal store ----

export class Store {
  #state: AppState;
  readonly #listeners = new Set<(state: AppState) => void>();

  constructor(initial: AppState = INITIAL_STATE) {
    this.#state = initial;
  }

  get state(): AppState {
    return this.#state;
  }

  dispatch(action: Action): void {
    const next = reducer(this.#state, action);
    if (next === this.#state) return;
    this.#state = next;
    for (const listener of [...this.#listeners]) listener(next);
  }

  subscribe(listener: (state: AppState) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
