/**
 * The panel's managed-ESPHome state and display rules: the status seeded from
 * initial_state and kept by events, the provisioning log (a new install starts
 * a new log; bounded), the banner and "waiting for ESPHome".
 */
import { describe, expect, it } from "vitest";
import { ESPHOME_LOG_LINES, INITIAL_STATE, reducer, type Action, type AppState } from "../../panel/src/data/state.ts";
import { esphomeBanner, formatBytes, jobsWaitForEsphome } from "../../panel/src/data/esphome-view.ts";
import type { EsphomeStatus, SubscribedEvent } from "../../panel/src/data/types.ts";
import { initialState } from "./fixtures.ts";

const status = (over: Partial<EsphomeStatus> = {}): EsphomeStatus => ({
  mode: "managed",
  current_version: null,
  selected_version: "2026.10.0",
  pinned_version: "2026.10.0",
  latest_version: null,
  state: { status: "provisioning", version: "2026.10.0", percent: 0, phase: "python" },
  environments: [],
  disk_bytes: 0,
  limit: 2,
  ...over,
});

const ev = (event: SubscribedEvent): Action => ({ type: "event", event });
const run = (actions: Action[], from: AppState = INITIAL_STATE): AppState => actions.reduce(reducer, from);

describe("managed ESPHome in the panel's state", () => {
  it("seeds the status from initial_state and follows esphome_state_changed", () => {
    let state = run([{ type: "initial_state", state: initialState({ esphome: status() }) }]);
    expect(state.esphome?.state).toMatchObject({ status: "provisioning", percent: 0 });
    state = run([ev({ event: "esphome_state_changed", data: { status: status({ state: { status: "provisioning", version: "2026.10.0", percent: 42, phase: "downloading" } }) } })], state);
    expect(state.esphome?.state).toMatchObject({ percent: 42, phase: "downloading" });
    state = run([ev({ event: "esphome_state_changed", data: { status: status({ current_version: "2026.10.0", state: { status: "ready", version: "2026.10.0" } }) } })], state);
    expect(state.esphome?.current_version).toBe("2026.10.0");
  });

  it("an older builder's initial_state without esphome leaves it null", () => {
    expect(run([{ type: "initial_state", state: initialState() }]).esphome).toBeNull();
  });

  it("keeps the provisioning output, starts a new log for a new install, and bounds it", () => {
    let state = run([
      ev({ event: "esphome_state_changed", data: { status: status() } }),
      ev({ event: "esphome_provision_output", data: { version: "2026.10.0", line: "Collecting esphome==2026.10.0\n" } }),
      ev({ event: "esphome_provision_output", data: { version: "2026.10.0", line: "Successfully installed esphome-2026.10.0\n" } }),
    ]);
    expect(state.esphomeLog).toEqual(["Collecting esphome==2026.10.0\n", "Successfully installed esphome-2026.10.0\n"]);
    // Ready: the log stays for reading.
    state = run([ev({ event: "esphome_state_changed", data: { status: status({ current_version: "2026.10.0", state: { status: "ready", version: "2026.10.0" } }) } })], state);
    expect(state.esphomeLog).toHaveLength(2);
    // Another version's install: a new log.
    state = run([ev({ event: "esphome_state_changed", data: { status: status({ current_version: "2026.10.0", state: { status: "provisioning", version: "2026.9.1", percent: 0, phase: "python" } }) } })], state);
    expect(state.esphomeLog).toEqual([]);
    for (let i = 0; i < ESPHOME_LOG_LINES + 10; i++) state = run([ev({ event: "esphome_provision_output", data: { version: "2026.9.1", line: `${i}\n` } })], state);
    expect(state.esphomeLog).toHaveLength(ESPHOME_LOG_LINES);
    expect(state.esphomeLog[0]).toBe("10\n");
    // What `esphome/log` answered replaces it.
    state = run([{ type: "esphome_log", version: "2026.9.1", lines: ["a\n"] }], state);
    expect(state.esphomeLog).toEqual(["a\n"]);
  });
});

describe("the ESPHome banner", () => {
  it("shows the installing percentage", () => {
    expect(esphomeBanner(status({ state: { status: "provisioning", version: "2026.10.0", percent: 37, phase: "downloading" } }))).toEqual({ kind: "provisioning", version: "2026.10.0", percent: 37 });
  });

  it("a failure with no ESPHome blocks builds; a failed switch with a working one only tells", () => {
    const failed = { status: "failed" as const, version: "2026.10.0", code: "no_python", message: "No Python 3.12 or newer" };
    expect(esphomeBanner(status({ state: failed }))).toEqual({ kind: "failed", version: "2026.10.0", message: "No Python 3.12 or newer", blocking: true });
    expect(esphomeBanner(status({ current_version: "2026.9.1", state: failed }))).toMatchObject({ blocking: false });
  });

  it("nothing when ready; --esphome that is missing says so", () => {
    expect(esphomeBanner(status({ current_version: "2026.10.0", state: { status: "ready", version: "2026.10.0" } }))).toBeNull();
    expect(esphomeBanner(null)).toBeNull();
    expect(esphomeBanner(status({ mode: "external", state: { status: "failed", version: null, code: "unavailable", message: "x" } }))).toEqual({ kind: "missing" });
    expect(esphomeBanner(status({ mode: "external", current_version: "2026.10.0", state: { status: "ready", version: "2026.10.0" } }))).toBeNull();
  });

  it("queued jobs wait for ESPHome only while the first one is installed", () => {
    expect(jobsWaitForEsphome(status())).toBe(true);
    expect(jobsWaitForEsphome(status({ current_version: "2026.9.1" }))).toBe(false);
    expect(jobsWaitForEsphome(status({ state: { status: "failed", version: "2026.10.0", code: "no_python", message: "" } }))).toBe(false);
    expect(jobsWaitForEsphome(null)).toBe(false);
  });

  it("sizes in decimal units", () => {
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(228_999_168)).toBe("229 MB");
    expect(formatBytes(1_500_000_000)).toBe("1.5 GB");
  });
});
