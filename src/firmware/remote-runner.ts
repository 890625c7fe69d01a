/**
 * Runs a job's phases for a job whose compile happens on a paired build
 * server (`source: "remote"`). The job stays one FirmwareJob: the build
 * server's output and state come back as this job's output, progress and
 * outcome, through the same queue as a local build.
 *
 * compile: bundle the YAML (`esphome bundle`), submit it over the peer link,
 *   relay output, and on success download the artifacts and put them in the
 *   local build tree as the upstream offloader does (images at their build
 *   paths, StorageJSON and idedata re-rooted here: src/remote-build/archives/materialise.ts).
 * upload: `esphome upload <yaml> --device <port>` on this machine, through the
 *   same tracked subprocess as a local upload; with no `--file`, ESPHome finds
 *   what it needs in the build tree, so a serial port flashes the whole image
 *   set (bootloader, partitions, OTA data, firmware at their offsets).
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { bundleArgs, esphomeEnv, leaseEsphome, uploadArgs, type EsphomeCommand } from "../esphome/cli.ts";
import { BuilderError, ErrorCode, errorMessage } from "../errors.ts";
import { normalizeVersion } from "../esphome/version-policy.ts";
import type { EventBus } from "../events.ts";
import type { Paths } from "../paths.ts";
import { readArtifacts } from "../remote-build/archives/artifacts.ts";
import { materialiseArtifacts } from "../remote-build/archives/materialise.ts";
import type { Offloader } from "../remote-build/offloader/offloader.ts";
import { runEsphome } from "./local-runner.ts";
import { LineSplitter } from "./output.ts";
import { KILL_GRACE_MS, runTracked, type SpawnFn } from "./process.ts";
import type { JobRunner, PhaseContext, PhaseResult } from "./runner.ts";

/** How long a cancelled remote build may take to confirm before we stop waiting. */
export const REMOTE_CANCEL_WAIT_MS = 10_000;
const BUNDLE_TIMEOUT_MS = 60_000;

export interface RemoteRunnerDeps {
  /** Not read: each job's frames come through its `RemoteJob` handle (kept optional for callers that pass the bus). */
  bus?: EventBus;
  paths: Paths;
  offloader: Pick<Offloader, "session" | "label">;
  esphome: EsphomeCommand;
  /** This builder's ESPHome version, sent as `target_esphome_version` ("" or null: not sent). */
  esphomeVersion?: () => string | null;
  spawn?: SpawnFn;
  killGraceMs?: number;
  cancelWaitMs?: number;
}

function notice(text: string): string {
  return `*** ${text} ***\n`;
}

/** A failure because the session went away marks the build server lost (the compile is dispatched again). */
/** The build server's refusal to send a completed build's artifacts (`artifacts_end` pack_failed or build_dir_missing). */
function cannotSendBuild(err: unknown): boolean {
  return err instanceof BuilderError && (err.code === ErrorCode.PackFailed || err.code === ErrorCode.BuildDirMissing);
}

function lostIf(err: unknown): { buildServerLost?: true } {
  return err instanceof BuilderError && err.code === ErrorCode.SessionLost ? { buildServerLost: true } : {};
}

export class RemoteRunner implements JobRunner {
  readonly #deps: RemoteRunnerDeps;

  constructor(deps: RemoteRunnerDeps) {
    this.#deps = deps;
  }

  /** Nothing to set up: what a remote compile fetched lives in the build tree, like a local build. */
  start(): void {
    // (kept for the composition root's lifecycle)
  }

  stop(): Promise<void> {
    return Promise.resolve();
  }

  async runPhase(ctx: PhaseContext): Promise<PhaseResult> {
    switch (ctx.phase) {
      case "compile":
        return this.#compile(ctx);
      case "upload":
        return this.#upload(ctx);
      case "clean":
        if (ctx.job.job_type === "clean_all") return this.#resetBuildEnv(ctx);
        return { exitCode: null, error: "remote build: clean runs on this machine only" };
    }
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
    if (session === undefined) return { exitCode: null, error: `remote build: build server ${label} is not connected`, buildServerLost: true };
    const ours = normalizeVersion(this.#deps.esphomeVersion?.() ?? "");

    // The handle is taken before the job is submitted, so no early frame is missed.
    const remoteJob = session.track(job.job_id);
    // The build server's lines are cut and split here exactly as local output is.
    const lines = new LineSplitter();
    const flushLines = (): void => {
      for (const line of lines.end()) ctx.onLine(line);
    };
    remoteJob.onOutput((chunk) => {
      for (const line of lines.push(chunk)) ctx.onLine(line);
    });
    const onAbort = (): void => { remoteJob.cancel(this.#deps.cancelWaitMs ?? REMOTE_CANCEL_WAIT_MS); };
    try {
      ctx.onLine(notice(`building on ${label}`));
      let ack;
      try {
        const device = path.basename(yaml).replace(/\.ya?ml$/i, "");
        ack = await session.submitJob(job.job_id, "compile", path.basename(yaml), bundle, device, device, ours);
      } catch (err) {
        return { exitCode: null, error: `remote build: ${errorMessage(err)}`, ...lostIf(err) };
      }
      if (!ack.accepted) return { exitCode: null, error: `remote build: ${label} refused the job (${ack.reason})` };
      if (cancelled()) onAbort();
      else ctx.signal.addEventListener("abort", onAbort, { once: true });

      const end = await remoteJob.outcome;
      flushLines();
      if (end.status === "lost") {
        ctx.onLine(notice(`remote build session closed (${end.error}); the build was aborted`));
        return { exitCode: null, error: `remote build: peer-link session with ${label} lost (${end.error})`, buildServerLost: true };
      }
      if (end.status === "cancelled") return { exitCode: null, error: end.error || "cancelled" };
      if (end.status === "failed" && end.failureReason === "provision" && !cancelled()) {
        const why = end.error || `it could not provide ESPHome ${ours || "of this builder's version"}`;
        return { exitCode: null, error: `remote build on ${label}: ${why}`, failureReason: "provision", fallbackLocal: `build server ${label} did not build this: ${why}; building on this machine instead` };
      }
      if (end.status === "failed") return { exitCode: null, error: `remote build on ${label}: ${end.error || "compile failed"}` };
      if (cancelled()) return { exitCode: null, error: "cancelled" };

      // Completed: fetch what was built (every image: a serial upload flashes the whole set).
      let artifacts;
      try {
        ctx.onLine(notice(`downloading the firmware from ${label}`));
        artifacts = await readArtifacts(await remoteJob.downloadArtifacts());
      } catch (err) {
        const error = `remote build: downloading the artifacts from ${label} failed: ${errorMessage(err)}`;
        // It built, but cannot hand over what it built (upstream's build server cannot pack a
        // `host` build, for one): the compile goes again, here, where the settings allow it.
        if (cannotSendBuild(err)) return { exitCode: null, error, fallbackLocal: `build server ${label} could not send what it built (${errorMessage(err)}); building on this machine instead` };
        return { exitCode: null, error, ...lostIf(err) };
      }
      try {
        await materialiseArtifacts(this.#deps.paths, path.basename(yaml), artifacts);
      } catch (err) {
        return { exitCode: null, error: `remote build: the artifacts from ${label} could not be used: ${errorMessage(err)}` };
      }
      return { exitCode: 0, error: null };
    } finally {
      ctx.signal.removeEventListener("abort", onAbort);
      remoteJob.close();
      flushLines();
    }
  }

  /**
   * A `clean_all` of the build environment our builds use on a build server
   * (`reset_build_env`): its output and end come back as this job's.
   */
  async #resetBuildEnv(ctx: PhaseContext): Promise<PhaseResult> {
    const { job } = ctx;
    const pin = job.source_pin_sha256;
    const label = job.source_label || this.#deps.offloader.label(pin) || pin.slice(0, 8);
    const session = this.#deps.offloader.session(pin);
    if (session === undefined) return { exitCode: null, error: `reset build environment: build server ${label} is not connected` };
    if (!session.resetBuildEnvSupported) return { exitCode: null, error: `reset build environment: build server ${label} does not support it (update it)` };
    const remoteJob = session.track(job.job_id);
    const lines = new LineSplitter();
    remoteJob.onOutput((chunk) => {
      for (const line of lines.push(chunk)) ctx.onLine(line);
    });
    const onAbort = (): void => { remoteJob.cancel(0); };
    try {
      ctx.onLine(notice(`resetting the build environment of this builder's builds on ${label}`));
      let ack;
      try {
        ack = await session.resetBuildEnv(job.job_id);
      } catch (err) {
        return { exitCode: null, error: `reset build environment: ${errorMessage(err)}` };
      }
      if (!ack.accepted) {
        const why = ack.reason === "busy" ? "it is busy with a build; try again when it is idle" : ack.reason;
        return { exitCode: null, error: `reset build environment: ${label} refused (${why})` };
      }
      if (ctx.signal.aborted) onAbort();
      else ctx.signal.addEventListener("abort", onAbort, { once: true });
      const end = await remoteJob.outcome;
      for (const line of lines.end()) ctx.onLine(line);
      if (end.status === "completed") return { exitCode: 0, error: null };
      if (end.status === "lost") return { exitCode: null, error: `reset build environment: peer-link session with ${label} lost (${end.error})` };
      if (end.status === "cancelled") return { exitCode: null, error: end.error || "cancelled" };
      return { exitCode: null, error: `reset build environment on ${label}: ${end.error || "failed"}` };
    } finally {
      ctx.signal.removeEventListener("abort", onAbort);
      remoteJob.close();
    }
  }

  /** `esphome upload` without `--file`: the image set is in the build tree the compile phase filled. */
  #upload(ctx: PhaseContext): Promise<PhaseResult> {
    return runEsphome(this.#deps, ctx, uploadArgs(this.#deps.paths.jobYaml(ctx.job), ctx.job.port));
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
    const remote = ctx.job.source === "remote" && (ctx.phase !== "clean" || ctx.job.job_type === "clean_all");
    return (remote ? this.#remote : this.#local).runPhase(ctx);
  }
}
