/**
 * Faults with real processes: the builder killed mid-build, and a job that
 * prints a million lines.
 */
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { FirmwareJob } from "../src/firmware/job.ts";
import { resolvePaths } from "../src/paths.ts";
import { ApiClient } from "./helpers/api-client.ts";
import { STAND_IN, configDir, spawnBuilder } from "./helpers/builder.ts";
import { waitFor } from "./helpers/tmp.ts";

const baseArgs = (dir: string): string[] => ["--config-dir", dir, "--port", "0", "--peer-link-port", "0", "--peer-link-host", "127.0.0.1", "--esphome", STAND_IN, "--no-mdns", "--log-level", "warning"];

function rssPeakKiB(pid: number): Promise<number> {
  return readFile(`/proc/${pid}/status`, "utf8").then((s) => Number(/VmHWM:\s+(\d+)/.exec(s)?.[1] ?? 0));
}

describe("the builder killed mid-build", () => {
  it("runs the interrupted job again to completion after a restart", async () => {
    const dir = await configDir();
    const env = { ESPHOME_STANDIN_COMPILE_SECONDS: "3", ESPHOME_STANDIN_UPLOAD_SECONDS: "0.1", ESPHOME_STANDIN_FAIL: "" };
    const first = await spawnBuilder(baseArgs(dir), env);
    const client = await ApiClient.connect(first.port);
    const job = await client.call<FirmwareJob>("firmware/install", { configuration: "kitchen.yaml" });
    const follow = client.stream("firmware/follow_job", { job_id: job.job_id });
    await follow.until((f) => f.event === "output" && (f.data as { line: string }).line.includes("Compiling"));
    // Output reaches the log file in batches of at most 200 ms; give the batch time to land.
    await new Promise((r) => setTimeout(r, 500));
    client.close();
    first.child.kill("SIGKILL");
    await first.exited;

    const second = await spawnBuilder(baseArgs(dir), env);
    const again = await ApiClient.connect(second.port);
    const resumed = again.stream("firmware/follow_job", { job_id: job.job_id });
    const result = await resumed.until((f) => f.event === "result", 30_000);
    expect(result.data).toMatchObject({ status: "completed", exit_code: 0 });
    const log = resumed.frames.filter((f) => f.event === "output").map((f) => (f.data as { line: string }).line).join("");
    const marker = log.indexOf("builder restarted mid-build");
    expect(marker).toBeGreaterThan(log.indexOf("Compiling")); // the old log is kept above the marker
    expect(log.slice(marker)).toContain("Successfully compiled program.");
    again.close();
    second.child.kill("SIGTERM");
    expect(await second.exited).toBe(0);
  });
});

describe("a job with a million output lines", () => {
  it("keeps the builder's memory and the job's log bounded", async () => {
    const dir = await configDir();
    const builder = await spawnBuilder(baseArgs(dir), {
      ESPHOME_STANDIN_COMPILE_SECONDS: "0",
      ESPHOME_STANDIN_EXTRA_LINES: "1000000",
      ESPHOME_STANDIN_FAIL: "",
    });
    const pid = builder.child.pid!;
    const before = await rssPeakKiB(pid);
    const client = await ApiClient.connect(builder.port);
    const job = await client.call<FirmwareJob>("firmware/compile", { configuration: "kitchen.yaml" });
    let peak = before;
    const sampler = setInterval(() => {
      void rssPeakKiB(pid).then((v) => { peak = Math.max(peak, v); }).catch(() => undefined);
    }, 50);
    try {
      await waitFor(async () => {
        const j = await client.call<FirmwareJob>("firmware/get_jobs", {}).then((jobs) => (jobs as unknown as FirmwareJob[])[0]);
        return j?.status === "completed";
      }, 120_000, "the million-line job");
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, await rssPeakKiB(pid));
    const full = await client.call<FirmwareJob>("firmware/get_job", { job_id: job.job_id });
    expect(full.output.length).toBe(2001);
    expect(full.output[0]).toMatch(/^\.\.\. \[output trimmed: \d+ earlier line\(s\) elided\]\n$/);
    const paths = resolvePaths({ configDir: dir });
    // The final log is written just after the terminal event.
    await waitFor(async () => (await readFile(paths.jobLog(job.job_id), "utf8")).split("\n").length <= 2002, 5000, "the final log");
    expect((await readdir(path.dirname(paths.jobLog(job.job_id)))).filter((f) => f.endsWith(".tmp"))).toEqual([]);
    console.log(`builder RSS peak: ${(before / 1024).toFixed(0)} MiB at start, ${(peak / 1024).toFixed(0)} MiB during a 1,000,000-line job`);
    expect(peak - before).toBeLessThan(200 * 1024);
    client.close();
  }, 180_000);
});

describe("a build left running by a killed builder", () => {
  async function standIns(dir: string): Promise<number[]> {
    const { readdir } = await import("node:fs/promises");
    const pids: number[] = [];
    for (const entry of await readdir("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
      if (cmdline.includes("esphome-stand-in") && cmdline.includes(dir)) pids.push(Number(entry));
    }
    return pids;
  }

  it("is killed when the builder starts again, before the job runs again", async () => {
    const dir = await configDir();
    const env = { ESPHOME_STANDIN_COMPILE_SECONDS: "0", ESPHOME_STANDIN_FAIL: "hang" };
    const first = await spawnBuilder(baseArgs(dir), env);
    const client = await ApiClient.connect(first.port);
    const job = await client.call<FirmwareJob>("firmware/compile", { configuration: "kitchen.yaml" });
    await waitFor(async () => (await standIns(dir)).length > 0, 10_000, "the compile to start");
    await new Promise((r) => setTimeout(r, 300)); // its process group is on record
    client.close();
    first.child.kill("SIGKILL");
    await first.exited;
    const orphans = await standIns(dir);
    expect(orphans).toHaveLength(1); // the crash left it running

    const second = await spawnBuilder(baseArgs(dir), { ...env, ESPHOME_STANDIN_FAIL: "" });
    await waitFor(async () => !(await standIns(dir)).includes(orphans[0]!), 5000, "the orphan to be killed");
    const again = await ApiClient.connect(second.port);
    const result = await again.stream("firmware/follow_job", { job_id: job.job_id }).until((f) => f.event === "result", 30_000);
    expect(result.data).toMatchObject({ status: "completed" });
    again.close();
  });
});
