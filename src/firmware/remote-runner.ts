/**
 * Runs a job's phases for a job whose compile happens on a paired build
 * server (`source: "remote"`). The job stays one FirmwareJob: the build
 * server's output and state come back as this job's output, progress and
 * outcome, through the same queue as a local build.
 *
 * compile: bundle the YAML (`esphome bundle`), submit it over the peer link,
 *   relay output, and on success download the artifacts (a compile puts them
 *   in the local build folder; an install stages the firmware image
 *   StorageJSON names, `firmware.bin`, `<name>.bin` or the host `program`,
 *   for its upload).
 * upload: `esphome upload <yaml> --device <port> --file <staged image>`
 *   on this machine, through the same tracked subprocess as a local upload.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { bundleArgs, esphomeEnv, leaseEsphome, uploadArgs, type EsphomeCommand } from "../esphome/cli.ts";
import { errorMessage } from "../errors.ts";
import type { EventBus, Unsubscribe } from "../events.ts";
import { getLogger } from "../logger.ts";
import type { Paths } from "../paths.ts";
import { BUILD_INFO_NAME, METADATA_NAMES, PLATFORMIO_INI_NAME, readArtifacts, stageFirmware, type ReadArtifactsResult, type StagedFirmware } from "../remote-build/artifacts.ts";
import { DEVICE_STEM_RE } from "../remote-build/bundle.ts";
import type { Offloader } from "../remote-build/offloader.ts";
import { atomicWrite } from "../store.ts";
import { runEsphome } from "./local-runner.ts";
import { LineSplitter } from "./output.ts";
import { KILL_GRACE_MS, runTracked, type SpawnFn } from "./process.ts";
import type { JobRunner, PhaseContext, PhaseResult } from "./runner.ts";

const log = getLogger("remote-runner");

/** How long a cancelled remote build may take to confirm before we stop waiting. */
export const REMOTE_CANCEL_WAIT_MS = 10_000;
const BUNDLE_TIMEOUT_MS = 60_000;

export interface RemoteRunnerDeps {
  bus: EventBus;
  paths: Paths;
  offloader: Pick<Offloader, "session" | "label">;
  esphome: EsphomeCommand;
  spawn?: SpawnFn;
  killGraceMs?: number;
  cancelWaitMs?: number;
}

function notice(text: string): string {
  return `*** ${text} ***\n`;
}

export class RemoteRunner implements JobRunner {
  readonly #deps: RemoteRunnerDeps;
  /** Firmware an install's compile phase fetched, waiting for its upload phase. */
  readonly #staged = new Map<string, StagedFirmware>();
  readonly #subscriptions: Unsubscribe[] = [];

  constructor(deps: RemoteRunnerDeps) {
    this.#deps = deps;
  }

  /** Staged firmware goes away with its job, however the job ends. */
  start(): void {
    for (const name of ["job_completed", "job_failed", "job_cancelled"] as const) {
      this.#subscriptions.push(
        this.#deps.bus.on(name, ({ job }) => {
          void this.discard(job.job_id).catch((err: unknown) => { log.warning(`could not remove staged firmware: ${String(err)}`); });
        }),
      );
    }
  }

  async stop(): Promise<void> {
    for (const off of this.#subscriptions.splice(0)) off();
    for (const id of [...this.#staged.keys()]) await this.discard(id);
  }

  async runPhase(ctx: PhaseContext): Promise<PhaseResult> {
    switch (ctx.phase) {
      case "compile":
        return this.#compile(ctx);
      case "upload":
        return this.#upload(ctx);
      case "clean":
        return { exitCode: null, error: "remote build: clean runs on this machine only" };
    }
  }

  /** Removes staged firmware of a job that will not upload after all. */
  async discard(jobId: string): Promise<void> {
    const staged = this.#staged.get(jobId);
    this.#staged.delete(jobId);
    await staged?.cleanup();
  }

  async #bundle(ctx: PhaseContext, executable: string, yaml: string): Promise<Buffer | { error: string }> {
    await fs.mkdir(this.#deps.paths.tmpDir, { recursive: true });
    const dir = await fs.mkdtemp(path.join(this.#deps.paths.tmpDir, "bundle-"));
    const out = path.join(dir, `${path.basename(yaml).replace(/\.ya?ml$/i, "")}.esphomebundle.tar.gz`);
    const timeout = new AbortController();
    const timer = setTimeout(() => { timeout.abort(); }, BUNDLE_TIMEOUT_MS);
    try {
      ctx.onLine(notice("building the configuration bundle for the remote build"));
      const result = await runTracked({
        file: executable,
        args: bundleArgs(yaml, out),
        cwd: path.dirname(yaml),
        env: esphomeEnv(this.#deps.paths.jobDataDir(ctx.job)),
        signal: AbortSignal.any([ctx.signal, timeout.signal]),
        onLine: ctx.onLine,
        killGraceMs: this.#deps.killGraceMs ?? KILL_GRACE_MS,
        ...(this.#deps.spawn === undefined ? {} : { spawn: this.#deps.spawn }),
      });
      if (timeout.signal.aborted) return { error: `remote build: esphome bundle did not finish within ${BUNDLE_TIMEOUT_MS / 1000} s` };
      if (result.exitCode !== 0 || result.error !== null) {
        return { error: `remote build: esphome bundle failed (${result.error ?? `exit code ${result.exitCode}`})` };
      }
      return await fs.readFile(out);
    } finally {
      clearTimeout(timer);
      await fs.rm(dir, { recursive: true, force: true });
    }
  }

  async #compile(ctx: PhaseContext): Promise<PhaseResult> {
    const { job } = ctx;
    const pin = job.source_pin_sha256;
    const label = job.source_label || this.#deps.offloader.label(pin) || pin.slice(0, 8);
    const lease = await leaseEsphome(this.#deps.esphome);
    if ("error" in lease) return { exitCode: null, error: lease.error };
    const yaml = this.#deps.paths.jobYaml(job);

    // A function, not a property read: the signal changes while we await.
    const cancelled = (): boolean => ctx.signal.aborted;
    let bundle;
    try {
      bundle = await this.#bundle(ctx, lease.executable, yaml);
    } finally {
      lease.release();
    }
    if (cancelled()) return { exitCode: null, error: "cancelled" };
    if (!Buffer.isBuffer(bundle)) return { exitCode: null, error: bundle.error };

    const session = this.#deps.offloader.session(pin);
    if (session === undefined) return { exitCode: null, error: `remote build: build server ${label} is not connected` };

    // Listeners go on before the job is submitted, so no early frame is missed.
    const { bus } = this.#deps;
    const subscriptions: Unsubscribe[] = [];
    let settle: (outcome: { status: string; error: string }) => void = () => undefined;
    const outcome = new Promise<{ status: string; error: string }>((resolve) => { settle = resolve; });
    // The build server's lines are cut and split here exactly as local output is.
    const lines = new LineSplitter();
    const flushLines = (): void => {
      for (const line of lines.end()) ctx.onLine(line);
    };
    subscriptions.push(
      bus.on("offloader_job_output", (e) => {
        if (e.pin_sha256 !== pin || e.job_id !== job.job_id) return;
        for (const line of lines.push(e.line)) ctx.onLine(line);
      }),
      bus.on("offloader_job_state_changed", (e) => {
        if (e.pin_sha256 !== pin || e.job_id !== job.job_id) return;
        if (e.status === "completed" || e.status === "failed" || e.status === "cancelled") settle({ status: e.status, error: e.error_message });
      }),
      bus.on("offloader_peer_link_closed", (e) => {
        if (e.pin_sha256 !== pin) return;
        const why = e.error_detail === "" ? e.reason : `${e.reason}: ${e.error_detail}`;
        settle({ status: "lost", error: why });
      }),
    );
    const onAbort = (): void => {
      if (!session.cancelJob(job.job_id)) settle({ status: "cancelled", error: "" });
      setTimeout(() => { settle({ status: "cancelled", error: "" }); }, this.#deps.cancelWaitMs ?? REMOTE_CANCEL_WAIT_MS).unref();
    };
    try {
      ctx.onLine(notice(`building on ${label}`));
      let ack;
      try {
        ack = await session.submitJob(job.job_id, "compile", path.basename(yaml), bundle, path.basename(yaml).replace(/\.ya?ml$/i, ""));
      } catch (err) {
        return { exitCode: null, error: `remote build: ${errorMessage(err)}` };
      }
      if (!ack.accepted) return { exitCode: null, error: `remote build: ${label} refused the job (${ack.reason})` };
      if (cancelled()) onAbort();
      else ctx.signal.addEventListener("abort", onAbort, { once: true });

      const end = await outcome;
      flushLines();
      if (end.status === "lost") {
        ctx.onLine(notice(`remote build session closed (${end.error}); the build was aborted`));
        return { exitCode: null, error: `remote build: peer-link session with ${label} lost (${end.error})` };
      }
      if (end.status === "cancelled") return { exitCode: null, error: end.error || "cancelled" };
      if (end.status === "failed") return { exitCode: null, error: `remote build on ${label}: ${end.error || "compile failed"}` };
      if (cancelled()) return { exitCode: null, error: "cancelled" };

      // Completed: fetch what was built.
      let artifacts;
      try {
        ctx.onLine(notice(`downloading the firmware from ${label}`));
        // An install flashes the image StorageJSON names over the network (always sent);
        // a compile keeps every image.
        const wanted = job.job_type === "compile" ? undefined : [];
        artifacts = await readArtifacts(await session.downloadArtifacts(job.job_id, wanted));
      } catch (err) {
        return { exitCode: null, error: `remote build: downloading the artifacts from ${label} failed: ${errorMessage(err)}` };
      }
      try {
        if (job.job_type === "compile") {
          await this.#materialise(job.configuration, artifacts);
        } else {
          await this.discard(job.job_id);
          // The upload needs the app image only (`--file` over the network).
          const image = { name: path.posix.basename(artifacts.firmwareName), data: artifacts.firmware };
          this.#staged.set(job.job_id, await stageFirmware(image, this.#deps.paths.tmpDir));
        }
      } catch (err) {
        return { exitCode: null, error: `remote build: the artifacts from ${label} could not be used: ${errorMessage(err)}` };
      }
      return { exitCode: 0, error: null };
    } finally {
      ctx.signal.removeEventListener("abort", onAbort);
      for (const off of subscriptions) off();
      flushLines();
    }
  }

  /**
   * Puts a remote compile's build where a local compile leaves it, as the
   * upstream offloader does: every image at its path under this machine's build
   * folder, StorageJSON re-rooted there, so downloads and a later upload find
   * them. Images from older builders of ours come flat and go beside the
   * firmware image.
   */
  async #materialise(configuration: string, artifacts: ReadArtifactsResult): Promise<void> {
    const { paths } = this.#deps;
    const { storage } = artifacts;
    const name = typeof storage["name"] === "string" && DEVICE_STEM_RE.test(storage["name"]) ? storage["name"] : configuration.replace(/\.ya?ml$/i, "");
    const buildDir = paths.buildDir(name);
    const firmwarePath = path.join(buildDir, ...artifacts.firmwareInBuild.split("/"));
    const flat = artifacts.firmwareName !== artifacts.firmwareInBuild;
    for (const [member, data] of artifacts.files) {
      if (METADATA_NAMES.has(member)) continue;
      const besideFirmware = flat && member !== PLATFORMIO_INI_NAME && member !== BUILD_INFO_NAME;
      // Member paths were checked by the tar reader (relative, no `..`).
      const target = besideFirmware ? path.join(path.dirname(firmwarePath), member) : path.join(buildDir, ...member.split("/"));
      await atomicWrite(target, data);
    }
    await atomicWrite(paths.storageJson(configuration), JSON.stringify({ ...storage, name, build_path: buildDir, firmware_bin_path: firmwarePath }, null, 2));
  }

  async #upload(ctx: PhaseContext): Promise<PhaseResult> {
    const { job } = ctx;
    const staged = this.#staged.get(job.job_id);
    if (staged === undefined) return { exitCode: null, error: "remote build: the firmware from the build server is gone (was the builder restarted?); install again" };
    try {
      return await runEsphome(this.#deps, ctx, uploadArgs(this.#deps.paths.jobYaml(job), job.port, staged.firmwarePath));
    } finally {
      await this.discard(job.job_id).catch((err: unknown) => { log.warning(`could not remove staged firmware: ${String(err)}`); });
    }
  }
}

/** Sends each job's phases to the runner for its `source`. */
export class SourceRoutedRunner implements JobRunner {
  readonly #local: JobRunner;
  readonly #remote: JobRunner;

  constructor(local: JobRunner, remote: JobRunner) {
    this.#local = local;
    this.#remote = remote;
  }

  runPhase(ctx: PhaseContext): Promise<PhaseResult> {
    return (ctx.job.source === "remote" && ctx.phase !== "clean" ? this.#remote : this.#local).runPhase(ctx);
  }
}
