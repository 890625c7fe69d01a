/**
 * The job log writer against real files: batched appends, rewrites that
 * coalesce and keep their distance, a failed write that is logged, and a real
 * disk that fills up (a tmpfs in a mount namespace of its own): writes fail
 * without a crash or a leaked temp file, the failure is reported once and
 * cleared when a write lands again.
 */
import { readFile, readdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { FLUSH_CHARS, JobLogWriter, REWRITE_INTERVAL_MS, readJobLog } from "../../src/firmware/job-log.ts";
import { EventBus } from "../../src/events.ts";
import { setLogSink } from "../../src/logger.ts";
import { Problems } from "../../src/problems.ts";
import { smallDisk, tmpfsUnavailableReason } from "../helpers/tmpfs.ts";
import { tempDir } from "../helpers/tmp.ts";
import { missingTool } from "../helpers/tools.ts";

const NO_TMPFS = tmpfsUnavailableReason();

afterEach(() => {
  vi.useRealTimers();
});

describe("JobLogWriter", () => {
  it("appends in batches, not per line, and the file holds every line in order", async () => {
    const file = path.join(await tempDir(), "job.log");
    const lines = Array.from({ length: 20_000 }, (_, i) => `Compiling file_${i}.cpp.o\n`);
    const w = new JobLogWriter(file, { source: () => lines });
    for (const line of lines) w.append(line);
    expect(w.pendingChars).toBeGreaterThan(FLUSH_CHARS);
    await w.flush();
    expect(w.stats).toEqual({ writes: 1, rewrites: 0 });
    expect(await readJobLog(file)).toEqual(lines);
  });

  it("turns any number of trims during a write into one more rewrite, from the lines as they are then", async () => {
    const file = path.join(await tempDir(), "job.log");
    let lines = ["first\n"];
    const w = new JobLogWriter(file, { source: () => lines });
    w.replace();
    const first = w.flush(); // a rewrite is under way
    for (let i = 0; i < 1000; i++) {
      lines = [...lines.slice(-50), `line ${i}\n`]; // a trim
      w.replace();
      w.append(`ignored ${i}\n`); // part of the rewrite to come
    }
    await first;
    await w.flush();
    expect(w.stats).toEqual({ writes: 2, rewrites: 2 });
    expect(await readFile(file, "utf8")).toBe(lines.join(""));
  });

  it("starts mid-run rewrites at most once per REWRITE_INTERVAL_MS, and flush does not wait for the interval", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const file = path.join(await tempDir(), "job.log");
    let lines = ["a\n"];
    const w = new JobLogWriter(file, { source: () => lines });
    w.replace();
    await vi.advanceTimersByTimeAsync(0);
    expect(w.stats.rewrites).toBe(1);
    await w.flush(); // the first rewrite lands
    lines = ["b\n"];
    w.replace();
    await vi.advanceTimersByTimeAsync(REWRITE_INTERVAL_MS / 2);
    expect(w.stats.rewrites).toBe(1);
    lines = ["c\n"];
    w.replace();
    await vi.advanceTimersByTimeAsync(REWRITE_INTERVAL_MS / 2 + 10);
    expect(w.stats.rewrites).toBe(2);
    await w.flush();
    expect(await readFile(file, "utf8")).toBe("c\n");
    lines = ["d\n"];
    w.replace();
    await w.flush();
    expect(w.stats.rewrites).toBe(3);
    expect(await readFile(file, "utf8")).toBe("d\n");
  });

  it("logs a failed write, resolves anyway, and keeps writing later lines", async () => {
    const dir = await tempDir();
    await writeFile(path.join(dir, "not-a-dir"), "");
    const logged: string[] = [];
    const restore = setLogSink((line) => logged.push(line));
    try {
      const w = new JobLogWriter(path.join(dir, "not-a-dir", "job.log"), { source: () => ["x\n"] });
      w.append("x\n");
      await w.flush();
      w.replace();
      await w.flush();
      expect(w.stats).toEqual({ writes: 2, rewrites: 1 });
    } finally {
      restore();
    }
    expect(logged.filter((l) => l.includes("not-a-dir/job.log failed"))).toHaveLength(2);
  });

  it.skipIf(missingTool(NO_TMPFS === null, `tmpfs in a mount namespace (${NO_TMPFS})`))("on a full disk: flush says false, nothing leaks, one problem per log folder, cleared once a write lands", async () => {
    const disk = await smallDisk(256);
    const bus = new EventBus();
    const problems = new Problems({ bus });
    const dir = path.join(disk.root, "job-logs");
    let aLines: readonly string[] = ["start\n"];
    const a = new JobLogWriter(path.join(dir, "aaaaaaaaaaaa.log"), { source: () => aLines, problems });
    const b = new JobLogWriter(path.join(dir, "bbbbbbbbbbbb.log"), { source: () => [], problems });
    a.append("start\n");
    expect(await a.flush()).toBe(true);
    await disk.fill();
    const lines = Array.from({ length: 4000 }, (_, i) => `Compiling file_${i}.cpp.o\n`);
    aLines = lines;
    for (let i = 0; i < 50; i++) {
      a.replace();
      expect(await a.flush()).toBe(false);
    }
    for (const line of lines) b.append(line);
    expect(await b.flush()).toBe(false);
    expect(problems.list()).toHaveLength(1);
    expect(problems.list()[0]).toMatchObject({ code: "disk_full", subject: dir });
    expect(problems.list()[0]?.message).toMatch(/^Job logs could not be written: No space left on .*job-logs.*free some space and try again\./);
    expect(await disk.tempFiles()).toEqual([]);
    expect(await readFile(path.join(dir, "aaaaaaaaaaaa.log"), "utf8")).toBe("start\n");

    await disk.free();
    a.replace();
    expect(await a.flush()).toBe(true);
    expect(await readJobLog(path.join(dir, "aaaaaaaaaaaa.log"))).toEqual(lines);
    expect(problems.list()).toEqual([]);
    expect((await readdir(dir)).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });
});
