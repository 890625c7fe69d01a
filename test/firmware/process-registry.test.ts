/**
 * The registry of running build processes: a restart kills what a crashed
 * builder left running, and nothing else. The file is not trusted. (A row
 * with pid 1 is tested against a real builder inside a pid namespace, in
 * test/fault-state.test.ts, where a mistake could not reach this machine.)
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { EventBus } from "../../src/events.ts";
import { ProcessRegistry, processRowSchema } from "../../src/firmware/process-registry.ts";
import { Problems } from "../../src/problems.ts";
import { tempDir } from "../helpers/tmp.ts";

async function startTime(pid: number): Promise<string> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]!;
}

function sleeper(opts: { detached: boolean; ownGroup?: boolean }): ChildProcess {
  const child = opts.ownGroup === true
    ? spawn("python3", ["-c", "import os; os.setpgid(0, 0); os.execvp('sleep', ['sleep', '30'])"], { stdio: "ignore" })
    : spawn("sleep", ["30"], { stdio: "ignore", detached: opts.detached });
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  return child;
}

function exited(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => { resolve(false); }, ms);
    child.once("exit", () => { clearTimeout(timer); resolve(true); });
  });
}

async function registryFile(rows: unknown): Promise<{ file: string; problems: Problems }> {
  const dir = await tempDir();
  const file = path.join(dir, "builder", "processes.json");
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, typeof rows === "string" ? rows : JSON.stringify(rows));
  return { file, problems: new Problems({ bus: new EventBus() }) };
}

describe("processRowSchema", () => {
  it("takes only a plain integer pid above 1 and a start time in ticks", () => {
    expect(processRowSchema.safeParse({ pid: 4242, start: "123456" }).success).toBe(true);
    for (const pid of [1, 0, -1, -4242, 1.5, "4242", 2 ** 23, Number.NaN, null]) {
      expect(processRowSchema.safeParse({ pid, start: "1" }).success, String(pid)).toBe(false);
    }
    for (const start of ["", "12a", "1".repeat(21), 5]) {
      expect(processRowSchema.safeParse({ pid: 4242, start }).success, String(start)).toBe(false);
    }
  });
});

describe("ProcessRegistry.reapStale", () => {
  it("kills a job's process group that is still the recorded process", async () => {
    const child = sleeper({ detached: true });
    const pid = child.pid!;
    const { file, problems } = await registryFile({ aaaaaaaaaaaa: { pid, start: await startTime(pid) } });
    expect(await new ProcessRegistry(file, problems).reapStale()).toBe(1);
    expect(await exited(child, 5000)).toBe(true);
    expect(JSON.parse(await readFile(file, "utf8"))).toEqual({});
    expect(problems.list()).toEqual([]);
  });

  it("leaves a process whose start time differs (its pid was reused)", async () => {
    const child = sleeper({ detached: true });
    const pid = child.pid!;
    const { file } = await registryFile({ aaaaaaaaaaaa: { pid, start: String(Number(await startTime(pid)) - 1) } });
    expect(await new ProcessRegistry(file).reapStale()).toBe(0);
    expect(await exited(child, 300)).toBe(false);
  });

  it("leaves a group leader that does not lead its own session: every job's process does", async () => {
    const child = sleeper({ detached: false, ownGroup: true });
    const pid = child.pid!;
    // Wait for python to have made its group and become sleep.
    for (let i = 0; i < 200; i++) {
      const comm = await readFile(`/proc/${pid}/comm`, "utf8").catch(() => "");
      if (comm.trim() === "sleep") break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const { file } = await registryFile({ aaaaaaaaaaaa: { pid, start: await startTime(pid) } });
    expect(await new ProcessRegistry(file).reapStale()).toBe(0);
    expect(await exited(child, 300)).toBe(false);
  });

  // Rows here are ones a mistake could not turn into a signal to this machine's init or
  // to everything (pid 1, 0, -1): those run against a builder inside a pid namespace.
  it("refuses bad rows without signalling anything, keeps them aside, reports them and still reaps the good row", async () => {
    const child = sleeper({ detached: true });
    const pid = child.pid!;
    const start = await startTime(pid);
    const rows = {
      aaaaaaaaaaaa: { pid, start },
      bbbbbbbbbbbb: { pid: String(pid), start },
      cccccccccccc: { pid: pid + 0.5, start },
      dddddddddddd: { pid: 2 ** 23, start: "1" },
      "not-a-job": { pid, start },
    };
    const { file, problems } = await registryFile(rows);
    expect(await new ProcessRegistry(file, problems).reapStale()).toBe(1);
    expect(await exited(child, 5000)).toBe(true);
    const [problem] = problems.list();
    expect(problem).toMatchObject({ code: "state_rows_skipped", subject: file });
    expect(problem?.message).toMatch(/^4 row\(s\) of .*processes\.json were refused and no process was signalled for them: "bbbbbbbbbbbb" \(pid: .*number/);
    expect(problem?.message).toContain(`They were kept in ${file}.skipped.`);
    const kept = JSON.parse(await readFile(`${file}.skipped`, "utf8")) as unknown[];
    expect(kept).toHaveLength(4);
  });

  it("moves a processes.json that is a folder aside and starts clean", async () => {
    const dir = await tempDir();
    const file = path.join(dir, "processes.json");
    await mkdir(file);
    const problems = new Problems({ bus: new EventBus() });
    expect(await new ProcessRegistry(file, problems).reapStale()).toBe(0);
    expect(problems.list()).toMatchObject([{ code: "state_file_unreadable", subject: file }]);
    expect(JSON.parse(await readFile(file, "utf8"))).toEqual({});
  });
});
