/**
 * Real ESPHome benchmarks: the pinned 2026.10 building test/real-device/host-device.yaml
 * for the host platform, each figure against ESPHome itself in the same run.
 * (a) Clean compile: `firmware/compile` through a builder process vs `esphome --dashboard
 *     compile` run directly on the same YAML with the builder's environment, each from an
 *     empty build folder; alternated (direct, builder, builder, direct, ...), best of each.
 * (b) No-op rebuild: the same, with nothing to rebuild; best of five each.
 * (c) Remote vs local install of the same running device (a real program in a network
 *     namespace, flashed over the air): both compile from an empty build folder, the remote
 *     one on a second builder process on this machine; alternated, best of each.
 * (d) A second remote install of the same device: the build server's warm tree
 *     (`ninja: no work to do.`), as a ratio to the first, clean one.
 * Needs what the real-device tests need (root, `ip netns`, `npm run test:setup`).
 */
import { spawn } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { compileArgs, esphomeEnv } from "../src/esphome/cli.ts";
import { RealDevice } from "../test/real-device/device.ts";
import { writeHostDevice } from "../test/real-device/devices.ts";
import { REAL_ESPHOME, realDeviceUnavailableReason } from "../test/real-device/esphome.ts";
import { createDeviceLink } from "../test/real-device/network.ts";
import { outputText, pairBuilders, runJob, startRealBuilder, type JobRun } from "../test/real-device/builder.ts";

const ROUNDS = Number(process.env.BENCH_REAL_ROUNDS ?? "2");
const NOOP_ROUNDS = 5;
const LONG = 900_000;

const unavailable = realDeviceUnavailableReason();
if (unavailable !== null) throw new Error(`real ESPHome benchmarks need ${unavailable}`);

/** Empties a device's build: its build folder, StorageJSON, validated-config cache and idedata. */
async function clean(dataDir: string): Promise<void> {
  await rm(path.join(dataDir, "build"), { recursive: true, force: true });
  await rm(path.join(dataDir, "idedata"), { recursive: true, force: true });
  await rm(path.join(dataDir, "storage"), { recursive: true, force: true });
}

/** `esphome --dashboard compile <yaml>` as the builder runs it (same arguments and environment), to its exit. */
function direct(configDir: string): Promise<number> {
  const t = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(REAL_ESPHOME, compileArgs(path.join(configDir, "hostdev.yaml")), {
      cwd: configDir,
      env: esphomeEnv(path.join(configDir, ".esphome")),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let tail = "";
    const keep = (d: Buffer): void => {
      tail = (tail + d.toString()).slice(-4000);
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    child.once("exit", (code) => {
      if (code === 0) resolve(performance.now() - t);
      else reject(new Error(`esphome compile exited ${String(code)}: ${tail}`));
    });
  });
}

function ok(run: JobRun): number {
  if (run.result.status !== "completed") throw new Error(`${run.job.job_type} ${run.result.status}: ${run.result.error ?? ""}\n${outputText(run).slice(-3000)}`);
  return run.ms;
}

const directDir = await mkdtemp(path.join(os.tmpdir(), "bench-real-direct-"));
const aDir = await mkdtemp(path.join(os.tmpdir(), "bench-real-a-"));
const bDir = await mkdtemp(path.join(os.tmpdir(), "bench-real-b-"));
for (const dir of [directDir, aDir]) await writeHostDevice(dir, "hostdev.yaml");
const link = createDeviceLink();
const a = await startRealBuilder(aDir, { label: "A" });
const b = await startRealBuilder(bDir, { label: "B" });
let device: RealDevice | undefined;
const result: Record<string, number> = {};
try {
  // (a) clean compiles, alternated so drift in the machine's load hits both sides alike.
  let cleanDirect = Infinity;
  let cleanBuilder = Infinity;
  for (let i = 0; i < ROUNDS; i++) {
    for (const which of i % 2 === 0 ? ["direct", "builder"] : ["builder", "direct"]) {
      if (which === "direct") {
        await clean(path.join(directDir, ".esphome"));
        cleanDirect = Math.min(cleanDirect, await direct(directDir));
      } else {
        await clean(path.join(aDir, ".esphome"));
        cleanBuilder = Math.min(cleanBuilder, ok(await runJob(a.api, "firmware/compile", { configuration: "hostdev.yaml", force_local: true }, LONG)));
      }
      process.stderr.write(`clean ${which}: direct ${cleanDirect.toFixed(0)} ms, builder ${cleanBuilder.toFixed(0)} ms\n`);
    }
  }
  Object.assign(result, { clean_direct_ms: cleanDirect, clean_builder_ms: cleanBuilder, clean_overhead_pct: ((cleanBuilder - cleanDirect) / cleanDirect) * 100 });

  // (b) no-op rebuilds: both trees are built.
  let noopDirect = Infinity;
  let noopBuilder = Infinity;
  for (let i = 0; i < NOOP_ROUNDS; i++) {
    noopDirect = Math.min(noopDirect, await direct(directDir));
    const run = await runJob(a.api, "firmware/compile", { configuration: "hostdev.yaml", force_local: true }, LONG);
    if (!outputText(run).includes("ninja: no work to do.")) throw new Error("the builder's no-op rebuild rebuilt something");
    noopBuilder = Math.min(noopBuilder, ok(run));
  }
  Object.assign(result, { noop_direct_ms: noopDirect, noop_builder_ms: noopBuilder, noop_overhead_ms: noopBuilder - noopDirect });
  process.stderr.write(`no-op: direct ${noopDirect.toFixed(0)} ms, builder ${noopBuilder.toFixed(0)} ms\n`);

  // (c) a running device, installed locally and remotely from empty build folders.
  const started = await RealDevice.start({ program: path.join(aDir, ".esphome", "build", "hostdev", ".pioenvs", "hostdev", "program"), link });
  device = started.device;
  await pairBuilders(a, b);
  const remoteFolder = async (): Promise<string> => {
    const root = path.join(bDir, ".esphome", ".remote_builds");
    const peers = (await readdir(root).catch(() => [] as string[])).filter((d) => !d.startsWith("."));
    return path.join(root, peers[0] ?? "none", "hostdev");
  };
  const install = async (remote: boolean): Promise<JobRun> => {
    const run = await runJob(a.api, "firmware/install", { configuration: "hostdev.yaml", port: device?.address ?? "", force_local: !remote }, LONG);
    ok(run);
    if (run.final.source !== (remote ? "remote" : "local")) throw new Error(`expected a ${remote ? "remote" : "local"} install, got ${run.final.source}`);
    return run;
  };
  let local = Infinity;
  let remote = Infinity;
  let firstRemote = 0;
  for (let i = 0; i < ROUNDS; i++) {
    for (const which of i % 2 === 0 ? ["local", "remote"] : ["remote", "local"]) {
      if (which === "local") {
        await clean(path.join(aDir, ".esphome"));
        local = Math.min(local, (await install(false)).ms);
      } else {
        await rm(await remoteFolder(), { recursive: true, force: true });
        const ms = (await install(true)).ms;
        firstRemote = ms;
        remote = Math.min(remote, ms);
      }
      process.stderr.write(`install ${which}: local ${local.toFixed(0)} ms, remote ${remote.toFixed(0)} ms\n`);
    }
  }
  Object.assign(result, { local_install_ms: local, remote_install_ms: remote, remote_vs_local: remote / local });

  // (d) the same remote install again: the build server's tree is warm.
  const warm = await install(true);
  const reused = outputText(warm).includes("ninja: no work to do.") ? 1 : 0;
  Object.assign(result, { remote_first_ms: firstRemote, remote_warm_ms: warm.ms, warm_vs_first: warm.ms / firstRemote, warm_tree_reused: reused });
  process.stderr.write(`warm remote: ${warm.ms.toFixed(0)} ms (first ${firstRemote.toFixed(0)} ms)\n`);
} finally {
  await device?.stop();
  await a.stop();
  await b.stop();
  link.destroy();
  for (const dir of [directDir, aDir, bDir]) await rm(dir, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(result) + "\n");
