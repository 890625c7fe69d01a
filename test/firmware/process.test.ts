/**
 * A job's output path under load, end to end in a real builder process: the
 * stand-in CLI floods its stdout (many lines, or one endless line) and the
 * builder's memory, CPU time, log file and responsiveness are measured from
 * outside (/proc of the builder's pid).
 *
 * Sizes: OUTPUT_FLOOD_BYTES (default 2 GiB) for the line flood, OUTPUT_LINE_BYTES
 * (default 1 GiB) for the single line, OUTPUT_REMOTE_FLOOD_BYTES (default 64 MiB)
 * for output a build server sends to an offloader. Set OUTPUT_FLOOD_BYTES=6442450944
 * to see 6 GiB go through.
 */
import { readFile, stat, writeFile } from "node:fs/promises";
import http from "node:http";
import { describe, expect, it, onTestFinished } from "vitest";
import type { FirmwareJob } from "../../src/firmware/job.ts";
import { OUTPUT_CHARS_INFLIGHT, OUTPUT_LINE_KEPT_BYTES, lineCutNotice, splitStoredLog } from "../../src/firmware/output.ts";
import { resolvePaths } from "../../src/paths.ts";
import { ApiClient } from "../helpers/api-client.ts";
import { STAND_IN, configDir, spawnBuilder, type BuilderProcess } from "../helpers/builder.ts";
import { waitFor } from "../helpers/tmp.ts";
import { pairBuilders } from "../helpers/pairing.ts";

const GiB = 1024 ** 3;
const FLOOD_BYTES = Number(process.env.OUTPUT_FLOOD_BYTES ?? 2 * GiB);
/** Every remote line is a frame (encrypted, sent, decrypted, parsed): about 20 µs of CPU a side. */
const REMOTE_FLOOD_BYTES = Number(process.env.OUTPUT_REMOTE_FLOOD_BYTES ?? 64 * 1024 ** 2);
/** What the builder may grow by while output flows, over its resident size just before. */
const RSS_BOUND_MIB = 200;
const TICKS_PER_SECOND = 100; // USER_HZ on Linux

interface Usage {
  rssKiB: number;
  peakKiB: number;
  cpuSeconds: number;
}

async function usage(pid: number): Promise<Usage> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const fields = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1]!.split(" ");
  return {
    rssKiB: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]),
    peakKiB: Number(/VmHWM:\s+(\d+)/.exec(status)?.[1]),
    // utime and stime: fields 14 and 15 of stat, 12 and 13 after the command name.
    cpuSeconds: (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND,
  };
}

/** Starts the peak (VmHWM) over from the current resident size. */
async function resetPeak(pid: number): Promise<void> {
  await writeFile(`/proc/${pid}/clear_refs`, "5");
}

interface Builder {
  proc: BuilderProcess;
  api: ApiClient;
  dir: string;
  peerPort: number;
}

async function floodBuilder(env: Record<string, string>, label = "builder"): Promise<Builder> {
  const dir = await configDir();
  const proc = await spawnBuilder(
    ["--config-dir", dir, "--port", "0", "--peer-link-port", "0", "--peer-link-host", "127.0.0.1", "--esphome", STAND_IN, "--no-mdns", "--log-level", "warning", "--label", label],
    { ESPHOME_STANDIN_COMPILE_SECONDS: "0", ESPHOME_STANDIN_FAIL: "", ...env },
  );
  const listening = proc.stdout.join("").split("\n").find((l) => l.includes("listening")) ?? "{}";
  const api = await ApiClient.connect(proc.port);
  onTestFinished(() => { api.close(); });
  return { proc, api, dir, peerPort: (JSON.parse(listening) as { peer_link_port: number }).peer_link_port };
}

/** The job's log file, once it holds the final output, read back the way the builder reads it. */
async function storedOutput(b: Builder, jobId: string, expected: readonly string[]): Promise<string[]> {
  const file = resolvePaths({ configDir: b.dir }).jobLog(jobId);
  let lines: string[] = [];
  await waitFor(async () => {
    lines = splitStoredLog(await readFile(file));
    return lines.length === expected.length;
  }, 10_000, "the final log");
  return lines;
}

interface Run {
  job: FirmwareJob;
  seconds: number;
  cpuSeconds: number;
  growthMiB: number;
}

/** Runs one compile and measures the builder while it runs; `during` runs alongside until the job ends. */
async function measuredCompile(b: { proc: BuilderProcess; api: ApiClient }, during?: (running: () => boolean) => Promise<void>): Promise<Run> {
  const pid = b.proc.child.pid!;
  const before = await usage(pid);
  await resetPeak(pid);
  const t0 = performance.now();
  const queued = await b.api.call<FirmwareJob>("firmware/compile", { configuration: "kitchen.yaml" });
  let running = true;
  const side = during?.(() => running);
  try {
    // Polled every 100 ms: the measurement should not load the builder itself.
    for (const deadline = Date.now() + 600_000; ; await new Promise((r) => setTimeout(r, 100))) {
      const jobs = await b.api.call<FirmwareJob[]>("firmware/get_jobs", {});
      if (jobs.some((j) => j.job_id === queued.job_id && ["completed", "failed", "cancelled"].includes(j.status))) break;
      if (Date.now() > deadline) throw new Error("timed out waiting for the job to end");
    }
  } finally {
    running = false;
  }
  const seconds = (performance.now() - t0) / 1000;
  await side;
  const after = await usage(pid);
  const job = await b.api.call<FirmwareJob>("firmware/get_job", { job_id: queued.job_id });
  return { job, seconds, cpuSeconds: after.cpuSeconds - before.cpuSeconds, growthMiB: (after.peakKiB - before.rssKiB) / 1024 };
}

function report(what: string, bytes: number, run: Run): void {
  console.log(
    `${what}: ${(bytes / GiB).toFixed(2)} GiB in ${run.seconds.toFixed(1)} s wall, ${run.cpuSeconds.toFixed(1)} s CPU ` +
      `(${(run.cpuSeconds / (bytes / GiB)).toFixed(1)} s/GiB), peak RSS ${run.growthMiB.toFixed(0)} MiB over baseline`,
  );
}

describe("job output under a flood, in a real builder process", () => {
  it(`carries ${(FLOOD_BYTES / GiB).toFixed(1)} GiB of output lines with memory bounded and CPU time linear in bytes`, async () => {
    const small = Math.floor(FLOOD_BYTES / 4);
    const first = await floodBuilder({ ESPHOME_STANDIN_FLOOD_BYTES: String(small) });
    const quarter = await measuredCompile(first);
    report("line flood", small, quarter);

    const b = await floodBuilder({ ESPHOME_STANDIN_FLOOD_BYTES: String(FLOOD_BYTES) });
    const whole = await measuredCompile(b);
    report("line flood", FLOOD_BYTES, whole);

    expect(whole.job.status).toBe("completed");
    expect(whole.job.output).toHaveLength(2001);
    expect(whole.job.output[0]).toMatch(/^\.\.\. \[output trimmed: \d+ earlier line\(s\) elided\]\n$/);
    expect(whole.job.output.join("")).toContain("Successfully compiled program.");
    expect(whole.growthMiB).toBeLessThan(RSS_BOUND_MIB);
    expect(quarter.growthMiB).toBeLessThan(RSS_BOUND_MIB);
    // Four times the bytes, about four times the CPU (quadratic work would be sixteen).
    expect(whole.cpuSeconds).toBeLessThan(quarter.cpuSeconds * 4 * 1.6 + 1);
    // The log on disk is bounded too, and reads back as the same lines.
    expect(await storedOutput(b, whole.job.job_id, whole.job.output)).toEqual(whole.job.output);
    expect((await stat(resolvePaths({ configDir: b.dir }).jobLog(whole.job.job_id))).size).toBeLessThan(2 * OUTPUT_CHARS_INFLIGHT);
  }, 900_000);

  it("cuts a single 1 GiB line to its first 15,936 bytes plus a marker, in time linear in its length", async () => {
    const bytes = Number(process.env.OUTPUT_LINE_BYTES ?? GiB);
    const b = await floodBuilder({ ESPHOME_STANDIN_FLOOD_BYTES: String(bytes), ESPHOME_STANDIN_FLOOD_LINE_BYTES: "0" });
    const run = await measuredCompile(b);
    report("one line", bytes, run);
    expect(run.job.status).toBe("completed");
    const line = run.job.output.find((l) => l.startsWith("src/main.cpp:1:1: warning: STANDIN_EXPANDED_MACRO"));
    expect(line).toBeDefined();
    // The line's text is `bytes - 1` bytes (then its `\n`); all but the first OUTPUT_LINE_KEPT_BYTES are cut.
    expect(line!.slice(OUTPUT_LINE_KEPT_BYTES)).toBe(`${lineCutNotice(bytes - 1 - OUTPUT_LINE_KEPT_BYTES)}\n`);
    expect(line!.length).toBeLessThanOrEqual(16 * 1024); // what the peer link carries per line
    expect(run.job.output.join("")).toContain("Successfully compiled program.");
    expect(run.growthMiB).toBeLessThan(RSS_BOUND_MIB);
    expect(run.cpuSeconds).toBeLessThan(10);
    // A cut line reads back from the log file unchanged.
    expect(await storedOutput(b, run.job.job_id, run.job.output)).toEqual(run.job.output);
  }, 600_000);

  it("answers a ping within 100 ms while a job floods output", async () => {
    const b = await floodBuilder({ ESPHOME_STANDIN_FLOOD_BYTES: String(GiB) });
    const wsTimes: number[] = [];
    const httpTimes: number[] = [];
    const probe = await ApiClient.connect(b.proc.port);
    const httpPing = (): Promise<number> =>
      new Promise((resolve, reject) => {
        const t0 = performance.now();
        http
          .get({ host: "127.0.0.1", port: b.proc.port, path: "/ping", agent: false }, (res) => {
            res.resume();
            res.on("end", () => { resolve(performance.now() - t0); });
          })
          .on("error", reject);
      });
    const run = await measuredCompile(b, async (running) => {
      // Pings start once output is flowing and stop when the job ends.
      await new Promise((r) => setTimeout(r, 500));
      while (running() && wsTimes.length < 60) {
        const t0 = performance.now();
        expect(await probe.call("ping")).toEqual({ pong: true });
        wsTimes.push(performance.now() - t0);
        httpTimes.push(await httpPing());
        await new Promise((r) => setTimeout(r, 50));
      }
    });
    report("line flood with pings", GiB, run);
    const sorted = (xs: number[]): number[] => [...xs].sort((x, y) => x - y);
    console.log(`ping during the flood: /ws ${sorted(wsTimes).map((t) => t.toFixed(1)).join(" ")} ms; /ping ${sorted(httpTimes).map((t) => t.toFixed(1)).join(" ")} ms`);
    expect(run.job.status).toBe("completed");
    expect(wsTimes.length).toBeGreaterThanOrEqual(20); // the flood lasted long enough to measure
    // 95 % of the pings within 100 ms. The rest is left to the machine: on a shared 2-core box
    // with the stand-in and this test also busy, the scheduler alone can hold a process back
    // that long (the largest times are printed above).
    const p95 = (xs: number[]): number => sorted(xs)[Math.ceil(xs.length * 0.95) - 1]!;
    expect(p95(wsTimes)).toBeLessThan(100);
    expect(p95(httpTimes)).toBeLessThan(100);
    probe.close();
  }, 600_000);
});

describe("remote job output under a flood, two real builder processes", () => {
  it("reaches the offloader as job_output frames with both builders' memory bounded", async () => {
    const bytes = REMOTE_FLOOD_BYTES;
    const b = await floodBuilder({ ESPHOME_STANDIN_FLOOD_BYTES: String(bytes) }, "Build box");
    const a = await floodBuilder({}, "Laptop");
    await pairBuilders(a, b);
    const serverPid = b.proc.child.pid!;
    const serverBefore = await usage(serverPid);
    await resetPeak(serverPid);
    const run = await measuredCompile(a);
    const serverAfter = await usage(serverPid);
    const serverGrowthMiB = (serverAfter.peakKiB - serverBefore.rssKiB) / 1024;
    report("remote flood, offloader", bytes, run);
    report("remote flood, build server", bytes, { ...run, cpuSeconds: serverAfter.cpuSeconds - serverBefore.cpuSeconds, growthMiB: serverGrowthMiB });
    expect(run.job).toMatchObject({ status: "completed", source: "remote", source_label: "Build box" });
    const text = run.job.output.join("");
    expect(text).toContain("Successfully compiled program.");
    expect(run.job.output.length).toBeLessThanOrEqual(2001);
    expect(run.growthMiB).toBeLessThan(RSS_BOUND_MIB);
    expect(serverGrowthMiB).toBeLessThan(RSS_BOUND_MIB);
  }, 600_000);
});
