/** The panel API's firmware commands: jobs (enqueue, bulk, cancel, history), their output and binaries. */
import { z } from "zod";
import { BULK_FILTERS, type BulkFilter } from "./wire.ts";
import { BuilderError, invalidArgs, notFound } from "../errors.ts";
import { isSerialPort } from "../esphome/port.ts";
import { BINARY_FILES, listBinaries, type FirmwareBinary } from "../firmware/binaries.ts";
import { JOB_STATUSES, isTerminal, type FirmwareJob, type JobType } from "../firmware/job.ts";
import { type ApiServices, type Command, type StreamSink, configuration, jobId, none, port, reply, requireConfiguration, stream } from "./command-kit.ts";

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

export const FIRMWARE_COMMANDS = {
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
} satisfies Record<string, Command>;

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
