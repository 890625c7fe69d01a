import { describe, expect, it } from "vitest";
import {
  INITIAL_STATE,
  Store,
  applyProgress,
  deviceTitle,
  filterDevices,
  jobDuration,
  reducer,
  selectDevices,
  selectJobGroups,
  selectJobs,
  selectLastJobs,
  type Action,
  type AppState,
} from "../../panel/src/data/state.ts";
import type { SubscribedEvent } from "../../panel/src/data/types.ts";
import { device, initialState, job, problem, remoteSnapshot } from "./fixtures.ts";

function run(actions: Action[], from: AppState = INITIAL_STATE): AppState {
  return actions.reduce(reducer, from);
}

const ev = (event: SubscribedEvent): Action => ({ type: "event", event });

describe("reducer", () => {
  it("seeds jobs, devices, queue status and server from initial_state (output dropped)", () => {
    const state = run([
      { type: "initial_state", state: initialState({ jobs: [job({ output: ["a\n"] })], problems: [problem("disk_full", "/data/builder/jobs.json")] }) },
    ]);
    expect(state.seeded).toBe(true);
    expect(Object.keys(state.devices)).toEqual(["kitchen.yaml", "garage.yaml"]);
    expect(state.jobs["0123456789ab"]?.output).toEqual([]);
    expect(state.queueStatus).toEqual({ idle: true, running: 0, queue_depth: 0 });
    expect(state.server?.esphome_version).toBe("2026.11.0");
    expect(state.problems).toEqual([problem("disk_full", "/data/builder/jobs.json")]);
  });

  it("adds, replaces and clears builder problems from their events", () => {
    const a = problem("state_file_corrupt", "/data/builder/jobs.json");
    const b = problem("disk_full", "/data/builder/job-logs");
    let state = run([{ type: "initial_state", state: initialState({ problems: [a] }) }, ev({ event: "builder_problem_added", data: { problem: b } })]);
    expect(state.problems.map((p) => p.id)).toEqual([a.id, b.id]);
    // Reported again with a new message: one entry, now last.
    state = reducer(state, ev({ event: "builder_problem_added", data: { problem: { ...a, message: "again" } } }));
    expect(state.problems.map((p) => [p.id, p.message])).toEqual([[b.id, b.message], [a.id, "again"]]);
    state = reducer(state, ev({ event: "builder_problem_cleared", data: { id: b.id } }));
    expect(state.problems.map((p) => p.id)).toEqual([a.id]);
    expect(reducer(state, ev({ event: "builder_problem_cleared", data: { id: "unknown" } }))).toBe(state);
  });

  it("a new initial_state (after a reconnect) replaces everything", () => {
    const first = run([{ type: "initial_state", state: initialState({ jobs: [job()] }) }]);
    const second = reducer(first, { type: "initial_state", state: initialState({ jobs: [], devices: [device("attic")] }) });
    expect(second.jobs).toEqual({});
    expect(Object.keys(second.devices)).toEqual(["attic.yaml"]);
  });

  it("follows a job through its lifecycle events", () => {
    const queued = job();
    const started = job({ status: "running", started_at: "2026-11-23T10:00:01.000Z", progress: 0 });
    const done = job({ status: "completed", progress: 100, phase: "upload", completed_at: "2026-11-23T10:01:00.000Z", exit_code: 0 });
    let state = run([{ type: "initial_state", state: initialState() }, ev({ event: "job_queued", data: { job: queued } })]);
    expect(state.jobs[queued.job_id]?.status).toBe("queued");
    state = run([ev({ event: "job_started", data: { job: started } })], state);
    expect(state.jobs[queued.job_id]?.status).toBe("running");
    state = run([ev({ event: "job_completed", data: { job: done } })], state);
    expect(state.jobs[queued.job_id]).toMatchObject({ status: "completed", progress: 100, exit_code: 0 });
  });

  it("takes what a job waits for, and where it builds, from job_updated", () => {
    const queued = job();
    const waiting = job({ waiting: { reason: "build_server", since: "2026-11-23T10:00:02.000Z" } });
    let state = run([{ type: "initial_state", state: initialState() }, ev({ event: "job_queued", data: { job: queued } })]);
    state = run([ev({ event: "job_updated", data: { job: waiting } })], state);
    expect(state.jobs[queued.job_id]?.waiting).toEqual({ reason: "build_server", since: "2026-11-23T10:00:02.000Z" });
    state = run([ev({ event: "job_updated", data: { job: job({ status: "running", source: "remote", source_label: "Laptop" }) } })], state);
    expect(state.jobs[queued.job_id]).toMatchObject({ status: "running", source: "remote", source_label: "Laptop" });
    expect(state.jobs[queued.job_id]?.waiting).toBeUndefined();
  });

  it("keeps the local_builds setting from initial_state and its event", () => {
    let state = run([{ type: "initial_state", state: initialState({ remote_build: remoteSnapshot({ local_builds: "never" }) }) }]);
    expect(state.remote?.offloader.localBuilds).toBe("never");
    state = run([ev({ event: "local_builds_changed", data: { local_builds: "fallback" } })], state);
    expect(state.remote?.offloader.localBuilds).toBe("fallback");
    const same = run([ev({ event: "local_builds_changed", data: { local_builds: "fallback" } })], state);
    expect(same).toBe(state);
  });

  it("moves an install from compile to upload when progress drops to 0, and keeps the phase on a later snapshot", () => {
    const id = "0123456789ab";
    let state = run([
      { type: "initial_state", state: initialState() },
      ev({ event: "job_started", data: { job: job({ status: "running", progress: 0 }) } }),
      ev({ event: "job_progress", data: { job_id: id, progress: 40 } }),
    ]);
    expect(state.jobs[id]).toMatchObject({ phase: "compile", progress: 40 });
    state = run([ev({ event: "job_progress", data: { job_id: id, progress: 100 } })], state);
    state = run([ev({ event: "job_progress", data: { job_id: id, progress: 0 } })], state);
    expect(state.jobs[id]).toMatchObject({ phase: "upload", progress: 0 });
    state = run([ev({ event: "job_progress", data: { job_id: id, progress: 12 } })], state);
    expect(state.jobs[id]).toMatchObject({ phase: "upload", progress: 12 });
  });

  it("ignores output events and progress for unknown jobs without creating a new state", () => {
    const state = run([{ type: "initial_state", state: initialState() }]);
    expect(reducer(state, ev({ event: "job_output", data: { job_id: "0123456789ab", line: "x\n" } }))).toBe(state);
    expect(reducer(state, ev({ event: "job_progress", data: { job_id: "ffffffffffff", progress: 3 } }))).toBe(state);
    expect(reducer(state, { type: "connection", status: state.connection })).toBe(state);
  });

  it("removes jobs and devices, updates devices and queue status", () => {
    let state = run([{ type: "initial_state", state: initialState({ jobs: [job()] }) }]);
    state = run(
      [
        ev({ event: "job_removed", data: { job_id: "0123456789ab" } }),
        ev({ event: "device_removed", data: { configuration: "garage.yaml" } }),
        ev({ event: "device_updated", data: { device: device("kitchen", { friendly_name: "Kitchen light" }) } }),
        ev({ event: "device_updated", data: { device: device("attic") } }),
        ev({ event: "queue_status_changed", data: { idle: false, running: 1, queue_depth: 2 } }),
      ],
      state,
    );
    expect(state.jobs).toEqual({});
    expect(Object.keys(state.devices).sort()).toEqual(["attic.yaml", "kitchen.yaml"]);
    expect(state.devices["kitchen.yaml"]?.friendly_name).toBe("Kitchen light");
    expect(state.queueStatus).toEqual({ idle: false, running: 1, queue_depth: 2 });
    expect(reducer(state, ev({ event: "job_removed", data: { job_id: "0123456789ab" } }))).toBe(state);
  });

  it("tracks the connection status", () => {
    expect(reducer(INITIAL_STATE, { type: "connection", status: "reconnecting" }).connection).toBe("reconnecting");
  });
});

describe("applyProgress", () => {
  it("never changes a finished job", () => {
    const done = job({ status: "completed", progress: 100, phase: "upload" });
    expect(applyProgress(done, 0)).toBe(done);
  });

  it("moves on when a dropped 0 is followed by a lower figure", () => {
    const j = job({ status: "running", phase: "compile", progress: 90 });
    expect(applyProgress(j, 30)).toMatchObject({ phase: "upload", progress: 30 });
  });

  it("stays in the last phase", () => {
    const j = job({ job_type: "compile", status: "running", phase: "compile", progress: 50 });
    expect(applyProgress(j, 0)).toMatchObject({ phase: "compile", progress: 0 });
  });
});

describe("selectors", () => {
  const jobs = {
    a: job({ job_id: "aaaaaaaaaaaa", created_at: "2026-11-23T10:00:00.000Z", status: "completed" }),
    b: job({ job_id: "bbbbbbbbbbbb", created_at: "2026-11-23T11:00:00.000Z", status: "failed" }),
    c: job({ job_id: "cccccccccccc", created_at: "2026-11-23T09:00:00.000Z", configuration: "garage.yaml", status: "running" }),
    d: job({ job_id: "dddddddddddd", created_at: "2026-11-23T12:00:00.000Z", configuration: "attic.yaml", status: "queued" }),
    e: job({ job_id: "eeeeeeeeeeee", created_at: "2026-11-23T12:30:00.000Z", configuration: "attic2.yaml", status: "queued" }),
  };

  it("sorts jobs newest first and memoises on identity", () => {
    expect(selectJobs(jobs).map((j) => j.job_id[0])).toEqual(["e", "d", "b", "a", "c"]);
    expect(selectJobs(jobs)).toBe(selectJobs(jobs));
  });

  it("gives each configuration its newest job", () => {
    const last = selectLastJobs(jobs);
    expect(last.get("kitchen.yaml")?.job_id).toBe("bbbbbbbbbbbb");
    expect(last.get("garage.yaml")?.status).toBe("running");
  });

  it("groups running, queued (oldest first) and finished jobs", () => {
    const groups = selectJobGroups(jobs);
    expect(groups.running.map((j) => j.job_id[0])).toEqual(["c"]);
    expect(groups.queued.map((j) => j.job_id[0])).toEqual(["d", "e"]);
    expect(groups.finished.map((j) => j.job_id[0])).toEqual(["b", "a"]);
  });

  it("sorts devices by title and filters on every word", () => {
    const devices = {
      "b.yaml": device("b", { friendly_name: "Zeta lamp" }),
      "a.yaml": device("a", { friendly_name: "Alpha sensor", platform: "esp8266" }),
      "c.yaml": device("c", { address: "192.168.1.20" }),
    };
    const sorted = selectDevices(devices);
    expect(sorted.map((d) => deviceTitle(d, d.configuration))).toEqual(["Alpha sensor", "c", "Zeta lamp"]);
    expect(filterDevices(sorted, "esp8266").map((d) => d.name)).toEqual(["a"]);
    expect(filterDevices(sorted, "192.168 c").map((d) => d.name)).toEqual(["c"]);
    expect(filterDevices(sorted, "  ")).toBe(sorted);
    expect(filterDevices(sorted, "nothing")).toEqual([]);
    expect(deviceTitle(undefined, "old.yml")).toBe("old");
  });

  it("measures a job's duration, live while it runs", () => {
    const now = Date.parse("2026-11-23T10:00:30.000Z");
    expect(jobDuration(job(), now)).toBeNull();
    expect(jobDuration(job({ started_at: "2026-11-23T10:00:00.000Z" }), now)).toBe(30_000);
    expect(
      jobDuration(job({ started_at: "2026-11-23T10:00:00.000Z", completed_at: "2026-11-23T10:00:05.000Z" }), now),
    ).toBe(5000);
  });
});

describe("Store", () => {
  it("notifies subscribers only when the state changes", () => {
    const store = new Store();
    const seen: AppState[] = [];
    const off = store.subscribe((s) => seen.push(s));
    store.dispatch({ type: "connection", status: "connecting" });
    expect(seen).toHaveLength(0);
    store.dispatch({ type: "connection", status: "open" });
    expect(seen).toHaveLength(1);
    off();
    store.dispatch({ type: "connection", status: "reconnecting" });
    expect(seen).toHaveLength(1);
    expect(store.state.connection).toBe("reconnecting");
  });
});
