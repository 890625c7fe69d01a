/**
 * A job's log file on a real disk that fills up (a tmpfs in a mount namespace
 * of its own): writes fail without a crash or a leaked temp file, the failure
 * is reported once and cleared when a write lands again.
 */
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { EventBus } from "../../src/events.ts";
import { JobLogWriter, readJobLog } from "../../src/firmware/job-log.ts";
import { Problems } from "../../src/problems.ts";
import { smallDisk, tmpfsUnavailableReason } from "../helpers/tmpfs.ts";
import { tempDir } from "../helpers/tmp.ts";

const NO_TMPFS = tmpfsUnavailableReason();

describe("JobLogWriter", () => {
  it("appends in batches and replaces the whole file", async () => {
    const file = path.join(await tempDir(), "job-logs", "0123456789ab.log");
    const writer = new JobLogWriter(file);
    writer.append("a\n");
    writer.append("b\n");
    expect(await writer.flush()).toBe(true);
    expect(await readJobLog(file)).toEqual(["a\n", "b\n"]);
    writer.replace(["c\n"]);
    expect(await writer.flush()).toBe(true);
    expect(await readFile(file, "utf8")).toBe("c\n");
  });

  it.skipIf(NO_TMPFS !== null)("on a full disk: flush says false, nothing leaks, one problem per log folder, cleared once a write lands", async () => {
    const disk = await smallDisk(256);
    const bus = new EventBus();
    const problems = new Problems({ bus });
    const dir = path.join(disk.root, "job-logs");
    const a = new JobLogWriter(path.join(dir, "aaaaaaaaaaaa.log"), problems);
    const b = new JobLogWriter(path.join(dir, "bbbbbbbbbbbb.log"), problems);
    a.append("start\n");
    expect(await a.flush()).toBe(true);
    await disk.fill();
    const lines = Array.from({ length: 4000 }, (_, i) => `Compiling file_${i}.cpp.o\n`);
    for (let i = 0; i < 50; i++) {
      a.replace(lines);
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
    a.replace(lines);
    expect(await a.flush()).toBe(true);
    expect(await readJobLog(path.join(dir, "aaaaaaaaaaaa.log"))).toEqual(lines);
    expect(problems.list()).toEqual([]);
    expect((await readdir(dir)).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });
});
