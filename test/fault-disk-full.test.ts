/**
 * A real builder process whose data folder is a real 3 MiB disk (a tmpfs in a
 * mount namespace the test makes) that fills up: while a job with a lot of
 * output runs, and when a compile is asked for. Nothing leaks, nothing is
 * announced that did not happen, the error names the fix, and once space is
 * back everything works again.
 */
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { BuilderProblem, FirmwareJob } from "../src/api/wire.ts";
import { resolvePaths } from "../src/paths.ts";
import { ApiClient, type Frame } from "./helpers/api-client.ts";
import { STAND_IN, configDir, spawnBuilder } from "./helpers/builder.ts";
import { smallDisk, tmpfsUnavailableReason, type SmallDisk } from "./helpers/tmpfs.ts";
import { waitFor } from "./helpers/tmp.ts";
import { missingTool } from "./helpers/tools.ts";

const NO_TMPFS = tmpfsUnavailableReason();

/** A write in progress has its temp file; a leak is one that stays once the writes settle. */
async function noTempFilesLeft(disk: SmallDisk): Promise<void> {
  let left: string[] = [];
  await waitFor(async () => (left = await disk.tempFiles()).length === 0, 5000, "temp files to go").catch(() => undefined);
  expect(left).toEqual([]);
}

const args = (config: string, data: string): string[] => [
  "--config-dir", config, "--data-dir", data, "--port", "0", "--peer-link-port", "0", "--peer-link-host", "127.0.0.1",
  "--esphome", STAND_IN, "--no-mdns", "--log-level", "error",
];

describe.skipIf(missingTool(NO_TMPFS === null, `tmpfs in a mount namespace (${NO_TMPFS})`))(`a builder whose disk fills up${NO_TMPFS === null ? "" : ` (skipped: ${NO_TMPFS})`}`, () => {
  it("leaks no temp file, refuses a compile with disk_full and no ghost job, and works again once space is back", async () => {
    const disk = await smallDisk(3 * 1024);
    const config = await configDir();
    const data = path.join(disk.root, "data");
    const paths = resolvePaths({ configDir: config, dataDir: data });
    const builder = await spawnBuilder(args(config, data), {
      ESPHOME_STANDIN_COMPILE_SECONDS: "3",
      ESPHOME_STANDIN_EXTRA_LINES: "30000",
      ESPHOME_STANDIN_FIRMWARE_BYTES: "1024",
      ESPHOME_STANDIN_FAIL: "",
    });
    const client = await ApiClient.connect(builder.port);
    const events = client.stream("subscribe_events", { job_output: false });
    await events.until((f) => f.event === "initial_state");
    const queued = (): string[] => events.frames.filter((f) => f.event === "job_queued").map((f) => (f.data as { job: FirmwareJob }).job.job_id);

    // 1. The disk fills while a job prints 30,000 lines (its log is rewritten at every trim).
    const first = await client.call<FirmwareJob>("firmware/compile", { configuration: "kitchen.yaml" });
    const follow = client.stream("firmware/follow_job", { job_id: first.job_id, batch: true });
    // Past the first trims (4,000 lines) before the disk fills, so rewrites happen on both sides of it.
    let seen = 0;
    await follow.until((f) => f.event === "output_batch" && (seen += (f.data as { lines: string[] }).lines.length) > 5000, 30_000);
    await disk.fill();
    expect(await disk.available()).toBe(0);
    const result = await follow.until((f) => f.event === "result", 60_000);
    // The stand-in CLI writes its build on the same disk, so the job itself may fail; either way it ends.
    expect(["completed", "failed"]).toContain((result.data as { status: string }).status);
    await waitFor(async () => (await client.call<BuilderProblem[]>("problems/list")).some((p) => p.code === "disk_full" && p.subject === paths.jobLogsDir), 10_000, "the job-log problem");
    await noTempFilesLeft(disk);
    // The builder kept the job's retained output (in memory, since the disk would not take it).
    const full = await client.call<FirmwareJob>("firmware/get_job", { job_id: first.job_id });
    expect(full.output.length).toBeGreaterThan(100);
    expect(full.output[0]).toMatch(/^\.\.\. \[output trimmed: \d+ earlier line\(s\) elided\]\n$/);

    // 2. A compile asked for while the disk is full: a clear error, no job, no event.
    const refused = await client.request("firmware/compile", { configuration: "kitchen.yaml" });
    expect(refused.error_code).toBe("disk_full");
    expect(refused.details).toBe(`No space left on ${paths.stateDir} (ENOSPC writing jobs.json): free some space and try again`);
    expect((await client.call<FirmwareJob[]>("firmware/get_jobs")).map((j) => j.job_id)).toEqual([first.job_id]);
    await new Promise((r) => setTimeout(r, 300));
    expect(queued()).toEqual([first.job_id]);
    const problems = await client.call<BuilderProblem[]>("problems/list");
    expect(problems.map((p) => p.code)).toContain("disk_full");
    expect(events.frames.some((f: Frame) => f.event === "builder_problem_added" && (f.data as { problem: BuilderProblem }).problem.code === "disk_full")).toBe(true);
    await noTempFilesLeft(disk);

    // 3. Space comes back: the next compile is queued, runs, is logged, and the problems clear.
    await disk.free();
    const again = await client.call<FirmwareJob>("firmware/compile", { configuration: "kitchen.yaml" });
    const done = await client.stream("firmware/follow_job", { job_id: again.job_id }).until((f) => f.event === "result", 60_000);
    expect(done.data).toMatchObject({ status: "completed" });
    await waitFor(async () => (await client.call<BuilderProblem[]>("problems/list")).length === 0, 15_000, "the problems to clear");
    expect(events.frames.filter((f) => f.event === "builder_problem_cleared").length).toBeGreaterThan(0);
    const log = await client.call<FirmwareJob>("firmware/get_job", { job_id: again.job_id });
    expect(log.output.join("")).toContain("Successfully compiled program.");
    await noTempFilesLeft(disk);
    client.close();
    builder.child.kill("SIGTERM");
    expect(await builder.exited).toBe(0);

    // 4. A builder started on a disk that is already full still starts and says why it cannot save.
    await disk.fill();
    const second = await spawnBuilder(args(config, data), { ESPHOME_STANDIN_COMPILE_SECONDS: "0", ESPHOME_STANDIN_FAIL: "" });
    const late = await ApiClient.connect(second.port);
    const found = await late.call<BuilderProblem[]>("problems/list");
    expect(found.map((p) => `${p.code} ${path.basename(p.subject)}`).sort()).toEqual(["disk_full jobs.json", "disk_full processes.json"]);
    expect((await late.call<FirmwareJob[]>("firmware/get_jobs")).map((j) => j.job_id)).toEqual([again.job_id]);
    expect((await late.request("firmware/compile", { configuration: "kitchen.yaml" })).error_code).toBe("disk_full");
    await disk.free();
    const last = await late.call<FirmwareJob>("firmware/compile", { configuration: "kitchen.yaml" });
    await late.stream("firmware/follow_job", { job_id: last.job_id }).until((f) => f.event === "result", 30_000);
    await waitFor(async () => (await late.call<BuilderProblem[]>("problems/list")).length === 0, 15_000, "the problems to clear");
    await noTempFilesLeft(disk);
    late.close();
  }, 120_000);

  it("says which installs of a bulk install were queued when the disk fills part-way", async () => {
    const disk = await smallDisk(1024);
    const names = Array.from({ length: 12 }, (_, i) => `device-${i}`);
    const config = await configDir(Object.fromEntries(names.map((n) => [n, ""])));
    const data = path.join(disk.root, "data");
    const builder = await spawnBuilder(args(config, data), { ESPHOME_STANDIN_COMPILE_SECONDS: "0", ESPHOME_STANDIN_FAIL: "hang" });
    const client = await ApiClient.connect(builder.port);
    await disk.fill();
    // One 4 KiB page: the index fits in it while it is small, then it does not.
    await disk.release(4096);
    const reply = await client.request("firmware/install_bulk", { configurations: names.map((n) => `${n}.yaml`) });
    expect(reply.error_code).toBe("disk_full");
    const match = /^No space left on .*: free some space and try again\. Queued before this: (.+); not queued: (.+)$/.exec(reply.details ?? "");
    expect(match, reply.details).not.toBeNull();
    const queued = match![1]!.split(", ");
    const notQueued = match![2]!.split(", ");
    expect(queued.length).toBeGreaterThan(0);
    expect([...queued, ...notQueued]).toEqual(names.map((n) => `${n}.yaml`));
    const jobs = await client.call<FirmwareJob[]>("firmware/get_jobs");
    expect(jobs.map((j) => j.configuration).sort()).toEqual([...queued].sort());
    await noTempFilesLeft(disk);
    client.close();
  }, 60_000);
});
