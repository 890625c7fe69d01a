/**
 * Runs a job's phases on this machine with the ESPHome CLI.
 */
import path from "node:path";
import { cleanArgs, compileArgs, esphomeEnv, missingEsphomeError, resolveExecutable, uploadArgs } from "../esphome/cli.ts";
import type { Paths } from "../paths.ts";
import type { JobPhase, StoredJob } from "./job.ts";
import { KILL_GRACE_MS, runTracked, type SpawnFn } from "./process.ts";
import type { JobRunner, PhaseContext, PhaseResult } from "./runner.ts";

export interface LocalRunnerDeps {
  /** The ESPHome executable: a path or a command name looked up on PATH. */
  esphome: string;
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

  async runPhase(ctx: PhaseContext): Promise<PhaseResult> {
    const { paths } = this.#deps;
    const executable = await resolveExecutable(this.#deps.esphome);
    if (executable === null) return { exitCode: null, error: missingEsphomeError(this.#deps.esphome).message };
    const yamlPath = paths.jobYaml(ctx.job);
    const result = await runTracked({
      file: executable,
      args: phaseArgs(ctx.job, ctx.phase, yamlPath),
      cwd: path.dirname(yamlPath),
      env: esphomeEnv(paths.jobDataDir(ctx.job)),
      signal: ctx.signal,
      onLine: ctx.onLine,
      killGraceMs: this.#deps.killGraceMs ?? KILL_GRACE_MS,
      ...(this.#deps.spawn === undefined ? {} : { spawn: this.#deps.spawn }),
    });
    if (result.error !== null) return { exitCode: result.exitCode, error: result.error };
    if (result.exitCode === 0) return { exitCode: 0, error: null };
    const how = result.signal === null ? `exit code ${result.exitCode}` : `signal ${result.signal}`;
    return { exitCode: result.exitCode, error: `esphome ${ctx.phase} failed (${how})` };
  }
}
