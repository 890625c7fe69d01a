/** The panel's device state in its store, and the device-list filters. */
import { describe, expect, it } from "vitest";
import { DEVICE_FILTERS, INITIAL_STATE, deviceMatches, reducer } from "../../panel/src/data/state.ts";
import { deviceState, initialState, job } from "./fixtures.ts";

describe("device state in the panel's store", () => {
  it("is seeded from initial_state, follows device_state_changed and goes with device_removed", () => {
    let s = reducer(INITIAL_STATE, { type: "initial_state", state: initialState({ device_states: [deviceState("kitchen.yaml")] }) });
    expect(Object.keys(s.deviceStates)).toEqual(["kitchen.yaml"]);
    s = reducer(s, { type: "event", event: { event: "device_state_changed", data: { state: deviceState("kitchen.yaml", { status: "offline" }) } } });
    expect(s.deviceStates["kitchen.yaml"]?.status).toBe("offline");
    s = reducer(s, { type: "event", event: { event: "device_removed", data: { configuration: "kitchen.yaml" } } });
    expect(s.deviceStates).toEqual({});
    // A builder without device state (no device_states in initial_state) has none.
    expect(reducer(INITIAL_STATE, { type: "initial_state", state: initialState() }).deviceStates).toEqual({});
  });

  it("a job that starts waiting for its device is updated in place", () => {
    let s = reducer(INITIAL_STATE, { type: "initial_state", state: initialState({ jobs: [job({ status: "running", phase: "upload" })] }) });
    s = reducer(s, { type: "event", event: { event: "job_updated", data: { job: job({ status: "running", phase: "upload", waiting: { reason: "device", since: "2026-11-23T10:01:00.000Z" } }) } } });
    expect(s.jobs["0123456789ab"]).toMatchObject({ waiting: { reason: "device" }, phase: "upload" });
  });
});

describe("device filters", () => {
  const online = deviceState("a.yaml");
  const offline = deviceState("b.yaml", { status: "offline" });
  const outdated = deviceState("c.yaml", { update_reasons: ["configuration_changed"] });
  it("match by status, update available and the last install's failure", () => {
    const table = DEVICE_FILTERS.map((f) => [f, [online, offline, outdated, undefined].map((s) => deviceMatches(f, s, undefined))]);
    expect(Object.fromEntries(table)).toEqual({
      all: [true, true, true, true],
      online: [true, false, true, false],
      offline: [false, true, false, false],
      outdated: [false, false, true, false],
      failed: [false, false, false, false],
    });
    expect(deviceMatches("failed", online, job({ status: "failed", job_type: "install" }))).toBe(true);
    expect(deviceMatches("failed", online, job({ status: "failed", job_type: "clean" }))).toBe(false);
    expect(deviceMatches("failed", online, job({ status: "completed" }))).toBe(false);
  });
});
