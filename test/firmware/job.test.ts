import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import {
  createJob,
  firmwareJobSchema,
  markStarted,
  markTerminal,
  parseStoredJob,
  resetForRestart,
} from "../../src/firmware/job.ts";
import { resolvePaths } from "../../src/paths.ts";
import { JsonStore } from "../../src/store.ts";
import { tempDir } from "../helpers/tmp.ts";

const now = new Date("2026-11-23T10:00:00.000Z");

describe("FirmwareJob dispatch-origin fields", () => {
  it("defaults source to local", () => {
    const job = createJob({ configuration: "kitchen.yaml", job_type: "install" }, now);
    expect(job.source).toBe("local");
    expect(job.source_pin_sha256).toBe("");
    expect(job.source_label).toBe("");
    expect(job.remote_peer).toBe("");
    expect(job.remote_job_id).toBe("");
  });

  it("round-trips a remote job through the job file", async () => {
    const dir = await tempDir();
    const paths = resolvePaths({ configDir: dir });
    const store = new JsonStore({ file: paths.jobsFile, schema: z.array(firmwareJobSchema) });
    const job = createJob(
      {
        configuration: "kitchen.yaml",
        job_type: "install",
        source: "remote",
        source_pin_sha256: "ab".repeat(32),
        source_label: "Desktop PC",
      },
      now,
    );
    await store.saveNow(() => [job]);
    const loaded = await store.load();
    expect(loaded).toEqual({ kind: "ok", value: [job] });
  });

  it("loads an older job row without the fields as local", () => {
    const older = {
      job_id: "0123456789ab",
      configuration: "kitchen.yaml",
      job_type: "compile",
      status: "completed",
      created_at: "2025-01-01T00:00:00.000Z",
    };
    const job = parseStoredJob(older);
    expect(job.source).toBe("local");
    expect(job.source_label).toBe("");
    expect(job.port).toBe("");
    expect(job.progress).toBeNull();
  });

  it("rejects a malformed source value instead of treating it as local", () => {
    const row = { job_id: "0123456789ab", configuration: "a.yaml", job_type: "compile", source: "intergalactic" };
    expect(() => parseStoredJob(row)).toThrow(/source/);
  });

  it("re-checks a stored configuration with the API's file name rule", () => {
    const row = (configuration: string) => ({ job_id: "0123456789ab", configuration, job_type: "compile" });
    expect(parseStoredJob(row("kitchen.yaml")).configuration).toBe("kitchen.yaml");
    for (const bad of ["../../etc/passwd.yaml", "/etc/x.yaml", "sub/kitchen.yaml", "secrets.yaml", ".esphome.yaml", "kitchen.txt", "a\u0000.yaml"]) {
      expect(() => parseStoredJob(row(bad)), bad).toThrow(/invalid configuration/);
    }
  });

  it("re-checks a build server job's configuration as <peer>/<device>/<file>", () => {
    const peer = "ab".repeat(32);
    const row = (configuration: string) => ({ job_id: "0123456789ab", configuration, job_type: "compile", remote_peer: peer });
    expect(parseStoredJob(row(`${peer}/kitchen/kitchen.yaml`)).configuration).toBe(`${peer}/kitchen/kitchen.yaml`);
    expect(() => parseStoredJob(row("kitchen.yaml"))).toThrow(/must be <peer>\/<device>\/<file>/);
    expect(() => parseStoredJob(row(`${"cd".repeat(32)}/kitchen/kitchen.yaml`))).toThrow(/not the peer's/);
    expect(() => parseStoredJob(row(`${peer}/../kitchen.yaml`))).toThrow(/invalid device name/);
    expect(() => parseStoredJob(row(`${peer}/kitchen/../../x.yaml`))).toThrow(/must be <peer>/);
    expect(() => parseStoredJob(row(`${peer}/kitchen/secrets.yaml`))).toThrow(/secrets file/);
    // A job of the layout before folders were named by the pin (first 8 characters of a dashboard_id).
    const old = { ...row("AbCdEfGh/kitchen/kitchen.yaml"), remote_peer: "AbCdEfGh_-123456" };
    expect(() => parseStoredJob(old)).toThrow(/invalid configuration/);
  });

  it("holds a clean_all to its scope: \"\" here, the peer's canonical pin on a build server, nothing else", () => {
    const peer = "ab".repeat(32);
    const row = (configuration: string, remote_peer = "") => ({ job_id: "0123456789ab", configuration, job_type: "clean_all", remote_peer });
    expect(parseStoredJob(row("")).configuration).toBe("");
    expect(parseStoredJob(row(peer, peer)).configuration).toBe(peer);
    for (const [bad, by] of [["kitchen.yaml", ""], ["../..", ""], [peer, ""], ["", peer], [`${peer}/kitchen`, peer], ["AB".repeat(32), "AB".repeat(32)], ["..", ".."]] as const) {
      expect(() => parseStoredJob(row(bad, by)), `${bad} by ${by}`).toThrow(/invalid clean_all scope/);
    }
    // Any other job type still needs a configuration.
    expect(() => parseStoredJob({ job_id: "0123456789ab", configuration: "", job_type: "compile" })).toThrow();
  });

  it("keeps what a job waits for, and rejects an unknown reason", () => {
    const row = { job_id: "0123456789ab", configuration: "a.yaml", job_type: "compile", waiting: { reason: "build_server", since: now.toISOString() } };
    expect(parseStoredJob(row).waiting).toEqual({ reason: "build_server", since: now.toISOString() });
    expect(() => parseStoredJob({ ...row, waiting: { reason: "the moon", since: "" } })).toThrow(/waiting/);
    expect("waiting" in parseStoredJob({ job_id: "0123456789ab", configuration: "a.yaml", job_type: "compile" })).toBe(false);
  });

  it("re-checks a stored port with the API's port rule", () => {
    const row = (port: string) => ({ job_id: "0123456789ab", configuration: "a.yaml", job_type: "upload", port });
    for (const good of ["", "OTA", "/dev/ttyUSB0", "192.168.1.20", "kitchen.local"]) expect(parseStoredJob(row(good)).port).toBe(good);
    for (const bad of ["192.168.1.300", "a;rm -rf /", "-oProxyCommand=x"]) expect(() => parseStoredJob(row(bad)), bad).toThrow(/port/);
  });

  it("keeps all five dispatch-origin fields across a restart reset", () => {
    const job = createJob(
      {
        configuration: "kitchen.yaml",
        job_type: "compile",
        source: "remote",
        source_pin_sha256: "cd".repeat(32),
        source_label: "Build box",
        remote_peer: "peer-id",
        remote_job_id: "fedcba987654",
      },
      now,
    );
    markStarted(job, now);
    job.progress = 55;
    job.error = "boom";
    job.exit_code = 3;
    resetForRestart(job);
    expect(job).toMatchObject({
      status: "queued",
      progress: null,
      error: null,
      exit_code: null,
      started_at: null,
      completed_at: null,
      source: "remote",
      source_pin_sha256: "cd".repeat(32),
      source_label: "Build box",
      remote_peer: "peer-id",
      remote_job_id: "fedcba987654",
      job_id: job.job_id,
      configuration: "kitchen.yaml",
    });
  });

  it("stamps completion and full progress on success", () => {
    const job = createJob({ configuration: "a.yaml", job_type: "compile" }, now);
    markStarted(job, now);
    markTerminal(job, "completed", new Date("2026-11-23T10:01:00.000Z"), { exitCode: 0 });
    expect(job).toMatchObject({ status: "completed", progress: 100, exit_code: 0, completed_at: "2026-11-23T10:01:00.000Z" });
  });
});

describe("JsonStore", () => {
  it("moves a corrupt file aside and reports it", async () => {
    const dir = await tempDir();
    const file = `${dir}/state.json`;
    const { writeFile } = await import("node:fs/promises");
    await writeFile(file, "{ not json");
    const store = new JsonStore({ file, schema: z.object({ a: z.number() }) });
    const result = await store.load();
    expect(result.kind).toBe("corrupt");
    expect(await readFile(`${file}.corrupt`, "utf8")).toBe("{ not json");
    expect(await store.load()).toEqual({ kind: "missing" });
  });

  it("writes atomically with the requested mode", async () => {
    const dir = await tempDir();
    const file = `${dir}/secret.json`;
    const store = new JsonStore({ file, schema: z.object({ a: z.number() }), mode: 0o600 });
    await store.saveNow(() => ({ a: 1 }));
    const { stat, readdir } = await import("node:fs/promises");
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readdir(dir)).toEqual(["secret.json"]);
  });

  it("coalesces scheduled saves and writes the newest data", async () => {
    const dir = await tempDir();
    const file = `${dir}/s.json`;
    const store = new JsonStore({ file, schema: z.object({ a: z.number() }), debounceMs: 20 });
    let value = 1;
    store.scheduleSave(() => ({ a: value }));
    value = 2;
    store.scheduleSave(() => ({ a: value }));
    await store.flush();
    expect(JSON.parse(await readFile(file, "utf8"))).toEqual({ a: 2 });
  });
});
