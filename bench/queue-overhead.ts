/**
 * Benchmark (a): queue overhead. 200 compile jobs with an instant stand-in
 * ESPHome, run through the real queue and local runner, against spawning the
 * same stand-in with the same arguments directly, one after the other, in the
 * same run. Prints one JSON object.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { compileArgs, esphomeEnv } from "../src/esphome/cli.ts";
import { EventBus } from "../src/events.ts";
import { LocalRunner } from "../src/firmware/local-runner.ts";
import { FirmwareQueue } from "../src/firmware/queue.ts";
import { resolvePaths } from "../src/paths.ts";

const JOBS = Number(process.env.BENCH_QUEUE_JOBS ?? 200);
const ROUNDS = Number(process.env.BENCH_QUEUE_ROUNDS ?? 3);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const standIn = path.join(root, "test", "fixtures", "bin", "esphome");
process.env.ESPHOME_STANDIN_COMPILE_SECONDS = "0";
process.env.ESPHOME_STANDIN_FIRMWARE_BYTES = "4096";

const dir = await mkdtemp(path.join(os.tmpdir(), "bench-queue-"));
const paths = resolvePaths({ configDir: dir });
const names: string[] = [];
for (let i = 0; i < JOBS; i++) {
  const name = `device${i}`;
  names.push(`${name}.yaml`);
  await writeFile(path.join(dir, `${name}.yaml`), `esphome:\n  name: ${name}\nesp32:\n  board: esp32dev\n`);
}

const env = { ...esphomeEnv(paths.dataDir) };

/** The same command lines spawned directly, one after the other. */
async function direct(): Promise<number> {
  const t = performance.now();
  for (const name of names) {
    const r = await execa(standIn, compileArgs(path.join(dir, name)), { cwd: dir, env, reject: false, stdin: "ignore", detached: true });
    if (r.exitCode !== 0) throw new Error(`direct spawn failed: ${r.stderr}`);
  }
  return performance.now() - t;
}

/** All jobs enqueued at once through a fresh queue; timed until the last terminal event. */
async function queued(): Promise<number> {
  const bus = new EventBus();
  const queue = new FirmwareQueue({ bus, paths, runner: new LocalRunner({ esphome: standIn, paths }) });
  await queue.start();
  let done = 0;
  let failed = 0;
  const finished = new Promise<void>((resolve) => {
    const onEnd = (ok: boolean) => () => {
      done++;
      if (!ok) failed++;
      if (done === JOBS) resolve();
    };
    bus.on("job_completed", onEnd(true));
    bus.on("job_failed", onEnd(false));
    bus.on("job_cancelled", onEnd(false));
  });
  const t = performance.now();
  for (const name of names) await queue.enqueue({ configuration: name, job_type: "compile" });
  await finished;
  const ms = performance.now() - t;
  await queue.stop();
  await queue.clearHistory();
  if (failed > 0) throw new Error(`${failed} queued jobs failed`);
  return ms;
}

// Alternate the two a few times and keep each one's best run: spawn time drifts
// with the machine's load, and the best runs are the ones least disturbed.
let directMs = Infinity;
let queueMs = Infinity;
for (let round = 0; round < ROUNDS; round++) {
  directMs = Math.min(directMs, await direct());
  queueMs = Math.min(queueMs, await queued());
}
await rm(dir, { recursive: true, force: true });

process.stdout.write(
  JSON.stringify({
    jobs: JOBS,
    direct_ms_per_job: directMs / JOBS,
    queue_ms_per_job: queueMs / JOBS,
    overhead_ms_per_job: (queueMs - directMs) / JOBS,
  }) + "\n",
);
