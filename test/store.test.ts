/**
 * State files under faults, on a real small disk (a tmpfs in a mount
 * namespace of its own): a full disk, a read-only disk, a state file that is a
 * folder. Nothing leaks, nothing is half-written, every failure names its fix.
 */
import { mkdir, readFile, readdir, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { BuilderError } from "../src/errors.ts";
import { EventBus } from "../src/events.ts";
import { Problems } from "../src/problems.ts";
import { JsonStore, atomicWrite, removeStaleTempFiles } from "../src/store.ts";
import { smallDisk, tmpfsUnavailableReason } from "./helpers/tmpfs.ts";
import { tempDir, waitFor } from "./helpers/tmp.ts";
import { missingTool } from "./helpers/tools.ts";

const NO_TMPFS = tmpfsUnavailableReason();
const schema = z.object({ n: z.number(), pad: z.string().optional() });

function problemsOnABus(): { problems: Problems; events: string[] } {
  const bus = new EventBus();
  const events: string[] = [];
  bus.on("builder_problem_added", (e) => events.push(`added ${e.problem.id}`));
  bus.on("builder_problem_cleared", (e) => events.push(`cleared ${e.id}`));
  return { problems: new Problems({ bus }), events };
}

async function thrown(promise: Promise<unknown>): Promise<BuilderError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(BuilderError);
    return err as BuilderError;
  }
  throw new Error("expected a rejection");
}

describe.skipIf(missingTool(NO_TMPFS === null, `tmpfs in a mount namespace (${NO_TMPFS})`))(`atomicWrite on a real small disk${NO_TMPFS === null ? "" : ` (skipped: ${NO_TMPFS})`}`, () => {
  it("on a full disk fails with disk_full naming the folder, keeps the old file and leaves no temp file", async () => {
    const disk = await smallDisk(256);
    const file = path.join(disk.root, "state", "jobs.json");
    await atomicWrite(file, "old\n");
    await disk.fill();
    const err = await thrown(atomicWrite(file, "x".repeat(64 * 1024)));
    expect(err.code).toBe("disk_full");
    expect(err.message).toBe(`No space left on ${path.dirname(file)} (ENOSPC writing jobs.json): free some space and try again`);
    expect(await readFile(file, "utf8")).toBe("old\n");
    expect(await disk.tempFiles()).toEqual([]);

    await disk.free();
    await atomicWrite(file, "new\n");
    expect(await readFile(file, "utf8")).toBe("new\n");
    expect(await disk.tempFiles()).toEqual([]);
  });

  it("leaves no temp file after 200 failed rewrites (what one long job does to its log)", async () => {
    const disk = await smallDisk(256);
    const file = path.join(disk.root, "job-logs", "0123456789ab.log");
    await atomicWrite(file, "line\n");
    await disk.fill();
    for (let i = 0; i < 200; i++) await expect(atomicWrite(file, "line\n".repeat(2000))).rejects.toThrow(/No space left/);
    expect(await disk.tempFiles()).toEqual([]);
    expect(await readdir(path.dirname(file))).toEqual(["0123456789ab.log"]);
  });

  it("on a read-only disk fails with storage_error naming the file and what to check", async () => {
    const disk = await smallDisk(256);
    const file = path.join(disk.root, "jobs.json");
    await atomicWrite(file, "old\n");
    disk.setReadOnly(true);
    const err = await thrown(atomicWrite(file, "new\n"));
    expect(err.code).toBe("storage_error");
    expect(err.message).toMatch(new RegExp(`^Could not write ${file} \\(EROFS.*\\): check that ${disk.root} exists and is writable, then try again$`));
    disk.setReadOnly(false);
    expect(await readFile(file, "utf8")).toBe("old\n");
    expect(await disk.tempFiles()).toEqual([]);
  });
});

describe("atomicWrite when the rename fails", () => {
  it("removes its temp file when the target is a folder", async () => {
    const dir = await tempDir();
    const file = path.join(dir, "jobs.json");
    await mkdir(file);
    await writeFile(path.join(file, "inside"), "x");
    const err = await thrown(atomicWrite(file, "{}\n"));
    expect(err.code).toBe("storage_error");
    expect(err.message).toContain(file);
    expect((await readdir(dir)).sort()).toEqual(["jobs.json"]);
  });
});

describe("removeStaleTempFiles", () => {
  it("removes what an interrupted atomicWrite left, for the named targets only", async () => {
    const dir = await tempDir();
    const names = [".jobs.json.0123456789ab.tmp", ".processes.json.ba9876543210.tmp", ".receiver.json.0123456789ab.tmp", "jobs.json", "notes.tmp", ".jobs.json.xyz.tmp"];
    for (const name of names) await writeFile(path.join(dir, name), "x");
    expect(await removeStaleTempFiles(dir, ["jobs.json", "processes.json"])).toBe(2);
    expect((await readdir(dir)).sort()).toEqual([".jobs.json.xyz.tmp", ".receiver.json.0123456789ab.tmp", "jobs.json", "notes.tmp"]);
    expect(await removeStaleTempFiles(dir)).toBe(1);
    expect(await removeStaleTempFiles(path.join(dir, "missing"))).toBe(0);
  });
});

describe.skipIf(missingTool(NO_TMPFS === null, `tmpfs in a mount namespace (${NO_TMPFS})`))("JsonStore writes on a full disk", () => {
  it("reports a failed scheduled write, tries again, and clears the problem once space is back", async () => {
    const disk = await smallDisk(256);
    const { problems, events } = problemsOnABus();
    const file = path.join(disk.root, "jobs.json");
    const store = new JsonStore({ file, schema, debounceMs: 0, retryMs: 50, title: "The job index", problems });
    await store.saveNow(() => ({ n: 1 }));
    await disk.fill();
    store.scheduleSave(() => ({ n: 2, pad: "y".repeat(8192) }));
    await waitFor(() => problems.list().length === 1, 5000, "the disk_full problem");
    expect(problems.list()[0]).toMatchObject({ code: "disk_full", subject: file, id: `disk_full:${file}` });
    expect(problems.list()[0]?.message).toMatch(/^The job index could not be saved: No space left on .*: free some space and try again\. /);
    expect(JSON.parse(await readFile(file, "utf8"))).toEqual({ n: 1 });
    // Retries do not repeat the event.
    await new Promise((r) => setTimeout(r, 200));
    expect(events).toEqual([`added disk_full:${file}`]);

    await disk.free();
    await waitFor(() => problems.list().length === 0, 5000, "the problem to clear");
    expect(JSON.parse(await readFile(file, "utf8"))).toMatchObject({ n: 2 });
    expect(events).toEqual([`added disk_full:${file}`, `cleared disk_full:${file}`]);
    expect(await disk.tempFiles()).toEqual([]);
  });

  it("saveNow throws disk_full and the scheduled write it took over is written later", async () => {
    const disk = await smallDisk(256);
    const file = path.join(disk.root, "jobs.json");
    const store = new JsonStore({ file, schema, debounceMs: 60_000, retryMs: 50 });
    await store.saveNow(() => ({ n: 1 }));
    await disk.fill();
    store.scheduleSave(() => ({ n: 2 }));
    const err = await thrown(store.saveNow(() => ({ n: 3, pad: "z".repeat(8192) })));
    expect(err.code).toBe("disk_full");
    await disk.free();
    await waitFor(async () => (JSON.parse(await readFile(file, "utf8")) as { n: number }).n === 2, 5000, "the scheduled write");
    expect(await disk.tempFiles()).toEqual([]);
  });
});

describe("JsonStore.load of an unusable file", () => {
  it("moves a file that is a folder aside, reports it by name, and the next save writes a file", async () => {
    const dir = await tempDir();
    const file = path.join(dir, "jobs.json");
    await mkdir(file);
    await writeFile(path.join(file, "kept"), "evidence");
    const { problems } = problemsOnABus();
    const store = new JsonStore({ file, schema, title: "The job index", problems });
    const loaded = await store.load();
    expect(loaded).toMatchObject({ kind: "corrupt", movedTo: `${file}.corrupt` });
    expect(await readFile(path.join(`${file}.corrupt`, "kept"), "utf8")).toBe("evidence");
    const [problem] = problems.list();
    expect(problem).toMatchObject({ code: "state_file_unreadable", subject: file });
    expect(problem?.message).toBe(
      `The job index ${file} could not be read (EISDIR: illegal operation on a directory, read); it was moved to ${file}.corrupt ` +
        "and the builder started without it. Look there for anything you need from it, then delete it.",
    );
    await store.saveNow(() => ({ n: 1 }));
    expect((await stat(file)).isFile()).toBe(true);
  });

  it("keeps an earlier quarantine and uses a new name", async () => {
    const dir = await tempDir();
    const file = path.join(dir, "x.json");
    await writeFile(`${file}.corrupt`, "first");
    await writeFile(file, "not json");
    const loaded = await new JsonStore({ file, schema }).load();
    expect(loaded.kind).toBe("corrupt");
    const movedTo = loaded.kind === "corrupt" ? loaded.movedTo : null;
    expect(movedTo).toMatch(/x\.json\.\d+\.corrupt$/);
    expect(await readFile(`${file}.corrupt`, "utf8")).toBe("first");
  });

  it.skipIf(missingTool(NO_TMPFS === null, `tmpfs in a mount namespace (${NO_TMPFS})`))("ignores a file it can neither read nor move (read-only disk) and says so", async () => {
    const disk = await smallDisk(256);
    const file = path.join(disk.root, "jobs.json");
    await mkdir(file);
    disk.setReadOnly(true);
    const { problems } = problemsOnABus();
    const loaded = await new JsonStore({ file, schema, title: "The job index", problems }).load();
    expect(loaded).toMatchObject({ kind: "corrupt", movedTo: null });
    expect(problems.list()[0]?.message).toMatch(
      /could not be read \(EISDIR.*\) and could not be moved aside \(EROFS.*\); it is ignored and will not be saved\. Remove or repair it, then restart the builder\.$/,
    );
    disk.setReadOnly(false);
  });
});
