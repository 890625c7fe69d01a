/**
 * A device's logs for the panel: `esphome logs <yaml> --device <address>`
 * as a tracked process (its own process group, killed when the viewer goes),
 * line by line. No job: nothing enters the queue or the job history. A viewer
 * that falls behind skips lines and is told how many.
 */
import path from "node:path";
import { esphomeEnv, leaseEsphome, logsArgs, type EsphomeCommand } from "../esphome/cli.ts";
import { runTracked, type SpawnFn } from "../firmware/process.ts";

export interface DeviceLogsDeps {
  /** The ESPHome jobs run (held for as long as the logs stream). */
  esphome: EsphomeCommand;
  /** ESPHome's data dir for the device (the one its builds use). */
  dataDir: string;
  spawn?: SpawnFn;
}

export interface LogSink {
  line(text: string): void;
  backlogged(): boolean;
}

/**
 * Runs until `signal` aborts or the process ends; resolves with how it ended
 * (`null` error when it was stopped or exited 0).
 */
export async function streamDeviceLogs(
  deps: DeviceLogsDeps,
  yaml: string,
  address: string,
  sink: LogSink,
  signal: AbortSignal,
): Promise<{ exitCode: number | null; error: string | null }> {
  const lease = await leaseEsphome(deps.esphome);
  if ("error" in lease) return { exitCode: null, error: lease.error };
  try {
    return await follow(deps, lease.executable, yaml, address, sink, signal);
  } finally {
    lease.release();
  }
}

async function follow(
  deps: DeviceLogsDeps,
  executable: string,
  yaml: string,
  address: string,
  sink: LogSink,
  signal: AbortSignal,
): Promise<{ exitCode: number | null; error: string | null }> {
  let skipped = 0;
  const result = await runTracked({
    file: executable,
    args: logsArgs(yaml, address),
    cwd: path.dirname(yaml),
    env: esphomeEnv(deps.dataDir),
    signal,
    onLine: (line) => {
      if (sink.backlogged()) {
        skipped++;
        return;
      }
      if (skipped > 0) {
        sink.line(`*** ${skipped} log line(s) not shown: this viewer fell behind ***\n`);
        skipped = 0;
      }
      sink.line(line);
    },
    killGraceMs: 2_000,
    ...(deps.spawn === undefined ? {} : { spawn: deps.spawn }),
  });
  if (signal.aborted) return { exitCode: result.exitCode, error: null };
  if (result.error !== null) return { exitCode: result.exitCode, error: result.error };
  return { exitCode: result.exitCode, error: result.exitCode === 0 ? null : `esphome logs ended with exit code ${result.exitCode}` };
}
