/**
 * Warm-cache affinity with the real ESPHome: six host-platform devices
 * compiled twice through a builder paired with two build servers (three
 * builder processes on this machine, the pinned ESPHome in each). Round one
 * starts from empty build folders everywhere and spreads the six over the
 * three machines; round two compiles the same six again, and each device goes
 * back where its build tree is warm. The figure is round two's wall time as a
 * share of round one's (goal at most 0.5), measured in the same run, with
 * how many round-two compiles found nothing to rebuild.
 *
 * ccache is kept out (ESPHOME_CCACHE_ENABLE=0), so the figure is the build
 * trees' alone. Needs the real ESPHome and a compiler (`npm run test:setup`).
 */
import { rm, mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import type { FirmwareJob } from "../src/firmware/job.ts";
import { writeHostDevice } from "../test/real-device/devices.ts";
import { realEsphomeVersion } from "../test/real-device/esphome.ts";
import { outputText, pairBuilders, runJob, startRealBuilder, type JobRun, type RealBuilder } from "../test/real-device/builder.ts";

const DEVICES = 6;
const LONG = 1_800_000;

const esphome = realEsphomeVersion();
if (esphome.version === null) throw new Error(`the affinity benchmark needs the real ESPHome: ${esphome.reason}`);

const env = { ESPHOME_CCACHE_ENABLE: "0" };
const aDir = await mkdtemp(path.join(os.tmpdir(), "bench-affinity-a-"));
const bDir = await mkdtemp(path.join(os.tmpdir(), "bench-affinity-b-"));
const cDir = await mkdtemp(path.join(os.tmpdir(), "bench-affinity-c-"));
const names = Array.from({ length: DEVICES }, (_, i) => `dev${i + 1}`);
for (const name of names) await writeHostDevice(aDir, `${name}.yaml`, { name, label: name });

let a: RealBuilder | undefined;
let b: RealBuilder | undefined;
let c: RealBuilder | undefined;
const result: Record<string, number> = {};

/** All six compiles queued at once, each followed to its end; the wall time and where each ran. */
async function round(builder: RealBuilder, label: string): Promise<{ ms: number; runs: JobRun[] }> {
  const t = performance.now();
  const runs = await Promise.all(names.map((name) => runJob(builder.api, "firmware/compile", { configuration: `${name}.yaml` }, LONG)));
  const ms = performance.now() - t;
  for (const run of runs) {
    if (run.result.status !== "completed") throw new Error(`${run.job.configuration}: ${run.result.status} ${run.result.error ?? ""}\n${outputText(run).slice(-2000)}`);
  }
  const where = runs.map((r) => `${r.final.configuration}@${r.final.source === "remote" ? r.final.source_label : "here"}`).join(" ");
  process.stderr.write(`${label}: ${(ms / 1000).toFixed(1)} s (${where})\n`);
  return { ms, runs };
}

const placed = (run: JobRun): string => (run.final.source === "remote" ? run.final.source_pin_sha256 : "local");

try {
  a = await startRealBuilder(aDir, { label: "A", env });
  b = await startRealBuilder(bDir, { label: "B", env });
  c = await startRealBuilder(cDir, { label: "C", env });
  await pairBuilders(a, b);
  // pairBuilders waits for the first pairing only; wait until both build servers are connected and idle.
  await pairBuilders(a, c);
  for (;;) {
    const s = await a.api.call<{ pairings: { connected: boolean; idle: boolean | null }[] }>("remote_build/get_offloader_settings");
    if (s.pairings.length === 2 && s.pairings.every((p) => p.connected && p.idle === true)) break;
    await new Promise((r) => setTimeout(r, 100));
  }

  const first = await round(a, "round 1 (empty build folders)");
  const second = await round(a, "round 2 (the same devices again)");
  const byConfig = new Map(first.runs.map((r) => [r.final.configuration, placed(r)]));
  const samePlace = second.runs.filter((r) => byConfig.get(r.final.configuration) === placed(r)).length;
  const noWork = second.runs.filter((r) => outputText(r).includes("ninja: no work to do.")).length;
  const spread = (runs: JobRun[]) => new Set(runs.map(placed)).size;
  Object.assign(result, {
    devices: DEVICES,
    round1_ms: first.ms,
    round2_ms: second.ms,
    round2_vs_round1: second.ms / first.ms,
    round1_places: spread(first.runs),
    round2_same_place: samePlace,
    round2_no_work: noWork,
  });
  const jobs = await a.api.call<FirmwareJob[]>("firmware/get_jobs", {});
  process.stderr.write(`jobs on A: ${jobs.length}\n`);
} finally {
  for (const builder of [a, b, c]) await builder?.stop();
  for (const dir of [aDir, bDir, cDir]) await rm(dir, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(result) + "\n");
