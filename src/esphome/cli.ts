/**
 * The ESPHome command lines the builder runs, and the environment they get.
 * These are a contract (DESIGN §4): the stand-in CLI's tests and the real
 * CLI's argument parser check exactly these.
 */
import { constants, promises as fs } from "node:fs";
import path from "node:path";
import { BuilderError, ErrorCode } from "../errors.ts";

/** Added to every ESPHome subprocess: colours stay on through a pipe, Python does not buffer, UTF-8 everywhere. */
export const ESPHOME_ENV: Readonly<Record<string, string>> = {
  PLATFORMIO_FORCE_ANSI: "true",
  FORCE_COLOR: "1",
  CLICOLOR_FORCE: "1",
  PYTHONUNBUFFERED: "1",
  PYTHONUTF8: "1",
  PYTHONIOENCODING: "utf-8",
};

export function esphomeEnv(dataDir: string): Record<string, string> {
  return { ...ESPHOME_ENV, ESPHOME_DATA_DIR: dataDir };
}

export function compileArgs(yaml: string): string[] {
  return ["--dashboard", "compile", yaml];
}

/** `port` is never empty here: an empty port means OTA, so the CLI never prompts. */
export function uploadArgs(yaml: string, port: string, file?: string): string[] {
  const args = ["--dashboard", "upload", yaml, "--device", port === "" ? "OTA" : port];
  if (file !== undefined) args.push("--file", file);
  return args;
}

export function runArgs(yaml: string, port: string): string[] {
  return ["--dashboard", "run", yaml, "--no-logs", "--device", port === "" ? "OTA" : port];
}

export function cleanArgs(yaml: string): string[] {
  return ["--dashboard", "clean", yaml];
}

export function bundleArgs(yaml: string, out: string): string[] {
  return ["bundle", yaml, "-o", out];
}

export function versionArgs(): string[] {
  return ["version"];
}

export function missingEsphomeError(esphome: string): BuilderError {
  return new BuilderError(
    ErrorCode.Unavailable,
    `ESPHome CLI not found: '${esphome}' is not an executable file or on PATH. ` +
      "Install ESPHome (pip install esphome) or pass --esphome PATH (env ESPHOME_BUILDER_ESPHOME).",
  );
}

/** Resolves the ESPHome executable like a shell would; null when there is none. */
export async function resolveExecutable(command: string, envPath = process.env.PATH ?? ""): Promise<string | null> {
  const candidates = command.includes("/")
    ? [path.resolve(command)]
    : envPath.split(path.delimiter).filter((dir) => dir !== "").map((dir) => path.join(dir, command));
  for (const candidate of candidates) {
    try {
      await fs.access(candidate, constants.X_OK);
      const stat = await fs.stat(candidate);
      if (stat.isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return null;
}
