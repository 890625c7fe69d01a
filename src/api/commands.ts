/**
 * The panel API's command table. Every command names its argument schema; the
 * dispatcher validates each inbound message against it before the handler
 * runs, so handlers only ever see well-typed arguments.
 */
import { promises as fs } from "node:fs";
import { z } from "zod";
import { SUBSCRIBED_EVENTS, type InitialState, type ServerInfo } from "./wire.ts";
import { BuilderError, invalidArgs, notFound } from "../errors.ts";
import type { EventBus, EventMap, EventName } from "../events.ts";
import { resolveConfigurationPath, validateConfigurationName } from "../esphome/configuration.ts";
import type { DeviceScanner } from "../esphome/device-scan.ts";
import { isSerialPort, uploadTarget, validatePort } from "../esphome/port.ts";
import type { SerialPort } from "../esphome/serial-ports.ts";
import { BINARY_FILES, listBinaries, type FirmwareBinary } from "../firmware/binaries.ts";
import { JOB_STATUSES, isTerminal, type FirmwareJob, type JobType } from "../firmware/job.ts";
import type { FirmwareQueue } from "../firmware/queue.ts";
import type { Paths } from "../paths.ts";
import type { Problems } from "../problems.ts";
import type { DownloadTokens } from "./downloads.ts";
import type { RemoteBuild } from "../remote-build/remote-build.ts";
import { pinSchema } from "../remote-build/fingerprint.ts";
import { isValidDashboardId } from "../remote-build/identity.ts";
import { classifyPort } from "../esphome/port.ts";


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
const tcpPort = z.number().int().min(1).max(65535);
/** Either case in, canonical (lowercase) out: the rule of src/remote-build/pin.ts. */
const pin = pinSchema;
const dashboardId = z.string().refine((v) => isValidDashboardId(v), "dashboard_id must be 1-64 base64url characters");

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

async function enqueue(
  services: ApiServices,
  type: JobType,
  args: { configuration: string; port?: string | undefined; force_local?: boolean | undefined },
): Promise<FirmwareJob> {
  await requireConfiguration(services, args.configuration);
  const port = args.port === undefined ? undefined : uploadTarget(args.port, services.devices.get(args.configuration));
  return services.queue.enqueue({
    configuration: args.configuration,
    job_type: type,
    ...(port === undefined ? {} : { port }),
    ...(args.force_local === undefined ? {} : { force_local: args.force_local }),
  });
}



const DROPPABLE = new Set<EventName>(["job_output", "job_progress"]);

export const COMMANDS = {
  ping: reply(none, () => ({ pong: true })),

  "config/info": reply(none, (_args, s) => s.info()),

  "config/serial_ports": reply(none, (_args, s) => s.serialPorts()),

  "devices/list": reply(none, (_args, s) => s.devices.list()),

  "problems/list": reply(none, (_args, s) => s.problems.list()),

  "problems/dismiss": reply(z.strictObject({ id: z.string().min(1).max(8192) }), (args, s) => ({ dismissed: s.problems.dismiss(args.id) })),

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
    }),
    async (args, s) => {
      if (args.port !== undefined && isSerialPort(args.port)) {
        throw invalidArgs("A bulk install cannot use one serial port for several devices; use OTA or leave port empty");
      }
      const names = args.configurations === "all" ? s.devices.list().map((d) => d.configuration) : [...new Set(args.configurations)];
      for (const name of names) await requireConfiguration(s, name);
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

  "remote_build/set_settings": reply(z.strictObject({ enabled: z.boolean() }), async (args, s) => {
    await s.remote.receiver.setEnabled(args.enabled);
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

  "remote_build/set_offloader_settings": reply(z.strictObject({ remote_builds_enabled: z.boolean() }), (args, s) => {
    s.remote.offloader.setRemoteBuildsEnabled(args.remote_builds_enabled);
    return s.remote.offloader.settings();
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

