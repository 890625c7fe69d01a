/**
 * Typed wrappers for the builder commands the panel uses. Elements call these;
 * they never build wire frames themselves.
 */
import type { Connection, StreamHandle } from "./connection.ts";
import { ApiError } from "./connection.ts";
import type {
  DownloadToken,
  FirmwareBinary,
  FirmwareJob,
  FollowJobEventMap,
  InitialState,
  SerialPort,
  SubscribedEvent,
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

  installBulk(configurations: readonly string[] | "all"): Promise<FirmwareJob[]> {
    return this.connection.request("firmware/install_bulk", {
      configurations: configurations === "all" ? "all" : [...configurations],
    });
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
      { job_id: jobId },
      {
        onEvent: (event, data) => {
          if (done) return;
          if (event === "output") {
            handlers.onOutput((data as FollowJobEventMap["output"]).line);
          } else if (event === "progress") {
            handlers.onProgress?.((data as FollowJobEventMap["progress"]).progress);
          } else if (event === "result") {
            done = true;
            handle.cancel();
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
    };
  }

  /** The state snapshot, then every event; re-seeded from a fresh snapshot after a reconnect. */
  subscribeEvents(handlers: SubscribeHandlers): StreamHandle {
    return this.connection.stream(
      "subscribe_events",
      undefined,
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
