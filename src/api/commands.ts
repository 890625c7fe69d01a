/**
 * The panel API's command table. Every command names its argument schema; the
 * dispatcher validates each inbound message against it before the handler
 * runs, so handlers only ever see well-typed arguments.
 */
import { promises as fs } from "node:fs";
import { z } from "zod";
import { BULK_FILTERS, LOCAL_BUILDS, SUBSCRIBED_EVENTS, VERSION_POLICIES, type BulkFilter, type InitialState, type ServerInfo } from "./wire.ts";
import { BuilderError, ErrorCode, invalidArgs, notFound } from "../errors.ts";
import type { EventBus, EventMap, EventName } from "../events.ts";
import { resolveConfigurationPath, validateConfigurationName } from "../esphome/configuration.ts";
import type { DeviceScanner } from "../esphome/device-scan.ts";
import { isSerialPort, validatePort } from "../esphome/port.ts";
import type { SerialPort } from "../esphome/serial-ports.ts";
import { BINARY_FILES, listBinaries, type FirmwareBinary } from "../firmware/binaries.ts";
import { JOB_STATUSES, isTerminal, type FirmwareJob, type JobType } from "../firmware/job.ts";
import type { FirmwareQueue } from "../firmware/queue.ts";
import type { Paths } from "../paths.ts";
import type { Problems } from "../problems.ts";
import type { DownloadTokens } from "./downloads.ts";
import type { RemoteBuild } from "../remote-build/remote-build.ts";
import { validateVersion } from "../esphome/release-numbers.ts";
import type { ManagedEsphome } from "../esphome/managed.ts";
import { pinSchema } from "../remote-build/fingerprint.ts";
import { isValidDashboardId } from "../remote-build/identity.ts";
import { classifyPort } from "../esphome/port.ts";
import type { DeviceTracker } from "../devices/tracker.ts";
import { streamDeviceLogs, type DeviceLogsDeps } from "../devices/device-logs.ts";


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

interface Reply<S extends z.ZodType> {
  kind: "reply";
  args: S;
  run(args: z.infer<S>, services: ApiServices, client: ClientContext): unknown;
}

interface Stream<S extends z.ZodType> {
  kind: "stream";
  args: S;
  run(args: z.infer<S>, services: ApiServices, sink: StreamSink, client: ClientContext): Promise<void> | void;
}

export type Command = Reply<z.ZodType> | Stream<z.ZodType>;

function reply<S extends z.ZodType>(args: S, run: Reply<S>["run"]): Reply<S> {
  return { kind: "reply", args, run };
}

function stream<S extends z.ZodType>(args: S, run: Stream<S>["run"]): Stream<S> {
  return { kind: "stream", args, run };
}

// ---- argument schemas ----

const configuration = z.string().transform((value, ctx) => {
  try {
    return validateConfigurationName(value);
  } catch (err) {
    ctx.addIssue({ code: "custom", message: (err as Error).message });
    return z.NEVER;
  }
});

const port = z.string().transform((value, ctx) => {
  try {
    return validatePort(value);
  } catch (err) {
    ctx.addIssue({ code: "custom", message: (err as Error).message });
    return z.NEVER;
  }
});

/** A builder's address: an IP or a host name (not a serial path or "OTA"). */
const hostname = z.string().min(1).max(253).transform((value, ctx) => {
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
const deviceAddress = z.string().max(253).transform((value, ctx) => {
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
const tcpPort = z.number().int().min(1).max(65535);
/** Either case in, canonical (lowercase) out: the rule of src/remote-build/pin.ts. */
const pin = pinSchema;
const dashboardId = z.string().refine((v) => isValidDashboardId(v), "dashboard_id must be 1-64 base64url characters");

const esphomeVersion = z.string().max(64).transform((value, ctx) => {
  try {
    return validateVersion(value);
  } catch (err) {
    ctx.addIssue({ code: "custom", message: (err as Error).message });
    return z.NEVER;
  }
});

const jobId = z.string().regex(/^[0-9a-f]{12}$/, "job_id must be 12 lowercase hex characters");
const none = z.strictObject({});

async function requireConfiguration(services: ApiServices, name: string): Promise<void> {
  const file = resolveConfigurationPath(services.paths.configDir, name);
  try {
    const stat = await fs.stat(file);
    if (stat.isFile()) return;
  } catch {
    // reported below
  }
  throw notFound(`Configuration ${name} does not exist in ${services.paths.configDir}`);
}

/** The device's name from its YAML, else the file stem (what downloads are named after). */
export function deviceName(services: ApiServices, configurationName: string): string {
  return services.devices.get(configurationName)?.name ?? configurationName.replace(/\.ya?ml$/, "");
}

/**
 * The port an OTA job gets when none was given: the device's address when it is
 * not the YAML's own (the owner set one, or a host-platform device at
 * 127.0.0.1), else none (ESPHome resolves the YAML's address itself).
 */
function defaultPort(services: ApiServices, type: JobType, configuration: string): string | undefined {
  if (type !== "install" && type !== "upload") return undefined;
  const state = services.deviceStates.get(configuration);
  return state === undefined || state.address_source === "yaml" ? undefined : state.address;
}

/** Which of `names` a bulk install's filter keeps. */
export function bulkSelect(services: ApiServices, names: readonly string[], filter: BulkFilter): string[] {
  if (filter === "all") return [...names];
  if (filter === "failed") {
    const newest = new Map<string, FirmwareJob>();
    for (const job of services.queue.list()) {
      if (!isTerminal(job.status) || (job.job_type !== "install" && job.job_type !== "upload")) continue;
      const seen = newest.get(job.configuration);
      if (seen === undefined || (job.completed_at ?? "") > (seen.completed_at ?? "")) newest.set(job.configuration, job);
    }
    return names.filter((n) => newest.get(n)?.status === "failed");
  }
  return names.filter((n) => {
    const state = services.deviceStates.get(n);
    if (state === undefined) return false;
    return filter === "online" ? state.status === "online" : state.update_reasons.length > 0;
  });
}

async function enqueue(
  services: ApiServices,
  type: JobType,
  args: { configuration: string; port?: string | undefined; force_local?: boolean | undefined },
): Promise<FirmwareJob> {
  await requireConfiguration(services, args.configuration);
  // `OTA` (Home Assistant's update entity always sends it) is ESPHome's "resolve it from the
  // YAML", which fails for a host-platform YAML: the device's known address goes instead.
  const port = args.port === undefined || args.port === "OTA" ? (defaultPort(services, type, args.configuration) ?? args.port) : args.port;
  return services.queue.enqueue({
    configuration: args.configuration,
    job_type: type,
    ...(port === undefined ? {} : { port }),
    ...(args.force_local === undefined ? {} : { force_local: args.force_local }),
  });
}



const DROPPABLE = new Set<EventName>(["job_output", "job_progress"]);

/** Open `devices/logs` streams by `<client>\0<configuration>`: how to stop each. */
const LOG_STREAMS = new Map<string, () => void>();

export const COMMANDS = {
  ping: reply(none, () => ({ pong: true })),

  "config/info": reply(none, (_args, s) => s.info()),

  "config/serial_ports": reply(none, (_args, s) => s.serialPorts()),

  "devices/list": reply(none, (_args, s) => s.devices.list()),

  "devices/states": reply(none, (_args, s) => s.deviceStates.list()),

  "devices/set_address": reply(z.strictObject({ configuration, address: deviceAddress.nullable() }), (args, s) =>
    s.deviceStates.setAddress(args.configuration, args.address),
  ),

  "devices/probe": reply(z.strictObject({ configuration }), (args, s) => {
    if (s.deviceStates.get(args.configuration) === undefined) throw notFound(`No device with configuration ${args.configuration}`);
    s.deviceStates.probeNow(args.configuration);
    return { probing: true };
  }),

  "devices/logs": stream(z.strictObject({ configuration }), async (args, s, sink, client) => {
    await requireConfiguration(s, args.configuration);
    const state = s.deviceStates.get(args.configuration);
    if (state === undefined) throw notFound(`No device with configuration ${args.configuration}`);
    const abort = new AbortController();
    // One log stream per device and connection: a new one replaces the old; `devices/logs_stop` ends it.
    const key = `${client.clientId}\u0000${args.configuration}`;
    LOG_STREAMS.get(key)?.();
    const stop = (): void => {
      abort.abort();
      sink.end();
    };
    LOG_STREAMS.set(key, stop);
    sink.onEnd(() => {
      abort.abort();
      if (LOG_STREAMS.get(key) === stop) LOG_STREAMS.delete(key);
    });
    sink.send("started", { address: state.address });
    const file = resolveConfigurationPath(s.paths.configDir, args.configuration);
    void streamDeviceLogs(
      s.deviceLogs,
      file,
      state.address,
      { line: (text) => { sink.send("line", { line: text }, { paced: true }); }, backlogged: () => sink.backlogged() },
      abort.signal,
    ).then((result) => {
      if (abort.signal.aborted) return;
      sink.send("ended", result);
      sink.end();
    });
  }),

  "problems/list": reply(none, (_args, s) => s.problems.list()),

  "problems/dismiss": reply(z.strictObject({ id: z.string().min(1).max(8192) }), (args, s) => ({ dismissed: s.problems.dismiss(args.id) })),

  "devices/logs_stop": reply(z.strictObject({ configuration }), (args, _s, client) => {
    const stop = LOG_STREAMS.get(`${client.clientId}\u0000${args.configuration}`);
    stop?.();
    return { stopped: stop !== undefined };
  }),

  "firmware/compile": reply(
    z.strictObject({ configuration, force_local: z.boolean().optional() }),
    (args, s) => enqueue(s, "compile", args),
  ),

  "firmware/upload": reply(
    z.strictObject({ configuration, port: port.optional() }),
    (args, s) => enqueue(s, "upload", args),
  ),

  "firmware/install": reply(
    z.strictObject({ configuration, port: port.optional(), force_local: z.boolean().optional() }),
    (args, s) => enqueue(s, "install", args),
  ),

  "firmware/install_bulk": reply(
    z.strictObject({
      configurations: z.union([z.literal("all"), z.array(configuration).min(1).max(1000)]),
      port: port.optional(),
      /** Which of them: every one (default), the ones with an update available, the online ones, the ones whose last install failed. */
      filter: z.enum(BULK_FILTERS).optional(),
    }),
    async (args, s) => {
      if (args.port !== undefined && isSerialPort(args.port)) {
        throw invalidArgs("A bulk install cannot use one serial port for several devices; use OTA or leave port empty");
      }
      const named = args.configurations === "all" ? s.devices.list().map((d) => d.configuration) : [...new Set(args.configurations)];
      for (const name of named) await requireConfiguration(s, name);
      const names = bulkSelect(s, named, args.filter ?? "all");
      const jobs: FirmwareJob[] = [];
      for (const name of names) {
        try {
          jobs.push(await enqueue(s, "install", { configuration: name, port: args.port }));
        } catch (err) {
          // A failure part-way (the disk filled up): say which installs are queued and which are not.
          if (!(err instanceof BuilderError) || jobs.length === 0) throw err;
          const queued = jobs.map((j) => j.configuration).join(", ");
          throw new BuilderError(err.code, `${err.message}. Queued before this: ${queued}; not queued: ${names.slice(jobs.length).join(", ")}`, { cause: err });
        }
      }
      return jobs;
    },
  ),

  "firmware/clean": reply(z.strictObject({ configuration }), (args, s) => enqueue(s, "clean", args)),

  /** Wipes this builder's build folders for all devices (one `clean_all` job). */
  "firmware/clean_all": reply(none, (_args, s) => s.queue.enqueue({ configuration: "", job_type: "clean_all" })),

  "firmware/cancel": reply(z.strictObject({ job_id: jobId }), (args, s) => s.queue.cancel(args.job_id)),

  "firmware/get_jobs": reply(
    z.strictObject({ status: z.enum(JOB_STATUSES).optional(), configuration: z.string().max(255).optional() }),
    (args, s) =>
      s.queue
        .list()
        .filter((j) => (args.status === undefined || j.status === args.status) && (args.configuration === undefined || j.configuration === args.configuration)),
  ),

  "firmware/get_job": reply(z.strictObject({ job_id: jobId }), async (args, s) => {
    const job = s.queue.get(args.job_id);
    if (job === undefined) throw notFound(`Job not found: ${args.job_id}`);
    return { ...job, output: await s.queue.output(args.job_id) };
  }),

  "firmware/clear_history": reply(none, async (_args, s) => ({ removed: await s.queue.clearHistory() })),

  "firmware/follow_job": stream(z.strictObject({ job_id: jobId, batch: z.boolean().optional() }), async (args, s, sink) => {
    const job = s.queue.get(args.job_id);
    if (job === undefined) throw notFound(`Job not found: ${args.job_id}`);
    const out = new OutputForwarder(sink, args.batch === true);
    const sendResult = (j: FirmwareJob): void => {
      out.flush();
      sink.send("result", { status: j.status, exit_code: j.exit_code, error: j.error });
      sink.end();
    };
    const live = s.queue.liveOutput(args.job_id);
    if (live === null || isTerminal(job.status)) {
      for (const line of await s.queue.output(args.job_id)) out.line(line);
      sendResult(s.queue.get(args.job_id) ?? job);
      return;
    }
    // Snapshot and attach in one synchronous step: no line is lost or sent twice.
    for (const line of live) out.line(line);
    const id = args.job_id;
    sink.onEnd(() => { out.stop(); });
    sink.onEnd(s.bus.on("job_output", (e) => { if (e.job_id === id) out.line(e.line); }));
    sink.onEnd(s.bus.on("job_progress", (e) => { if (e.job_id === id) sink.send("progress", { progress: e.progress }, { droppable: true }); }));
    for (const name of ["job_completed", "job_failed", "job_cancelled"] as const) {
      sink.onEnd(s.bus.on(name, (e) => { if (e.job.job_id === id) sendResult(e.job); }));
    }
  }),

  "firmware/get_binaries": reply(z.strictObject({ configuration }), async (args, s): Promise<FirmwareBinary[]> => {
    await requireConfiguration(s, args.configuration);
    return listBinaries(s.paths, args.configuration, deviceName(s, args.configuration));
  }),

  "firmware/download_token": reply(
    z.strictObject({ configuration, file: z.enum(BINARY_FILES as [string, ...string[]]) }),
    async (args, s) => {
      await requireConfiguration(s, args.configuration);
      const available = await listBinaries(s.paths, args.configuration, deviceName(s, args.configuration));
      const binary = available.find((b) => b.file === args.file);
      if (binary === undefined) {
        throw notFound(`${args.file} has not been built for ${args.configuration}; compile it first`);
      }
      const grant = s.downloads.issue({ configuration: args.configuration, file: args.file });
      return { ...grant, filename: binary.download_name, url: `api/firmware/download?token=${grant.token}` };
    },
  ),

  "remote_build/get_identity": reply(none, (_args, s) => s.remote.identityView()),

  "remote_build/rotate_identity": reply(none, (_args, s) => s.remote.rotateIdentity()),

  "remote_build/get_settings": reply(none, (_args, s) => s.remote.receiver.settings()),

  "remote_build/set_settings": reply(z.strictObject({ enabled: z.boolean().optional(), version_policy: z.enum(VERSION_POLICIES).optional() }), async (args, s) => {
    if (args.version_policy !== undefined) s.remote.receiver.setVersionPolicy(args.version_policy);
    if (args.enabled !== undefined) await s.remote.receiver.setEnabled(args.enabled);
    return s.remote.receiver.settings();
  }),

  "remote_build/set_pairing_window": reply(z.strictObject({ open: z.boolean() }), (args, s, client) => {
    const result = s.remote.receiver.setPairingWindow(client.clientId, args.open);
    if (args.open) client.onClose("pairing_window", () => { s.remote.receiver.clientGone(client.clientId); });
    return result;
  }),

  "remote_build/approve_peer": reply(z.strictObject({ dashboard_id: dashboardId }), async (args, s) => {
    const peer = s.remote.receiver.approve(args.dashboard_id);
    await s.remote.receiver.flush();
    return peer;
  }),

  "remote_build/remove_peer": reply(z.strictObject({ dashboard_id: dashboardId }), async (args, s) => {
    s.remote.receiver.remove(args.dashboard_id);
    await s.remote.receiver.flush();
    return { removed: true };
  }),

  "remote_build/dismiss_problem": reply(z.strictObject({ id: z.string().min(1).max(64) }), (args, s) => {
    s.remote.dismissProblem(args.id);
    return { dismissed: true };
  }),

  "remote_build/preview_pair": reply(z.strictObject({ hostname, port: tcpPort }), (args, s) => s.remote.offloader.previewPair(args.hostname, args.port)),

  "remote_build/request_pair": reply(
    z.strictObject({ hostname, port: tcpPort, pin_sha256: pin, label: z.string().max(128).optional() }),
    (args, s) => s.remote.offloader.requestPair(args.hostname, args.port, args.pin_sha256, args.label),
  ),

  "remote_build/get_offloader_settings": reply(none, (_args, s) => s.remote.offloader.settings()),

  "remote_build/set_offloader_settings": reply(z.strictObject({ remote_builds_enabled: z.boolean().optional(), version_match_policy: z.enum(VERSION_POLICIES).optional() }), (args, s) => {
    if (args.version_match_policy !== undefined) s.remote.offloader.setVersionMatchPolicy(args.version_match_policy);
    if (args.remote_builds_enabled !== undefined) s.remote.offloader.setRemoteBuildsEnabled(args.remote_builds_enabled);
    return s.remote.offloader.settings();
  }),

  "remote_build/set_local_builds": reply(z.strictObject({ local_builds: z.enum(LOCAL_BUILDS) }), (args, s) => {
    s.remote.placement.set(args.local_builds);
    return { local_builds: s.remote.placement.localBuilds };
  }),

  /** Wipes the folders this builder's builds use on a paired build server (`reset_build_env`), as a job here. */
  "remote_build/reset_build_env": reply(z.strictObject({ pin_sha256: pin }), (args, s) => {
    const pairing = s.remote.offloader.pairings().find((p) => p.pin_sha256 === args.pin_sha256);
    if (pairing === undefined) throw notFound(`No pairing with ${args.pin_sha256}`);
    if (!pairing.connected) throw new BuilderError(ErrorCode.Unavailable, `${pairing.label} is not connected; reset its build environment once it is`);
    if (!pairing.reset_build_env_supported) {
      throw new BuilderError(ErrorCode.Unavailable, `${pairing.label} does not support resetting its build environment remotely; update it, or clean it there`);
    }
    return s.queue.enqueue({ configuration: "", job_type: "clean_all", source: "remote", source_pin_sha256: pairing.pin_sha256, source_label: pairing.label });
  }),

  "remote_build/set_pairing_enabled": reply(z.strictObject({ pin_sha256: pin, enabled: z.boolean() }), (args, s) =>
    s.remote.offloader.setPairingEnabled(args.pin_sha256, args.enabled),
  ),

  "remote_build/unpair": reply(z.strictObject({ pin_sha256: pin }), (args, s) => {
    s.remote.offloader.unpair(args.pin_sha256);
    return { removed: true };
  }),

  "remote_build/edit_pairing_endpoint": reply(z.strictObject({ pin_sha256: pin, hostname, port: tcpPort }), (args, s) =>
    s.remote.offloader.editEndpoint(args.pin_sha256, args.hostname, args.port),
  ),

  "esphome/status": reply(none, (_args, s) => s.esphome.status()),

  "esphome/versions": reply(z.strictObject({ prereleases: z.boolean().optional() }), (args, s) => s.esphome.versions(args.prereleases === true)),

  "esphome/install": reply(z.strictObject({ version: esphomeVersion }), (args, s) => s.esphome.install(args.version)),

  "esphome/remove": reply(z.strictObject({ version: esphomeVersion }), (args, s) => s.esphome.remove(args.version)),

  "esphome/log": reply(none, (_args, s) => {
    const state = s.esphome.status().state;
    return { version: state.status === "idle" ? null : state.version, lines: s.esphome.provisionLog() };
  }),

  subscribe_events: stream(z.strictObject({ job_output: z.boolean().optional() }), (args, s, sink) => {
    const names = args.job_output === false ? SUBSCRIBED_EVENTS.filter((n) => n !== "job_output") : SUBSCRIBED_EVENTS;
    // Listeners first, then the snapshot: nothing that happens in between is lost.
    const buffered: [EventName, unknown][] = [];
    let ready = false;
    for (const name of names) {
      sink.onEnd(
        s.bus.on(name, (payload: EventMap[typeof name]) => {
          if (ready) sink.send(name, payload, { droppable: DROPPABLE.has(name) });
          else buffered.push([name, payload]);
        }),
      );
    }
    const state: InitialState = {
      jobs: s.queue.list(),
      devices: s.devices.list(),
      queue_status: s.queue.status(),
      server: s.info(),
      problems: s.problems.list(),
      remote_build: s.remote.snapshot(),
      esphome: s.esphome.status(),
      device_states: s.deviceStates.list(),
    };
    sink.send("initial_state", state);
    ready = true;
    for (const [name, payload] of buffered) sink.send(name, payload);
  }),
} satisfies Record<string, Command>;

export type CommandName = keyof typeof COMMANDS;

const BATCH_LINES = 500;
const BATCH_MS = 25;

/**
 * Sends a job's output to one viewer: line by line (`output {line}`) or in
 * batches (`output_batch {lines}`, at most every 25 ms or 500 lines). A viewer
 * that falls far behind is not sent more until it catches up; it then gets one
 * line saying how many it missed, so a gap is never silent.
 */
class OutputForwarder {
  readonly #sink: StreamSink;
  readonly #batch: boolean;
  #pending: string[] = [];
  #timer: NodeJS.Timeout | undefined;
  #skipped = 0;

  constructor(sink: StreamSink, batch: boolean) {
    this.#sink = sink;
    this.#batch = batch;
  }

  line(line: string): void {
    if (this.#sink.backlogged()) {
      this.#skipped += 1;
      return;
    }
    if (this.#skipped > 0) {
      const notice = `*** ${this.#skipped} line(s) not shown here: this viewer fell behind (the job's log has them) ***\n`;
      this.#skipped = 0;
      this.line(notice);
    }
    if (!this.#batch) {
      this.#sink.send("output", { line }, { paced: true });
      return;
    }
    this.#pending.push(line);
    if (this.#pending.length >= BATCH_LINES) this.flush();
    else this.#timer ??= setTimeout(() => { this.flush(); }, BATCH_MS);
  }

  flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending.length === 0) return;
    this.#sink.send("output_batch", { lines: this.#pending }, { paced: true });
    this.#pending = [];
  }

  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

export const COMMAND_NAMES = Object.keys(COMMANDS) as CommandName[];

