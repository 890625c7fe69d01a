/**
 * Transparent install benchmarks.
 * (a) Remote overhead: a remote install of a 1.5 MiB firmware on loopback
 *     against a local install of the same device on the same builder, both
 *     with an instant stand-in compile: the difference is what going remote
 *     costs (bundle, transfer both ways, extraction, staging).
 * (b) Bulk speedup: 12 devices with a fixed 1 s compile, local only vs this
 *     builder plus two build servers, in the same run.
 */
import { performance } from "node:perf_hooks";
import { allDone, builder, deviceFolder, pair } from "./lib.ts";

process.env.ESPHOME_STANDIN_UPLOAD_SECONDS = "0";
process.env.ESPHOME_STANDIN_FAIL = "";

async function remoteOverhead(): Promise<Record<string, number>> {
  process.env.ESPHOME_STANDIN_COMPILE_SECONDS = "0";
  process.env.ESPHOME_STANDIN_FIRMWARE_BYTES = String(1.5 * 1024 * 1024);
  const a = await builder(await deviceFolder(["kitchen"]), "A");
  const b = await builder(await deviceFolder([]), "B");
  await pair(a, b);
  const run = async (forceLocal: boolean): Promise<number> => {
    const t = performance.now();
    const job = await a.queue.enqueue({ configuration: "kitchen.yaml", job_type: "install", port: "OTA", force_local: forceLocal });
    await allDone(a, [job.job_id]);
    const source = a.queue.get(job.job_id)?.source;
    if (source !== (forceLocal ? "local" : "remote")) throw new Error(`expected a ${forceLocal ? "local" : "remote"} build, got ${source}`);
    return performance.now() - t;
  };
  // Warm up both paths, then keep the best of five each.
  await run(true);
  await run(false);
  let local = Infinity;
  let remote = Infinity;
  for (let i = 0; i < 5; i++) {
    local = Math.min(local, await run(true));
    remote = Math.min(remote, await run(false));
  }
  await a.stop();
  await b.stop();
  return { local_install_ms: local, remote_install_ms: remote, remote_overhead_ms: remote - local };
}

async function bulkSpeedup(): Promise<Record<string, number>> {
  process.env.ESPHOME_STANDIN_COMPILE_SECONDS = "1";
  process.env.ESPHOME_STANDIN_FIRMWARE_BYTES = "65536";
  const names = Array.from({ length: 12 }, (_, i) => `device${i}`);
  const install = async (a: Awaited<ReturnType<typeof builder>>): Promise<number> => {
    const t = performance.now();
    const ids: string[] = [];
    for (const name of names) ids.push((await a.queue.enqueue({ configuration: `${name}.yaml`, job_type: "install", port: "OTA" })).job_id);
    await allDone(a, ids);
    return performance.now() - t;
  };
  const alone = await builder(await deviceFolder(names), "alone");
  const localOnly = await install(alone);
  await alone.stop();

  const a = await builder(await deviceFolder(names), "A");
  const b = await builder(await deviceFolder([]), "B");
  const c = await builder(await deviceFolder([]), "C");
  await pair(a, b);
  await pair(a, c);
  const pooled = await install(a);
  const where = new Map<string, number>();
  for (const job of a.queue.list()) where.set(job.source_label || "local", (where.get(job.source_label || "local") ?? 0) + 1);
  await a.stop();
  await b.stop();
  await c.stop();
  return {
    local_only_ms: localOnly,
    pooled_ms: pooled,
    pooled_vs_local: pooled / localOnly,
    on_local: where.get("local") ?? 0,
    on_b: where.get("B") ?? 0,
    on_c: where.get("C") ?? 0,
  };
}

const overhead = await remoteOverhead();
const bulk = process.env.BENCH_SKIP_BULK === "1" ? {} : await bulkSpeedup();
process.stdout.write(JSON.stringify({ ...overhead, ...bulk }) + "\n");
