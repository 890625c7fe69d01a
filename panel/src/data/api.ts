/**
 * Typed wrappers for the builder commands the panel uses. Elements call these;
 * they never build wire frames themselves.
 */
import type { Connection, StreamHandle } from "./connection.ts";
import { ApiError } from "./connection.ts";
import type {
  BulkFilter,
  DeviceLogsEventMap,
  DeviceState,
  DownloadToken,
  EsphomeStatus,
  EsphomeVersionsView,
  FirmwareBinary,
  FirmwareJob,
  FollowJobEventMap,
  InitialState,
  LocalBuilds,
  OffloaderSettings,
  Pairing,
  PairingWindow,
  PairPreview,
  ReceiverPeer,
  ReceiverSettings,
  RemoteIdentity,
  SerialPort,
  SubscribedEvent,
  VersionPolicy,
} from "./types.ts";

export interface InstallOptions {
  /** `""`/omitted: over the network; a serial path flashes over USB. */
  port?: string;
  /** Build on this machine even when a build server is available. */
  forceLocal?: boolean;
}

export interface FollowJobHandlers {
  /** The stream (re)starts from the job's history: drop what earlier calls gave. */
  onReset(): void;
  onOutput(line: string): void;
  onProgress?(progress: number): void;
  onResult(result: FollowJobEventMap["result"]): void;
  onError?(error: ApiError): void;
}

export interface SubscribeHandlers {
  onInitialState(state: InitialState): void;
  onEvent(event: SubscribedEvent): void;
  onError?(error: ApiError): void;
}

export class BuilderApi {
  readonly connection: Connection;

  constructor(connection: Connection) {
    this.connection = connection;
  }

  serialPorts(): Promise<SerialPort[]> {
    return this.connection.request("config/serial_ports");
  }

  install(configuration: string, opts: InstallOptions = {}): Promise<FirmwareJob> {
    return this.connection.request("firmware/install", {
      configuration,
      ...(opts.port === undefined || opts.port === "" ? {} : { port: opts.port }),
      ...(opts.forceLocal === true ? { force_local: true } : {}),
    });
  }

  /** Installs on the named devices (or all), narrowed by `filter` (outdated, online, failed). */
  installBulk(configurations: readonly string[] | "all", filter: BulkFilter = "all"): Promise<FirmwareJob[]> {
    return this.connection.request("firmware/install_bulk", {
      configurations: configurations === "all" ? "all" : [...configurations],
      ...(filter === "all" ? {} : { filter }),
    });
  }

  /** Sets where the builder looks for a device; null goes back to the YAML's address. */
  setDeviceAddress(configuration: string, address: string | null): Promise<DeviceState> {
    return this.connection.request("devices/set_address", { configuration, address });
  }

  /** Streams a device's logs (`esphome logs`) until cancelled (the stream's end stops the process on the builder); nothing is queued. */
  deviceLogs(configuration: string, handlers: { onStarted(address: string): void; onLine(line: string): void; onEnded(error: string | null): void; onError?(error: unknown): void }): StreamHandle {
    let ended = false;
    const handle = this.connection.stream(
      "devices/logs",
      { configuration },
      {
        onEvent: (event, data) => {
          if (ended) return;
          if (event === "started") handlers.onStarted((data as DeviceLogsEventMap["started"]).address);
          else if (event === "line") handlers.onLine((data as DeviceLogsEventMap["line"]).line);
          else if (event === "ended") {
            ended = true;
            handle.forget();
            handlers.onEnded((data as DeviceLogsEventMap["ended"]).error);
          }
        },
        onError: (error) => {
          handlers.onError?.(error);
        },
      },
    );
    return {
      // Ending the stream (unsubscribe) stops `esphome logs` on the builder.
      cancel: () => {
        if (!ended) handle.cancel();
        ended = true;
      },
      forget: () => {
        ended = true;
        handle.forget();
      },
    };
  }

  compile(configuration: string): Promise<FirmwareJob> {
    return this.connection.request("firmware/compile", { configuration });
  }

  upload(configuration: string, port?: string): Promise<FirmwareJob> {
    return this.connection.request("firmware/upload", {
      configuration,
      ...(port === undefined || port === "" ? {} : { port }),
    });
  }

  clean(configuration: string): Promise<FirmwareJob> {
    return this.connection.request("firmware/clean", { configuration });
  }

  cancel(jobId: string): Promise<FirmwareJob> {
    return this.connection.request("firmware/cancel", { job_id: jobId });
  }

  /** Hides a builder problem for every panel (it comes back if it happens again). */
  dismissProblem(id: string): Promise<{ dismissed: boolean }> {
    return this.connection.request("problems/dismiss", { id });
  }

  /** The versions the package index offers, newest first. */
  esphomeVersions(prereleases: boolean): Promise<EsphomeVersionsView> {
    return this.connection.request("esphome/versions", prereleases ? { prereleases: true } : {});
  }

  /** Installs (in the background) and switches to an ESPHome version; the next job uses it. */
  esphomeInstall(version: string): Promise<EsphomeStatus> {
    return this.connection.request("esphome/install", { version });
  }

  esphomeRemove(version: string): Promise<EsphomeStatus> {
    return this.connection.request("esphome/remove", { version });
  }

  /** The provisioning output so far. */
  esphomeLog(): Promise<{ version: string | null; lines: string[] }> {
    return this.connection.request("esphome/log");
  }

  clearHistory(): Promise<{ removed: number }> {
    return this.connection.request("firmware/clear_history");
  }

  getBinaries(configuration: string): Promise<FirmwareBinary[]> {
    return this.connection.request("firmware/get_binaries", { configuration });
  }

  downloadToken(configuration: string, file: string): Promise<DownloadToken> {
    return this.connection.request("firmware/download_token", { configuration, file });
  }

  /**
   * Follows a job's log: its history, then live lines and progress, then one
   * result. Survives reconnects (the history is replayed after `onReset`).
   */
  followJob(jobId: string, handlers: FollowJobHandlers): StreamHandle {
    let done = false;
    const handle = this.connection.stream(
      "firmware/follow_job",
      // Batched: one frame per 25 ms or 500 lines instead of one per line.
      { job_id: jobId, batch: true },
      {
        onEvent: (event, data) => {
          if (done) return;
          if (event === "output_batch") {
            for (const line of (data as FollowJobEventMap["output_batch"]).lines) handlers.onOutput(line);
          } else if (event === "output") {
            handlers.onOutput((data as FollowJobEventMap["output"]).line);
          } else if (event === "progress") {
            handlers.onProgress?.((data as FollowJobEventMap["progress"]).progress);
          } else if (event === "result") {
            done = true;
            handle.forget();
            handlers.onResult(data as FollowJobEventMap["result"]);
          }
        },
        onReset: () => {
          handlers.onReset();
        },
        onError: (error) => {
          handlers.onError?.(error);
        },
      },
      { resubscribe: true },
    );
    return {
      cancel: () => {
        done = true;
        handle.cancel();
      },
      forget: () => {
        done = true;
        handle.forget();
      },
    };
  }

  // ---- remote builds: this builder as a build server (receiver) ----

  getIdentity(): Promise<RemoteIdentity> {
    return this.connection.request("remote_build/get_identity");
  }

  /** A new key: every paired builder must pair again. */
  rotateIdentity(): Promise<RemoteIdentity> {
    return this.connection.request("remote_build/rotate_identity");
  }

  getReceiverSettings(): Promise<ReceiverSettings> {
    return this.connection.request("remote_build/get_settings");
  }

  /** The build server switch: binds or unbinds the peer-link listener at once. */
  setReceiverEnabled(enabled: boolean): Promise<ReceiverSettings> {
    return this.connection.request("remote_build/set_settings", { enabled });
  }

  /** What this build server does with a compile for another ESPHome version. */
  setVersionPolicy(versionPolicy: VersionPolicy): Promise<ReceiverSettings> {
    return this.connection.request("remote_build/set_settings", { version_policy: versionPolicy });
  }

  /** Opens (or extends, 300 s for this client) or closes the pairing window; `unavailable` while the build server is off. */
  setPairingWindow(open: boolean): Promise<PairingWindow> {
    return this.connection.request("remote_build/set_pairing_window", { open });
  }

  /** Hides a start-up problem of the remote-build files from every panel (`remote_build_problem_dismissed` follows). */
  dismissRemoteBuildProblem(id: string): Promise<{ dismissed: true }> {
    return this.connection.request("remote_build/dismiss_problem", { id });
  }

  approvePeer(dashboardId: string): Promise<ReceiverPeer> {
    return this.connection.request("remote_build/approve_peer", { dashboard_id: dashboardId });
  }

  /** Rejects a pending request or removes an approved peer. */
  removePeer(dashboardId: string): Promise<{ removed: true }> {
    return this.connection.request("remote_build/remove_peer", { dashboard_id: dashboardId });
  }

  // ---- remote builds: sending builds to build servers (offloader) ----

  /** Who answers at an address (its fingerprint); changes nothing anywhere. */
  previewPair(hostname: string, port: number): Promise<PairPreview> {
    return this.connection.request("remote_build/preview_pair", { hostname, port });
  }

  /**
   * Asks to pair, pinned to the previewed key (a different key: `invalid_args`; no pairing window: `unavailable`).
   * A headless build server needs the key it printed (`pairingKey`); it refuses a wrong or expired one: `pairing_key_refused`.
   */
  requestPair(hostname: string, port: number, pinSha256: string, label?: string, pairingKey?: string): Promise<Pairing> {
    const trimmed = label?.trim() ?? "";
    return this.connection.request("remote_build/request_pair", {
      hostname,
      port,
      pin_sha256: pinSha256,
      ...(trimmed === "" ? {} : { label: trimmed.slice(0, 128) }),
      ...(pairingKey === undefined ? {} : { pairing_key: pairingKey }),
    });
  }

  getOffloaderSettings(): Promise<OffloaderSettings> {
    return this.connection.request("remote_build/get_offloader_settings");
  }

  /** The master switch of transparent installs. */
  setRemoteBuildsEnabled(enabled: boolean): Promise<OffloaderSettings> {
    return this.connection.request("remote_build/set_offloader_settings", { remote_builds_enabled: enabled });
  }

  /** Where this builder compiles its own jobs: always, fallback or never. */
  setLocalBuilds(localBuilds: LocalBuilds): Promise<{ local_builds: LocalBuilds }> {
    return this.connection.request("remote_build/set_local_builds", { local_builds: localBuilds });
  }

  /** Wipes this builder's build folders on a paired build server (a job here follows it). */
  resetBuildEnv(pinSha256: string): Promise<FirmwareJob> {
    return this.connection.request("remote_build/reset_build_env", { pin_sha256: pinSha256 });
  }

  /** Wipes this builder's own build folders for every device (one job). */
  cleanAll(): Promise<FirmwareJob> {
    return this.connection.request("firmware/clean_all", {});
  };
  /** Which build servers compiles may go to, by their ESPHome version (upstream's version_match_policy). */
  setVersionMatchPolicy(versionMatchPolicy: VersionPolicy): Promise<OffloaderSettings> {
    return this.connection.request("remote_build/set_offloader_settings", { version_match_policy: versionMatchPolicy });
  }

  /** Off keeps the pairing but routes nothing to it. */
  setPairingEnabled(pinSha256: string, enabled: boolean): Promise<Pairing> {
    return this.connection.request("remote_build/set_pairing_enabled", { pin_sha256: pinSha256, enabled });
  }

  unpair(pinSha256: string): Promise<{ removed: true }> {
    return this.connection.request("remote_build/unpair", { pin_sha256: pinSha256 });
  }

  /** Moves a pairing; the builder at the new address must present the same key (else `invalid_args`). */
  editPairingEndpoint(pinSha256: string, hostname: string, port: number): Promise<Pairing> {
    return this.connection.request("remote_build/edit_pairing_endpoint", { pin_sha256: pinSha256, hostname, port });
  }

  /**
   * The state snapshot, then every event; re-seeded from a fresh snapshot after
   * a reconnect. Per-line job output is left out: logs come from `followJob`.
   */
  subscribeEvents(handlers: SubscribeHandlers): StreamHandle {
    return this.connection.stream(
      "subscribe_events",
      { job_output: false },
      {
        onEvent: (event, data) => {
          if (event === "initial_state") handlers.onInitialState(data as InitialState);
          else handlers.onEvent({ event, data } as SubscribedEvent);
        },
        onError: (error) => {
          handlers.onError?.(error);
        },
      },
      { resubscribe: true },
    );
  }
}

/** The text to show for a failed call. */
export function errorText(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}
