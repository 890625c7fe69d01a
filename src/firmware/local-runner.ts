/**
 * Runs a job's phases on this machine with the ESPHome CLI.
 */
import path from "node:path";
import { cleanArgs, compileArgs, esphomeEnv, leaseEsphome, uploadArgs, type EsphomeCommand } from "../esphome/cli.ts";
import { FailureReader } from "../esphome/failure.ts";
import { errorMessage } from "../errors.ts";
import type { Paths } from "../paths.ts";
import { cleanBuildEnvironment } from "./clean-all.ts";
import type { JobPhase, StoredJob } from "./job.ts";
import { KILL_GRACE_MS, runTracked, type SpawnFn } from "./process.ts";
import type { JobRunner, PhaseContext, PhaseResult } from "./runner.ts";

/**
 * ESPHome versions installed on demand, one environment each (a build
 * server's jobs for peers that run another version).
 */
export interface EsphomeVersions {
  /**
   * The executable of ESPHome `version`, installed first when it is not there
   * yet (each line of the install goes to `onLine`), held (never removed)
   * until `release` is called. Rejects when it cannot be installed; the
   * message says why.
   */
  acquire(version: string, opts: { onLine: (line: string) => void }): Promise<{ esphome: string; release: () => void }>;
}

export interface LocalRunnerDeps {
  /** The ESPHome executable: a path or a command name looked up on PATH, or the managed ESPHome. */
  esphome: EsphomeCommand;
  /** Other ESPHome versions, for jobs with a `target_esphome_version`; without it such jobs fail with `failure_reason: "provision"`. */
  versions?: EsphomeVersions;
  paths: Paths;
  spawn?: SpawnFn;
  killGraceMs?: number;
}

export function phaseArgs(job: Readonly<StoredJob>, phase: JobPhase, yamlPath: string): string[] {
  switch (phase) {
    case "compile":
      return compileArgs(yamlPath);
    case "upload":
      return uploadArgs(yamlPath, job.port);
    case "clean":
      return cleanArgs(yamlPath);
  }
}

export class LocalRunner implements JobRunner {
  readonly #deps: LocalRunnerDeps;

  constructor(deps: LocalRunnerDeps) {
    this.#deps = deps;
  }

  runPhase(ctx: PhaseContext): Promise<PhaseResult> {
    if (ctx.job.job_type === "clean_all") return cleanBuildEnvironment(this.#deps.paths, ctx);
    const yamlPath = this.#deps.paths.jobYaml(ctx.job);
    return runEsphome(this.#deps, ctx, phaseArgs(ctx.job, ctx.phase, yamlPath));
  }
}

/**
 * Runs one ESPHome command for a job's phase (in the job's folder, with its
 * data dir) as a tracked subprocess, and says how it ended: a failure names
 * ESPHome's own reason when its output gives one. Local and remote jobs flash
 * through this same path.
 */
export async function runEsphome(deps: LocalRunnerDeps, ctx: PhaseContext, args: string[]): Promise<PhaseResult> {
  // Jobs written by older builders (and hand-made ones) have no target: the builder's own ESPHome.
  const wanted = (ctx.job as { target_esphome_version?: string }).target_esphome_version ?? "";
  if (wanted === "") {
    const lease = await leaseEsphome(deps.esphome);
    if ("error" in lease) return { exitCode: null, error: lease.error };
    try {
      return await runWith(deps, ctx, args, lease.executable);
    } finally {
      lease.release();
    }
  }
  const provisioned = await provision(deps, ctx, wanted);
  if (!("esphome" in provisioned)) return provisioned;
  try {
    return await runWith(deps, ctx, args, provisioned.esphome);
  } finally {
    provisioned.release();
  }
}

async function runWith(deps: LocalRunnerDeps, ctx: PhaseContext, args: string[], executable: string): Promise<PhaseResult> {
  const failure = new FailureReader();
  const result = await runTracked({
    file: executable,
    args,
    cwd: path.dirname(deps.paths.jobYaml(ctx.job)),
    // A build server's jobs for its peers compile YAML those peers wrote.
    env: esphomeEnv(deps.paths.jobDataDir(ctx.job), ctx.job.remote_peer === "" ? "own" : "peer"),
    signal: ctx.signal,
    onLine: (line) => {
      failure.feed(line);
      ctx.onLine(line);
    },
    killGraceMs: deps.killGraceMs ?? KILL_GRACE_MS,
    onSpawn: (pid) => { ctx.onProcess?.(pid); },
    ...(deps.spawn === undefined ? {} : { spawn: deps.spawn }),
  });
  ctx.onProcess?.(null);
  if (result.error !== null) return { exitCode: result.exitCode, error: result.error };
  if (result.exitCode === 0) return { exitCode: 0, error: null };
  const how = result.signal === null ? `exit code ${result.exitCode}` : `signal ${result.signal}`;
  const why = failure.message;
  return { exitCode: result.exitCode, error: `esphome ${ctx.phase} failed (${how})${why === null ? "" : `: ${why}`}` };
}

/** The executable of the ESPHome version a job asks for, installed now if need be, with what happens in the job's output. */
async function provision(deps: LocalRunnerDeps, ctx: PhaseContext, version: string): Promise<{ esphome: string; release: () => void } | PhaseResult> {
  const failed = (why: string): PhaseResult => ({ exitCode: null, error: `could not provide ESPHome ${version}: ${why}`, failureReason: "provision" });
  if (deps.versions === undefined) return failed("this builder does not install other ESPHome versions (it runs the one given with --esphome)");
  ctx.onLine(`*** provisioning ESPHome ${version} for this build ***\n`);
  const started = Date.now();
  // The install goes on after a cancel (the environment is kept for the next job); the job ends at once.
  const aborted = new Promise<"aborted">((resolve) => {
    if (ctx.signal.aborted) resolve("aborted");
    ctx.signal.addEventListener("abort", () => { resolve("aborted"); }, { once: true });
  });
  const acquiring = deps.versions.acquire(version, { onLine: (line) => { if (!ctx.signal.aborted) ctx.onLine(line); } });
  try {
    const got = await Promise.race([acquiring, aborted]);
    if (got === "aborted") {
      void acquiring.then((held) => { held.release(); }, () => undefined);
      return { exitCode: null, error: "cancelled" };
    }
    ctx.onLine(`*** ESPHome ${version} ready (${((Date.now() - started) / 1000).toFixed(1)} s) ***\n`);
    return got;
  } catch (err) {
    return failed(errorMessage(err));
  }
}
