/**
 * First start with managed ESPHome: a builder on an empty data dir provisions the pinned
 * ESPHome (venv + pip + the check that `esphome version` answers) in the background.
 * Measured: how soon the API answers (listening line), and the time until the managed
 * ESPHome is ready, against the same work done by hand in the same run (`python -m venv`,
 * `pip install esphome==<pin> -c addon/constraints.txt`, `esphome version`, with the same
 * Python and pip's cache). One untimed install first warms pip's cache for both sides;
 * then they alternate (direct, builder, builder, direct, ...) and the best of each counts.
 * Needs a Python >= 3.12 (as `npm run test:setup` finds) and the package index.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { promisify } from "node:util";
import { Builder } from "../src/builder.ts";
import { subprocessEnv } from "../src/esphome/cli.ts";
import { readPin } from "../src/esphome/pinned.ts";
import { findPython } from "../src/esphome/python-finder.ts";
import { setLogLevel } from "../src/logger.ts";
import { testConfig } from "../test/helpers/config.ts";

const run = promisify(execFile);
const ROUNDS = Number(process.env.BENCH_PROVISION_ROUNDS ?? "1");
const root = path.resolve(import.meta.dirname, "..");
const pin = readPin(root);
if (pin.version === null || pin.constraints === null) throw new Error("no pinned ESPHome in addon/requirements.txt");
const version = pin.version;
const constraints = pin.constraints;
const python = await findPython();
setLogLevel("warning");

/** The same work by hand. */
async function direct(): Promise<number> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "bench-venv-"));
  const venv = path.join(dir, "venv");
  const env = { ...subprocessEnv("own"), PIP_DISABLE_PIP_VERSION_CHECK: "1", PIP_NO_INPUT: "1" };
  const t = performance.now();
  await run(python.path, ["-m", "venv", venv], { env });
  await run(path.join(venv, "bin", "python"), ["-m", "pip", "install", "--progress-bar", "off", `esphome==${version}`, "-c", constraints], { env, maxBuffer: 64 << 20 });
  const { stdout } = await run(path.join(venv, "bin", "esphome"), ["version"], { env });
  const ms = performance.now() - t;
  if (!stdout.includes(version)) throw new Error(`direct install answered ${stdout}`);
  await rm(dir, { recursive: true, force: true });
  return ms;
}

/** A builder's first start on an empty data dir: until it listens, and until its ESPHome is ready. */
async function builder(): Promise<{ listenMs: number; readyMs: number }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "bench-first-start-"));
  const config = path.join(dir, "config");
  const b = new Builder(testConfig(config, { dataDir: path.join(dir, "data"), esphome: "esphome", managedEsphome: true, python: python.path }));
  const t = performance.now();
  const ready = new Promise<number>((resolve, reject) => {
    b.bus.on("esphome_state_changed", ({ status }) => {
      if (status.current_version === version) resolve(performance.now() - t);
      if (status.state.status === "failed") reject(new Error(status.state.message));
    });
  });
  await b.start();
  const listenMs = performance.now() - t;
  const readyMs = await ready;
  await b.stop();
  await rm(dir, { recursive: true, force: true });
  return { listenMs, readyMs };
}

await direct(); // warms pip's cache for both sides
let directMs = Infinity;
let builderMs = Infinity;
let listenMs = Infinity;
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? ["direct", "builder"] : ["builder", "direct"];
  for (const side of order) {
    if (side === "direct") directMs = Math.min(directMs, await direct());
    else {
      const r = await builder();
      builderMs = Math.min(builderMs, r.readyMs);
      listenMs = Math.min(listenMs, r.listenMs);
    }
  }
}

process.stdout.write(
  JSON.stringify({
    rounds: ROUNDS,
    python_minor: Number(python.version.split(".")[1]),
    listen_ms: listenMs,
    provision_builder_ms: builderMs,
    provision_direct_ms: directMs,
    provision_vs_direct: builderMs / directMs,
  }) + "\n",
);
