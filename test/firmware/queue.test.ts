import { mkdir, readFile, readdir, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { EventBus, type EventMap, type EventName } from "../../src/events.ts";
import { RESTART_MARKER } from "../../src/firmware/job.ts";
import { trimNotice } from "../../src/firmware/output.ts";
import { FirmwareQueue, type QueueOptions } from "../../src/firmware/queue.ts";
import { resolvePaths, type Paths } from "../../src/paths.ts";
import { Problems } from "../../src/problems.ts";
import { ScriptedRunner } from "../helpers/scripted-runner.ts";
import { smallDisk, tmpfsUnavailableReason } from "../helpers/tmpfs.ts";
import { tempDir, waitFor } from "../helpers/tmp.ts";
import { missingTool } from "../helpers/tools.ts";

interface Recorded {
  name: EventName;
  payload: EventMap[EventName];
}

async function setup(options: Partial<QueueOptions> = {}, paths?: Paths) {
  const p = paths ?? resolvePaths({ configDir: await tempDir() });
  const bus = new EventBus();
  const events: Recorded[] = [];
  bus.onAny((name, payload) => events.push({ name, payload }));
  const runner = new ScriptedRunner();
  const problems = new Problems({ bus });
  let tick = 0;
  const queue = new FirmwareQueue({
    bus,
    paths: p,
    runner,
    options,
    problems,
    // Strictly increasing timestamps keep "newest first" deterministic.
    now: () => new Date(Date.UTC(2026, 10, 23, 10, 0, 0, tick++)),
  });
  await queue.start();
  const lifecycle = (jobId: string) =>
    events
      .filter((e) => e.name.startsWith("job_") && e.name !== "job_output" && e.name !== "job_progress" && e.name !== "job_removed")
      .filter((e) => (e.payload as { job: { job_id: string } }).job.job_id === jobId)
      .map((e) => e.name);
  return { queue, runner, bus, events, paths: p, lifecycle, problems };
}

describe("FirmwareQueue: running jobs", () => {
  it("runs a compile to completion with exactly one terminal event", async () => {
    const { queue, runner, events, lifecycle } = await setup();
    const job = await queue.enqueue({ configuration: "kitchen.yaml", job_type: "compile" });
    const run = await runner.next();
    expect(run.phase).toBe("compile");
    run.line("INFO Compiling\n").line("[ 50%] Compiling a.o\n");
    run.succeed();
    await waitFor(() => queue.get(job.job_id)?.status === "completed");
    expect(lifecycle(job.job_id)).toEqual(["job_queued", "job_started", "job_completed"]);
    expect(events.filter((e) => e.name === "job_output").map((e) => (e.payload as { line: string }).line)).toEqual([
      "INFO Compiling\n",
      "[ 50%] Compiling a.o\n",
    ]);
    expect(queue.get(job.job_id)).toMatchObject({ exit_code: 0, progress: 100, error: null, source: "local" });
    await queue.stop();
  });

  it("runs an install as one job: compile, then upload with progress back at 0", async () => {
    const { queue, runner, events, lifecycle } = await setup();
    const job = await queue.enqueue({ configuration: "kitchen.yaml", job_type: "install", port: "OTA" });
    const compile = await runner.next();
    compile.line("[ 80%] Compiling\n").succeed();
    const upload = await runner.next();
    expect(upload.phase).toBe("upload");
    expect(upload.job.job_id).toBe(job.job_id);
    expect(queue.get(job.job_id)).toMatchObject({ status: "running", phase: "upload", progress: 0 });
    upload.line("Uploading: [==   ] 30% \r").succeed();
    await waitFor(() => queue.get(job.job_id)?.status === "completed");
    const progress = events.filter((e) => e.name === "job_progress").map((e) => (e.payload as { progress: number }).progress);
    expect(progress).toEqual([80, 0, 30]);
    expect(lifecycle(job.job_id)).toEqual(["job_queued", "job_started", "job_completed"]);
    await queue.stop();
  });

  it("fails a job with the runner's error and exit code", async () => {
    const { queue, runner, lifecycle } = await setup();
    const job = await queue.enqueue({ configuration: "a.yaml", job_type: "install" });
    (await runner.next()).fail("esphome compile failed (exit code 1)", 1);
    await waitFor(() => queue.get(job.job_id)?.status === "failed");
    expect(queue.get(job.job_id)).toMatchObject({ error: "esphome compile failed (exit code 1)", exit_code: 1, phase: "compile" });
    expect(runner.runs).toHaveLength(1); // the upload phase never ran
    expect(lifecycle(job.job_id)).toEqual(["job_queued", "job_started", "job_failed"]);
    await queue.stop();
  });

  it("reports a runner that throws as a failure, not a crash", async () => {
    const { queue, lifecycle } = await setup();
    const thrower = new FirmwareQueue({
      bus: new EventBus(),
      paths: resolvePaths({ configDir: await tempDir() }),
      runner: { runPhase: () => Promise.reject(new Error("spawn exploded")) },
    });
    await thrower.start();
    const job = await thrower.enqueue({ configuration: "a.yaml", job_type: "compile" });
    await waitFor(() => thrower.get(job.job_id)?.status === "failed");
    expect(thrower.get(job.job_id)?.error).toBe("spawn exploded");
    expect(lifecycle(job.job_id)).toEqual([]);
    await thrower.stop();
    await queue.stop();
  });
});

describe("FirmwareQueue: lanes", () => {
  it("compiles one at a time by default", async () => {
    const { queue, runner } = await setup();
    await queue.enqueue({ configuration: "a.yaml", job_type: "compile" });
    const b = await queue.enqueue({ configuration: "b.yaml", job_type: "compile" });
    const first = await runner.next();
    expect(runner.runs).toHaveLength(1);
    expect(queue.get(b.job_id)?.status).toBe("queued");
    expect(queue.status()).toEqual({ idle: false, running: 1, queue_depth: 1 });
    first.succeed();
    const second = await runner.next();
    expect(second.job.job_id).toBe(b.job_id);
    second.succeed();
    await waitFor(() => queue.status().idle);
    await queue.stop();
  });

  it("pipelines a bulk install: B compiles while A uploads", async () => {
    const { queue, runner } = await setup();
    const a = await queue.enqueue({ configuration: "a.yaml", job_type: "install" });
    const b = await queue.enqueue({ configuration: "b.yaml", job_type: "install" });
    (await runner.next()).succeed(); // A compile
    const second = await runner.next();
    const third = await runner.next();
    const byJob = new Map([second, third].map((r) => [`${r.job.job_id}:${r.phase}`, r]));
    expect([...byJob.keys()].sort()).toEqual([`${a.job_id}:upload`, `${b.job_id}:compile`].sort());
    for (const r of byJob.values()) r.succeed();
    (await runner.next()).succeed(); // B upload
    await waitFor(() => queue.get(b.job_id)?.status === "completed" && queue.get(a.job_id)?.status === "completed");
    await queue.stop();
  });

  it("runs up to four uploads at once and holds the fifth", async () => {
    const { queue, runner } = await setup();
    const jobs = [];
    for (const name of ["a", "b", "c", "d", "e"]) jobs.push(await queue.enqueue({ configuration: `${name}.yaml`, job_type: "upload" }));
    const started = await Promise.all([runner.next(), runner.next(), runner.next(), runner.next()]);
    expect(runner.runs).toHaveLength(4);
    expect(queue.get(jobs[4]!.job_id)?.status).toBe("queued");
    started[0].succeed();
    const fifth = await runner.next();
    expect(fifth.job.job_id).toBe(jobs[4]!.job_id);
    for (const r of [...started.slice(1), fifth]) r.succeed();
    await queue.stop();
  });

  it("honours a larger compile concurrency", async () => {
    const { queue, runner } = await setup({ compileConcurrency: 2 });
    await queue.enqueue({ configuration: "a.yaml", job_type: "compile" });
    await queue.enqueue({ configuration: "b.yaml", job_type: "compile" });
    await Promise.all([runner.next(), runner.next()]);
    expect(runner.runs).toHaveLength(2);
    await queue.stop();
  });

  it("frees the lane before the terminal event fires", async () => {
    const { queue, runner, bus } = await setup();
    let seen: unknown = null;
    bus.on("job_completed", () => {
      seen = queue.status();
    });
    await queue.enqueue({ configuration: "a.yaml", job_type: "compile" });
    (await runner.next()).succeed();
    await waitFor(() => seen !== null);
    expect(seen).toEqual({ idle: true, running: 0, queue_depth: 0 });
    await queue.stop();
  });
});

describe("FirmwareQueue: supersede and cancel", () => {
  it("supersedes an older active job of the same configuration, queued event first", async () => {
    const { queue, runner, events } = await setup();
    const old = await queue.enqueue({ configuration: "a.yaml", job_type: "compile" });
    const oldRun = await runner.next();
    const fresh = await queue.enqueue({ configuration: "a.yaml", job_type: "install" });
    expect(oldRun.signal.aborted).toBe(true);
    await waitFor(() => queue.get(old.job_id)?.status === "cancelled");
    expect(queue.get(old.job_id)?.error).toBe(`superseded by job ${fresh.job_id}`);
    const order = events
      .filter((e) => e.name === "job_queued" || e.name === "job_cancelled")
      .map((e) => `${e.name}:${(e.payload as { job: { job_id: string } }).job.job_id}`);
    expect(order).toEqual([`job_queued:${old.job_id}`, `job_queued:${fresh.job_id}`, `job_cancelled:${old.job_id}`]);
    (await runner.next()).succeed();
    await queue.stop();
  });

  it("cancels a queued job at once with one event", async () => {
    const { queue, runner, lifecycle } = await setup();
    await queue.enqueue({ configuration: "a.yaml", job_type: "compile" });
    const b = await queue.enqueue({ configuration: "b.yaml", job_type: "compile" });
    await runner.next();
    const cancelled = queue.cancel(b.job_id);
    expect(cancelled.status).toBe("cancelled");
    expect(cancelled.completed_at).not.toBeNull();
    expect(lifecycle(b.job_id)).toEqual(["job_queued", "job_cancelled"]);
    expect(runner.runs).toHaveLength(1);
    await queue.stop();
  });

  it("signals a running job and lets the runner finalise it", async () => {
    const { queue, runner, lifecycle } = await setup();
    runner.endOnAbort = false;
    const job = await queue.enqueue({ configuration: "a.yaml", job_type: "compile" });
    const run = await runner.next();
    queue.cancel(job.job_id);
    expect(run.signal.aborted).toBe(true);
    expect(queue.get(job.job_id)?.status).toBe("running");
    expect(lifecycle(job.job_id)).toEqual(["job_queued", "job_started"]);
    run.fail("terminated", null);
    await waitFor(() => queue.get(job.job_id)?.status === "cancelled");
    expect(lifecycle(job.job_id)).toEqual(["job_queued", "job_started", "job_cancelled"]);
    await queue.stop();
  });

  it.each(["fails", "succeeds"] as const)("lets a cancel win when the run %s at the same moment", async (outcome) => {
    const { queue, runner } = await setup();
    runner.endOnAbort = false;
    const job = await queue.enqueue({ configuration: "a.yaml", job_type: "install" });
    const run = await runner.next();
    queue.cancel(job.job_id);
    if (outcome === "fails") run.fail("exit 1", 1);
    else run.succeed();
    await waitFor(() => queue.get(job.job_id)?.status === "cancelled");
    expect(runner.runs).toHaveLength(1);
    await queue.stop();
  });

  it("cancels an install waiting between compile and upload at once", async () => {
    const { queue, runner } = await setup({ uploadConcurrency: 1 });
    const blocker = await queue.enqueue({ configuration: "z.yaml", job_type: "upload" });
    const blockerRun = await runner.next();
    const job = await queue.enqueue({ configuration: "a.yaml", job_type: "install" });
    (await runner.next()).succeed();
    await waitFor(() => queue.get(job.job_id)?.phase === "upload");
    expect(queue.cancel(job.job_id).status).toBe("cancelled");
    blockerRun.succeed();
    await waitFor(() => queue.get(blocker.job_id)?.status === "completed");
    expect(runner.runs).toHaveLength(2);
    await queue.stop();
  });

  it("rejects cancelling an unknown job with not_found naming the id", async () => {
    const { queue } = await setup();
    expect(() => queue.cancel("0123456789ab")).toThrow(expect.objectContaining({ code: "not_found", message: "Job not found: 0123456789ab" }));
    await queue.stop();
  });

  it("rejects cancelling a finished job with invalid_args and fires nothing", async () => {
    const { queue, runner, lifecycle } = await setup();
    const job = await queue.enqueue({ configuration: "a.yaml", job_type: "compile" });
    (await runner.next()).succeed();
    await waitFor(() => queue.get(job.job_id)?.status === "completed");
    expect(() => queue.cancel(job.job_id)).toThrow(expect.objectContaining({ code: "invalid_args", message: "Cannot cancel a completed job" }));
    expect(lifecycle(job.job_id)).toEqual(["job_queued", "job_started", "job_completed"]);
    await queue.stop();
  });
});

describe("FirmwareQueue: persistence and recovery", () => {
  it("keeps output out of the index and never rewrites it per output line", async () => {
    const { queue, runner, paths } = await setup();
    const job = await queue.enqueue({ configuration: "a.yaml", job_type: "compile" });
    const run = await runner.next();
    await waitFor(async () => (await readFile(paths.jobsFile, "utf8")).includes('"running"'));
    const before = await stat(paths.jobsFile);
    for (let i = 0; i < 5000; i++) run.line(`Compiling file${i}.o\n`);
    await new Promise((r) => setTimeout(r, 300));
    const after = await stat(paths.jobsFile);
    expect(after.ino).toBe(before.ino); // atomic writes replace the inode; same inode = not rewritten
    expect(await readFile(paths.jobsFile, "utf8")).not.toContain("Compiling");
    run.succeed();
    await waitFor(() => queue.get(job.job_id)?.status === "completed");
    await queue.stop();
    const logLines = (await readFile(paths.jobLog(job.job_id), "utf8")).split("\n");
    expect(logLines[0]).toBe(trimNotice(3000).trimEnd());
    expect(await queue.output(job.job_id)).toHaveLength(2001);
  });

  it("re-queues a job that was running when the process died, keeping its log", async () => {
    const first = await setup();
    const job = await first.queue.enqueue({ configuration: "a.yaml", job_type: "install", port: "OTA" });
    const run = await first.runner.next();
    run.line("before the crash\n").line("partial");
    await waitFor(async () => (await readFile(first.paths.jobLog(job.job_id), "utf8").catch(() => "")).includes("partial"));
    // Simulate a crash: no stop(); a new queue reads the same files.
    const second = await setup({}, first.paths);
    const rerun = await second.runner.next();
    expect(rerun.job.job_id).toBe(job.job_id);
    expect(rerun.phase).toBe("compile");
    expect(await second.queue.output(job.job_id)).toEqual(["before the crash\n", "partial", "\n", RESTART_MARKER]);
    rerun.succeed();
    (await second.runner.next()).succeed();
    await waitFor(() => second.queue.get(job.job_id)?.status === "completed");
    expect(second.lifecycle(job.job_id)).toEqual(["job_started", "job_completed"]);
    run.succeed();
    await second.queue.stop();
  });

  it("keeps queued jobs queued and finished jobs finished across a restart", async () => {
    const first = await setup();
    const done = await first.queue.enqueue({ configuration: "a.yaml", job_type: "compile" });
    (await first.runner.next()).succeed();
    await waitFor(() => first.queue.get(done.job_id)?.status === "completed");
    const blocker = await first.queue.enqueue({ configuration: "b.yaml", job_type: "compile" });
    await first.runner.next();
    const waiting = await first.queue.enqueue({ configuration: "c.yaml", job_type: "compile" });
    const gone = await first.queue.enqueue({ configuration: "d.yaml", job_type: "compile" });
    first.queue.cancel(gone.job_id);
    await first.queue.stop();
    expect(first.queue.get(blocker.job_id)?.status).toBe("cancelled"); // stop cancels what runs

    const second = await setup({}, first.paths);
    expect(second.queue.get(done.job_id)?.status).toBe("completed");
    expect(second.queue.get(gone.job_id)?.status).toBe("cancelled");
    const rerun = await second.runner.next();
    expect(rerun.job.job_id).toBe(waiting.job_id);
    expect(second.runner.runs).toHaveLength(1);
    rerun.succeed();
    await second.queue.stop();
  });

  it("removes the temp files of writes a killed builder did not finish", async () => {
    const paths = resolvePaths({ configDir: await tempDir() });
    await mkdir(paths.jobLogsDir, { recursive: true });
    const left = [
      path.join(paths.stateDir, ".jobs.json.0123456789ab.tmp"),
      path.join(paths.stateDir, ".processes.json.0123456789ab.tmp"),
      path.join(paths.jobLogsDir, ".aaaaaaaaaaaa.log.0123456789ab.tmp"),
    ];
    for (const file of left) await writeFile(file, "half");
    // Another part's file in the same folder is not the queue's to touch.
    await writeFile(path.join(paths.stateDir, ".receiver.json.0123456789ab.tmp"), "in flight");
    const { queue } = await setup({}, paths);
    expect((await readdir(paths.stateDir)).filter((f) => f.endsWith(".tmp"))).toEqual([".receiver.json.0123456789ab.tmp"]);
    expect(await readdir(paths.jobLogsDir)).toEqual([]);
    await queue.stop();
  });

  it("runs a queued job again when its log cannot be read: the log is moved aside and reported", async () => {
    const paths = resolvePaths({ configDir: await tempDir() });
    const row = { job_id: "aaaaaaaaaaaa", configuration: "a.yaml", job_type: "compile", status: "running", created_at: "2026-01-01T00:00:00.000Z" };
    await mkdir(paths.jobLog("aaaaaaaaaaaa"), { recursive: true });
    await writeFile(paths.jobsFile, JSON.stringify({ version: 1, jobs: [row] }));
    const { queue, runner, problems } = await setup({}, paths);
    expect(problems.list()).toMatchObject([{ code: "state_file_unreadable", subject: paths.jobLog("aaaaaaaaaaaa") }]);
    expect(problems.list()[0]?.message).toMatch(/could not be read \(EISDIR.*\); it was moved to .*aaaaaaaaaaaa\.log\.corrupt, and the job runs again/);
    (await runner.next()).line("again\n").succeed();
    await waitFor(() => queue.get("aaaaaaaaaaaa")?.status === "completed");
    expect(await queue.output("aaaaaaaaaaaa")).toEqual(["*** builder restarted mid-build; the previous run's log is above, the rebuild begins below ***\n", "again\n"]);
    await queue.stop();
  });

  it("starts with an empty queue when there is no index", async () => {
    const { queue, problems } = await setup();
    expect(queue.list()).toEqual([]);
    expect(problems.list()).toEqual([]);
    await queue.stop();
  });

  it("moves a corrupt index aside, reports it and still starts", async () => {
    const paths = resolvePaths({ configDir: await tempDir() });
    await mkdir(paths.stateDir, { recursive: true });
    await writeFile(paths.jobsFile, "{\"version\": 1, \"jobs\": [tru");
    const { queue, problems } = await setup({}, paths);
    expect(queue.list()).toEqual([]);
    expect(problems.list()).toMatchObject([{ code: "state_file_corrupt", subject: paths.jobsFile }]);
    expect(problems.list()[0]?.message).toMatch(/not valid JSON.*moved to .*jobs\.json\.corrupt/);
    expect(await readFile(`${paths.jobsFile}.corrupt`, "utf8")).toContain("[tru");
    await queue.stop();
  });

  it("skips a row with an unknown source and loads the rest", async () => {
    const paths = resolvePaths({ configDir: await tempDir() });
    await mkdir(paths.stateDir, { recursive: true });
    const good = { job_id: "aaaaaaaaaaaa", configuration: "a.yaml", job_type: "compile", status: "completed", created_at: "2026-01-01T00:00:00.000Z" };
    const bad = { ...good, job_id: "bbbbbbbbbbbb", configuration: "b.yaml", source: "intergalactic" };
    await writeFile(paths.jobsFile, JSON.stringify({ version: 1, jobs: [good, bad] }));
    const { queue, problems } = await setup({}, paths);
    expect(queue.list().map((j) => j.job_id)).toEqual(["aaaaaaaaaaaa"]);
    expect(problems.list()).toMatchObject([{ code: "state_rows_skipped", subject: paths.jobsFile }]);
    expect(problems.list()[0]?.message).toMatch(/bbbbbbbbbbbb.*source/);
    await queue.stop();
  });
});

describe.skipIf(missingTool(tmpfsUnavailableReason() === null, "tmpfs in a mount namespace"))("FirmwareQueue: a full disk (a real tmpfs)", () => {
  it("refuses a job it cannot write down: disk_full, no event, the older job of that configuration untouched", async () => {
    const disk = await smallDisk(512);
    const { queue, runner, events, paths, problems } = await setup({}, resolvePaths({ configDir: disk.root }));
    const older = await queue.enqueue({ configuration: "a.yaml", job_type: "compile" });
    await runner.next();
    await disk.fill();
    const before = events.length;
    await expect(queue.enqueue({ configuration: "a.yaml", job_type: "compile" })).rejects.toMatchObject({
      code: "disk_full",
      message: `No space left on ${paths.stateDir} (ENOSPC writing jobs.json): free some space and try again`,
    });
    expect(events.slice(before).map((e) => e.name)).toEqual(["builder_problem_added"]);
    expect(queue.list().map((j) => [j.job_id, j.status])).toEqual([[older.job_id, "running"]]);
    expect(queue.status()).toMatchObject({ running: 1, queue_depth: 0 });
    expect(problems.list()).toMatchObject([{ code: "disk_full", subject: paths.jobsFile }]);

    await disk.free();
    const newer = await queue.enqueue({ configuration: "a.yaml", job_type: "compile" });
    expect(problems.list()).toEqual([]);
    await waitFor(() => queue.get(older.job_id)?.status === "cancelled");
    expect(queue.get(older.job_id)?.error).toBe(`superseded by job ${newer.job_id}`);
    (await runner.next()).succeed();
    await waitFor(() => queue.get(newer.job_id)?.status === "completed");
    await queue.stop();
    expect(await disk.tempFiles()).toEqual([]);
  });
});

describe("FirmwareQueue: history", () => {
  it("keeps the newest finished job per configuration and type, within the cap", async () => {
    const { queue, runner } = await setup({ historyLimit: 2 });
    const ids: string[] = [];
    for (const name of ["a", "a", "b", "c"]) {
      const job = await queue.enqueue({ configuration: `${name}.yaml`, job_type: "compile" });
      ids.push(job.job_id);
      (await runner.next()).succeed();
      await waitFor(() => queue.get(job.job_id)?.status === "completed");
    }
    expect(queue.list().map((j) => j.job_id)).toEqual([ids[3], ids[2]]);
    await queue.stop();
  });

  it("clears finished jobs and their logs but never active ones", async () => {
    const { queue, runner, paths } = await setup();
    const done = await queue.enqueue({ configuration: "a.yaml", job_type: "compile" });
    (await runner.next()).line("hello\n").succeed();
    await waitFor(() => queue.get(done.job_id)?.status === "completed");
    await queue.stop(); // flushes the log
    const again = await setup({}, paths);
    const active = await again.queue.enqueue({ configuration: "b.yaml", job_type: "compile" });
    await again.runner.next();
    expect(await again.queue.clearHistory()).toBe(1);
    expect(again.queue.list().map((j) => j.job_id)).toEqual([active.job_id]);
    await expect(stat(paths.jobLog(done.job_id))).rejects.toThrow();
    await again.queue.stop();
  });
});
