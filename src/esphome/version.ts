/**
 * Asks the ESPHome CLI for its version (`esphome version` prints `Version: X`).
 */
import { execa } from "execa";
import { resolveExecutable, subprocessEnv } from "./cli.ts";

const VERSION_LINE = /Version:\s*(\S+)/;

export async function probeEsphomeVersion(esphome: string, timeoutMs = 15_000): Promise<string | null> {
  const executable = await resolveExecutable(esphome);
  if (executable === null) return null;
  const result = await execa(executable, ["version"], { reject: false, timeout: timeoutMs, stdin: "ignore", all: true, env: subprocessEnv("own"), extendEnv: false });
  if (result.exitCode !== 0) return null;
  return VERSION_LINE.exec(result.all)?.[1] ?? null;
}
