/**
 * Makes one ESPHome environment: `python -m venv <venv>`, then
 * `pip install esphome==<version>` in it (with the project's constraints for
 * the pinned version), then a check that the new `esphome version` answers
 * with that version. Output goes line by line to `onLine`, progress (see
 * pip-progress.ts) to `onProgress`. pip reads its own configuration (pip.conf,
 * PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, proxies) from `env`. It leaves the venv
 * folder as it stands on failure: the caller removes it.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { BuilderError, ErrorCode } from "../errors.ts";
import { runTracked, type SpawnFn } from "../firmware/process.ts";
import { PipProgress, expectedPackages, type ProvisionPhase } from "./pip-progress.ts";

export type { ProvisionPhase } from "./pip-progress.ts";

/** Packages ESPHome 2026.x brings, for progress when no constraints file lists them (2026.10.0: 85). */
export const ESTIMATED_PACKAGES = 85;

export interface ProvisionOptions {
  python: string;
  venv: string;
  version: string;
  /** A pip constraints file, or null. */
  constraints: string | null;
  env: Record<string, string>;
  onLine: (line: string) => void;
  onProgress: (progress: { percent: number; phase: ProvisionPhase }) => void;
  signal?: AbortSignal;
  spawn?: SpawnFn;
}

/** pip's reason for a failure: its last `ERROR:` line. */
function pipError(lines: readonly string[]): string | null {
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = (lines[i] ?? "").trim();
    if (line.startsWith("ERROR:")) return line.slice(6).trim();
  }
  return null;
}

export async function provisionVenv(opts: ProvisionOptions): Promise<void> {
  const signal = opts.signal ?? new AbortController().signal;
  const tail: string[] = [];
  const onLine = (line: string): void => {
    tail.push(line);
    if (tail.length > 50) tail.shift();
    opts.onLine(line);
  };
  const run = async (file: string, args: string[], what: string, lineHook?: (line: string) => void): Promise<void> => {
    tail.length = 0;
    onLine(`$ ${[file, ...args].join(" ")}\n`);
    const result = await runTracked({
      file,
      args,
      cwd: path.dirname(opts.venv),
      env: { ...opts.env, PYTHONUNBUFFERED: "1", PIP_NO_INPUT: "1", PIP_DISABLE_PIP_VERSION_CHECK: "1" },
      signal,
      onLine: (line) => {
        onLine(line);
        lineHook?.(line);
      },
      ...(opts.spawn === undefined ? {} : { spawn: opts.spawn }),
    });
    if (signal.aborted) throw new BuilderError(ErrorCode.ProvisionFailed, `Installing ESPHome ${opts.version} was stopped`);
    if (result.exitCode !== 0) {
      const how = result.error ?? (result.signal === null ? `exit code ${result.exitCode}` : `signal ${result.signal}`);
      const why = pipError(tail);
      throw new BuilderError(ErrorCode.ProvisionFailed, `Installing ESPHome ${opts.version} failed: ${what} (${how})${why === null ? "" : `: ${why}`}`);
    }
  };

  opts.onProgress({ percent: 1, phase: "venv" });
  await run(opts.python, ["-m", "venv", opts.venv], `${opts.python} -m venv`);
  const expected = opts.constraints === null ? ESTIMATED_PACKAGES : expectedPackages(await fs.readFile(opts.constraints, "utf8"));
  const progress = new PipProgress(expected);
  opts.onProgress({ percent: progress.state.percent, phase: progress.state.phase });
  const pip = path.join(opts.venv, "bin", "python");
  const args = ["-m", "pip", "install", "--progress-bar", "off", `esphome==${opts.version}`];
  if (opts.constraints !== null) args.push("-c", opts.constraints);
  await run(pip, args, "pip install", (line) => {
    if (progress.feed(line)) opts.onProgress({ percent: progress.state.percent, phase: progress.state.phase });
  });
  opts.onProgress({ percent: 95, phase: "checking" });
  const esphome = path.join(opts.venv, "bin", "esphome");
  const answered: string[] = [];
  await run(esphome, ["version"], "esphome version", (line) => {
    const m = /Version:\s*(\S+)/.exec(line);
    if (m?.[1] !== undefined) answered.push(m[1]);
  });
  if (answered[0] !== opts.version) {
    throw new BuilderError(ErrorCode.ProvisionFailed, `Installing ESPHome ${opts.version} failed: the new environment says it is ESPHome ${answered[0] ?? "(no version)"}`);
  }
}
