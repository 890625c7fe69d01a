/**
 * Runs a job's phases on this machine with the ESPHome CLI.
 */
import path from "node:path";
import { cleanArgs, compileArgs, esphomeEnv, leaseEsphome, uploadArgs, type EsphomeCommand } from "../esphome/cli.ts";
import { FailureReader } from "../esphome/failure.ts";
import type { Paths } from "../paths.ts";
import type { JobPhase, StoredJob } from "./job.ts";
import { KILL_GRACE_MS, runTracked, type SpawnFn } from "./process.ts";
import type { JobRunner, PhaseContext, PhaseResult } from "./runner.ts";

export interface LocalRunnerDeps {
  /** The ESPHome executable: a path or a command name looked up on PATH, or the managed ESPHome. */
  esphome: EsphomeCommand;
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
  const lease = await leaseEsphome(deps.esphome);
  if ("error" in lease) return { exitCode: null, error: lease.error };
  try {
    return await runLeased(deps, ctx, args, lease.executable);
  } finally {
    lease.release();
  }
}

async function runLeased(deps: LocalRunnerDeps, ctx: PhaseContext, args: string[], executable: string): Promise<PhaseResult> {
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
