/**
 * What every part of the panel API's command table shares: the services handlers
 * use, the reply/stream shapes, and the argument schemas (validated before a
 * handler runs, so handlers only ever see well-typed arguments).
 */
import { promises as fs } from "node:fs";
import { z } from "zod";
import type { ServerInfo } from "./wire.ts";
import { notFound } from "../errors.ts";
import type { EventBus } from "../events.ts";
import { resolveConfigurationPath, validateConfigurationName } from "../esphome/configuration.ts";
import type { DeviceScanner } from "../esphome/device-scan.ts";
import { validatePort } from "../esphome/port.ts";
import type { SerialPort } from "../esphome/serial-ports.ts";
import type { FirmwareQueue } from "../firmware/queue.ts";
import type { Paths } from "../paths.ts";
import type { Problems } from "../problems.ts";
import type { DownloadTokens } from "./downloads.ts";
import type { RemoteBuild } from "../remote-build/remote-build.ts";
import { validateVersion } from "../esphome/release-numbers.ts";
import type { ManagedEsphome } from "../esphome/managed.ts";
import { pinSchema } from "../remote-build/transport/fingerprint.ts";
import { isValidDashboardId } from "../remote-build/transport/identity.ts";
import { classifyPort } from "../esphome/port.ts";
import type { DeviceTracker } from "../devices/tracker.ts";
import type { DeviceLogsDeps } from "../devices/device-logs.ts";

/** What command handlers may use. */
export interface ApiServices {
  remote: RemoteBuild;
  bus: EventBus;
  queue: FirmwareQueue;
  devices: DeviceScanner;
  paths: Paths;
  /** The builder's current problems (corrupt state moved aside, a full disk). */
  problems: Problems;
  downloads: DownloadTokens;
  serialPorts: () => Promise<SerialPort[]>;
  info: () => ServerInfo;
  /** The ESPHome jobs run (managed environments, or `--esphome`). */
  esphome: ManagedEsphome;
  /** Live device state (src/devices/). */
  deviceStates: DeviceTracker;
  /** The ESPHome and data dir `devices/logs` runs with. */
  deviceLogs: DeviceLogsDeps;
}

/** A stream sends frames `{message_id, event, data}` until it ends or the socket closes. */
export interface StreamSink {
  /**
   * `droppable`: skipped while the client is backlogged. `paced`: never
   * skipped here because the sender itself checks `backlogged()` (job output,
   * which notes its gaps); neither kind holds back the client's requests.
   */
  send(event: string, data: unknown, opts?: { droppable?: boolean; paced?: boolean }): void;
  /** True while the client is far behind (its socket holds too much unsent data). */
  backlogged(): boolean;
  /** Ends the stream (detaches its listeners). */
  end(): void;
  /** Registers cleanup that runs when the stream ends or the socket closes. */
  onEnd(cleanup: () => void): void;
}

/** The connection a command came from. */
export interface ClientContext {
  /** Unique per WebSocket connection. */
  readonly clientId: string;
  /** Runs `fn` when the connection closes; a later `fn` for the same `key` replaces the earlier one, so repeated calls hold one. */
  onClose(key: string, fn: () => void): void;
}

export interface Reply<S extends z.ZodType> {
  kind: "reply";
  args: S;
  run(args: z.infer<S>, services: ApiServices, client: ClientContext): unknown;
}

export interface Stream<S extends z.ZodType> {
  kind: "stream";
  args: S;
  run(args: z.infer<S>, services: ApiServices, sink: StreamSink, client: ClientContext): Promise<void> | void;
}

export type Command = Reply<z.ZodType> | Stream<z.ZodType>;

export function reply<S extends z.ZodType>(args: S, run: Reply<S>["run"]): Reply<S> {
  return { kind: "reply", args, run };
}

export function stream<S extends z.ZodType>(args: S, run: Stream<S>["run"]): Stream<S> {
  return { kind: "stream", args, run };
}

// ---- argument schemas ----

export const configuration = z.string().transform((value, ctx) => {
  try {
    return validateConfigurationName(value);
  } catch (err) {
    ctx.addIssue({ code: "custom", message: (err as Error).message });
    return z.NEVER;
  }
});

export const port = z.string().transform((value, ctx) => {
  try {
    return validatePort(value);
  } catch (err) {
    ctx.addIssue({ code: "custom", message: (err as Error).message });
    return z.NEVER;
  }
});

/** A builder's address: an IP or a host name (not a serial path or "OTA"). */
export const hostname = z.string().min(1).max(253).transform((value, ctx) => {
  try {
    validatePort(value);
  } catch (err) {
    ctx.addIssue({ code: "custom", message: (err as Error).message.replace(/^port/, "hostname") });
    return z.NEVER;
  }
  if (classifyPort(value) !== "network") {
    ctx.addIssue({ code: "custom", message: "hostname must be an IP address or a host name" });
    return z.NEVER;
  }
  return value;
});
/** A device's address as the owner sets it: an IP address or a host name (where probes, logs and installs go). */
export const deviceAddress = z.string().max(253).transform((value, ctx) => {
  const text = value.trim();
  let ok = text !== "";
  try {
    if (ok) validatePort(text);
  } catch {
    ok = false;
  }
  if (!ok || classifyPort(text) !== "network") {
    ctx.addIssue({ code: "custom", message: `address must be an IP address or a host name (such as 192.168.1.40 or kitchen.lan), got ${JSON.stringify(value.slice(0, 100))}; send null to use the YAML's` });
    return z.NEVER;
  }
  return text;
});
export const tcpPort = z.number().int().min(1).max(65535);
/** Either case in, canonical (lowercase) out: the rule of src/remote-build/transport/pin.ts. */
export const pin = pinSchema;
export const dashboardId = z.string().refine((v) => isValidDashboardId(v), "dashboard_id must be 1-64 base64url characters");

export const esphomeVersion = z.string().max(64).transform((value, ctx) => {
  try {
    return validateVersion(value);
  } catch (err) {
    ctx.addIssue({ code: "custom", message: (err as Error).message });
    return z.NEVER;
  }
});

export const jobId = z.string().regex(/^[0-9a-f]{12}$/, "job_id must be 12 lowercase hex characters");
export const none = z.strictObject({});

export async function requireConfiguration(services: ApiServices, name: string): Promise<void> {
  const file = resolveConfigurationPath(services.paths.configDir, name);
  try {
    const stat = await fs.stat(file);
    if (stat.isFile()) return;
  } catch {
    // reported below
  }
  throw notFound(`Configuration ${name} does not exist in ${services.paths.configDir}`);
}
