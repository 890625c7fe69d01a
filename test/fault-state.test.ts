/**
 * Real builder processes started on state files that are broken or hostile:
 * a jobs.json (or processes.json) that is a folder, job rows naming files
 * outside the config folder, and a processes.json naming pid 1 (inside a pid
 * namespace the test makes, where a mistake could only hit the namespace).
 * The builder starts, uses nothing it cannot trust, and says what it did.
 */
import { spawn } from "node:child_process";
import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import type { BuilderProblem, FirmwareJob, InitialState } from "../src/api/wire.ts";
import { resolvePaths } from "../src/paths.ts";
import { ApiClient } from "./helpers/api-client.ts";
import { ROOT, STAND_IN, configDir, spawnBuilder } from "./helpers/builder.ts";
import { tempDir, waitFor } from "./helpers/tmp.ts";
import { missingTool } from "./helpers/tools.ts";

const baseArgs = (dir: string): string[] => ["--config-dir", dir, "--port", "0", "--peer-link-port", "0", "--peer-link-host", "127.0.0.1", "--esphome", STAND_IN, "--no-mdns", "--log-level", "error"];
const FAST = { ESPHOME_STANDIN_COMPILE_SECONDS: "0", ESPHOME_STANDIN_FAIL: "" };

describe("a builder started on a state file that is a folder", () => {
  it("moves jobs.json aside, starts, shows the problem, lets a user dismiss it and saves jobs again", async () => {
    const dir = await configDir();
    const paths = resolvePaths({ configDir: dir });
    await mkdir(path.join(paths.jobsFile, "inside"), { recursive: true });
    const builder = await spawnBuilder(baseArgs(dir), FAST);
    const client = await ApiClient.connect(builder.port);
    const events = client.stream("subscribe_events", { job_output: false });
    const initial = (await events.until((f) => f.event === "initial_state")).data as InitialState;
    expect(initial.problems).toHaveLength(1);
    const [problem] = initial.problems;
    expect(problem).toMatchObject({ id: `state_file_unreadable:${paths.jobsFile}`, code: "state_file_unreadable", subject: paths.jobsFile });
    expect(problem?.message).toBe(
      `The job index ${paths.jobsFile} could not be read (EISDIR: illegal operation on a directory, read); it was moved to ` +
        `${paths.jobsFile}.corrupt and the builder started without it. Look there for anything you need from it, then delete it.`,
    );
    expect((await stat(path.join(`${paths.jobsFile}.corrupt`, "inside"))).isDirectory()).toBe(true);
    expect(await client.call<BuilderProblem[]>("problems/list")).toEqual(initial.problems);

    const job = await client.call<FirmwareJob>("firmware/compile", { configuration: "kitchen.yaml" });
    await client.stream("firmware/follow_job", { job_id: job.job_id }).until((f) => f.event === "result", 30_000);
    const index = JSON.parse(await readFile(paths.jobsFile, "utf8")) as { jobs: FirmwareJob[] };
    expect(index.jobs.map((j) => j.job_id)).toEqual([job.job_id]);

    expect(await client.call("problems/dismiss", { id: problem!.id })).toEqual({ dismissed: true });
    await events.until((f) => f.event === "builder_problem_cleared");
    expect(events.frames.find((f) => f.event === "builder_problem_cleared")?.data).toEqual({ id: problem!.id });
    expect(await client.call("problems/list")).toEqual([]);
    expect(await client.call("problems/dismiss", { id: problem!.id })).toEqual({ dismissed: false });
    client.close();
  });

  it("starts with processes.json a folder", async () => {
    const dir = await configDir();
    const paths = resolvePaths({ configDir: dir });
    await mkdir(paths.processesFile, { recursive: true });
    const builder = await spawnBuilder(baseArgs(dir), FAST);
    const client = await ApiClient.connect(builder.port);
    const problems = await client.call<BuilderProblem[]>("problems/list");
    expect(problems).toMatchObject([{ code: "state_file_unreadable", subject: paths.processesFile }]);
    expect(problems[0]?.message).toContain(`moved to ${paths.processesFile}.corrupt`);
    client.close();
  });
});

describe("a builder started on job rows that do not pass the API's rules", () => {
  it("skips them (nothing runs outside the config folder), keeps them aside, reports them and runs the good one", async () => {
    const dir = await configDir();
    const outside = `outside-${path.basename(dir)}.yaml`;
    await writeFile(path.join(dir, "..", outside), "esphome:\n  name: outside\nesp32:\n  board: esp32dev\n");
    onTestFinished(() => rm(path.join(dir, "..", outside), { force: true }));
    const paths = resolvePaths({ configDir: dir });
    await mkdir(paths.stateDir, { recursive: true });
    const row = (job_id: string, configuration: string, extra: object = {}) => ({ job_id, configuration, job_type: "compile", status: "queued", created_at: "2026-01-01T00:00:00.000Z", ...extra });
    const rows = [
      row("aaaaaaaaaaaa", `../${outside}`),
      row("bbbbbbbbbbbb", path.join(dir, "..", outside)),
      row("cccccccccccc", "kitchen.yaml", { job_type: "upload", port: "-oProxyCommand=touch /tmp/x" }),
      row("dddddddddddd", "kitchen.yaml"),
    ];
    await writeFile(paths.jobsFile, JSON.stringify({ version: 1, jobs: rows }));
    const recordDir = await tempDir();
    const record = path.join(recordDir, "runs.jsonl");
    const builder = await spawnBuilder(baseArgs(dir), { ...FAST, ESPHOME_STANDIN_RECORD: record });
    const client = await ApiClient.connect(builder.port);
    await waitFor(async () => (await client.call<FirmwareJob[]>("firmware/get_jobs")).every((j) => j.status === "completed"), 30_000, "the good job");
    expect((await client.call<FirmwareJob[]>("firmware/get_jobs")).map((j) => j.job_id)).toEqual(["dddddddddddd"]);
    // Every run that read a YAML (the version probe reads none).
    const runs = (await readFile(record, "utf8")).trim().split("\n").map((l) => JSON.parse(l) as { command: string; configuration: string | null });
    expect(runs.filter((r) => r.configuration !== null).map((r) => [r.command, path.basename(r.configuration ?? "")])).toEqual([["compile", "kitchen.yaml"]]);

    const [problem] = await client.call<BuilderProblem[]>("problems/list");
    expect(problem).toMatchObject({ code: "state_rows_skipped", subject: paths.jobsFile });
    expect(problem?.message).toMatch(/^3 job\(s\) in .*jobs\.json could not be loaded and were skipped: job "aaaaaaaaaaaa" \(invalid configuration .*must be a file name in the config folder, not a path\); job "bbbbbbbbbbbb" .*; job "cccccccccccc" \(.*port.*\)\. They were kept in .*jobs\.json\.skipped; delete it once you have looked\.$/);
    const kept = JSON.parse(await readFile(`${paths.jobsFile}.skipped`, "utf8")) as { job_id: string }[];
    expect(kept.map((r) => r.job_id)).toEqual(["aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc"]);
    const index = JSON.parse(await readFile(paths.jobsFile, "utf8")) as { jobs: FirmwareJob[] };
    expect(index.jobs.map((j) => j.job_id)).toEqual(["dddddddddddd"]);
    client.close();
  });
});

/** /proc/<pid>/stat: [ppid, start time]. */
async function procStat(pid: number): Promise<{ state: string; start: string } | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { state: fields[0]!, start: fields[19]! };
  } catch {
    return null;
  }
}

async function childrenOf(pid: number): Promise<number[]> {
  const text = await readFile(`/proc/${pid}/task/${pid}/children`, "utf8").catch(() => "");
  return text.trim() === "" ? [] : text.trim().split(" ").map(Number);
}

const IS_ROOT = process.platform === "linux" && process.getuid?.() === 0;

describe.skipIf(missingTool(IS_ROOT, "root (a pid namespace)"))(`a processes.json naming pid 1${IS_ROOT ? "" : " (skipped: needs root for a pid namespace)"}`, () => {
  it("signals nothing: another process of the namespace lives on, and the rows are reported", async () => {
    const dir = await configDir();
    const paths = resolvePaths({ configDir: dir });
    await mkdir(paths.stateDir, { recursive: true });
    const go = path.join(paths.stateDir, "go");
    // In a new pid namespace `sh` is pid 1; a victim in its own session, then (on go) the builder as a child of sh.
    const script =
      'setsid sleep 300 & while [ ! -e "$1" ]; do sleep 0.05; done; shift; "$@"; wait';
    const ns = spawn("unshare", ["--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c", script, "sh", go, process.execPath, path.join(ROOT, "src", "main.ts"), ...baseArgs(dir)], {
      env: { ...process.env, ...FAST },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const stderr: string[] = [];
    ns.stderr.on("data", (d: Buffer) => stderr.push(d.toString()));
    onTestFinished(async () => {
      if (ns.exitCode !== null || ns.signalCode !== null) return;
      const gone = new Promise((r) => ns.once("exit", r));
      // SIGKILL to the namespace's init (sh) ends every process in it.
      for (const init of await childrenOf(ns.pid!)) process.kill(init, "SIGKILL");
      await gone;
    });
    let init = 0;
    let victim = 0;
    await waitFor(async () => {
      init = (await childrenOf(ns.pid!))[0] ?? 0;
      if (init === 0) return false;
      for (const c of await childrenOf(init)) {
        if ((await readFile(`/proc/${c}/cmdline`, "utf8").catch(() => "")).startsWith("sleep\u0000300")) victim = c;
      }
      return victim !== 0;
    }, 10_000, "the namespace's init and victim");
    const initStart = (await procStat(init))!.start;
    await writeFile(
      paths.processesFile,
      // pid 1 with the start time of the namespace's real pid 1: only the pid rule can refuse it.
      // (Pid 0 and -1 are refused by the same schema, tested in test/firmware/process-registry.test.ts.)
      JSON.stringify({ aaaaaaaaaaaa: { pid: 1, start: initStart } }),
    );
    await writeFile(go, "");
    const port = await new Promise<number>((resolve, reject) => {
      let buf = "";
      ns.stdout.on("data", (d: Buffer) => {
        buf += d.toString();
        const line = buf.split("\n").find((l) => l.includes('"listening"'));
        if (line !== undefined) resolve((JSON.parse(line) as { port: number }).port);
      });
      ns.once("exit", (code) => { reject(new Error(`the builder's namespace exited with ${code}: ${stderr.join("")}`)); });
    });
    const client = await ApiClient.connect(port);
    const [problem] = await client.call<BuilderProblem[]>("problems/list");
    expect(problem).toMatchObject({ code: "state_rows_skipped", subject: paths.processesFile });
    expect(problem?.message).toMatch(/^1 row\(s\) of .*processes\.json were refused and no process was signalled for them: "aaaaaaaaaaaa" \(pid: pid must be above 1\)\./);
    await new Promise((r) => setTimeout(r, 300));
    // kill(-1) would have taken the victim: every process but init and the caller.
    expect((await procStat(victim))?.state).toBe("S");
    expect(await client.call("ping")).toEqual({ pong: true });
    expect(JSON.parse(await readFile(paths.processesFile, "utf8"))).toEqual({});
    client.close();
  });
});
