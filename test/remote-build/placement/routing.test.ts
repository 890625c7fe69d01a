/**
 * The router's decisions from the offloader's state at dispatch time. The
 * offloader state is given as plain rows of the shape `Offloader.snapshot()`
 * returns.
 */
import { describe, expect, it } from "vitest";
import { createJob, type StoredJob } from "../../../src/firmware/job.ts";
import type { BuildRouterDeps } from "../../../src/remote-build/placement/routing.ts";
import { BuildRouter } from "../../../src/remote-build/placement/routing.ts";
import type { LocalBuilds } from "../../../src/remote-build/placement/placement.ts";

const PIN = "a".repeat(64);
const now = new Date("2026-11-23T10:00:00Z");

type Row = ReturnType<BuildRouterDeps["offloader"]["snapshot"]>[number];

function row(over: { connected?: boolean; idle?: boolean | null; enabled?: boolean; status?: "approved" | "pending" } = {}): Row {
  const idle = over.idle === undefined ? true : over.idle;
  return {
    stored: { pin_sha256: PIN, label: "Desktop", receiver_hostname: "h", receiver_port: 6055, paired_at: "", enabled: over.enabled ?? true, esphome_version: "", friendly_name: "", auto_provision_supported: false, version_policy: null },
    status: over.status ?? "approved",
    session: over.connected === false ? null : ({ queueStatus: idle === null ? null : { idle, running: false, queue_depth: 0 } } as unknown as Row["session"]),
  };
}

function router(rows: Row[], opts: { label?: string | undefined; clock?: { t: number }; enabled?: boolean; localBuilds?: LocalBuilds } = {}) {
  const clock = opts.clock ?? { t: 0 };
  let woken = 0;
  const r = new BuildRouter({
    offloader: { snapshot: () => rows, label: () => ("label" in opts ? opts.label : "Desktop"), remoteBuildsEnabled: opts.enabled ?? true },
    wake: () => { woken++; },
    ...(opts.localBuilds === undefined ? {} : { localBuilds: () => opts.localBuilds ?? "always" }),
    restoreGraceMs: 1000,
    now: () => clock.t,
  });
  return { r, clock, woken: () => woken };
}

const fresh = (): StoredJob => createJob({ configuration: "k.yaml", job_type: "install" }, now);
const restored = (): StoredJob => ({ ...fresh(), source: "remote", source_pin_sha256: PIN, source_label: "Old name" });

describe("BuildRouter", () => {
  it("routes a new job to an idle build server with the pairing's label", () => {
    expect(router([row()]).r.route(fresh(), { busyPins: new Set() })).toEqual({ kind: "remote", pinSha256: PIN, label: "Desktop" });
  });

  it("falls back to local when the pairing is gone between snapshot and lookup", () => {
    expect(router([row()], { label: undefined }).r.route(fresh(), { busyPins: new Set() })).toEqual({ kind: "local" });
  });

  it("does not send a second compile to a build server already compiling ours", () => {
    expect(router([row()]).r.route(fresh(), { busyPins: new Set([PIN]) })).toEqual({ kind: "local" });
  });

  it("honours the master switch", () => {
    expect(router([row()], { enabled: false }).r.route(fresh(), { busyPins: new Set() })).toEqual({ kind: "local" });
  });

  it("sends a restored job back to its build server with its original label", () => {
    expect(router([row()]).r.route(restored(), { busyPins: new Set() })).toEqual({ kind: "remote", pinSha256: PIN, label: "Old name" });
  });

  it("keeps a restored job waiting while its build server is busy", () => {
    expect(router([row({ idle: false })]).r.route(restored(), { busyPins: new Set() })).toEqual({ kind: "wait" });
  });

  it("waits for a disconnected build server during the grace period, then builds here with a note", () => {
    const { r, clock, woken } = router([row({ connected: false })]);
    expect(r.route(restored(), { busyPins: new Set() })).toEqual({ kind: "wait" });
    clock.t = 1500;
    const decision = r.route(restored(), { busyPins: new Set() });
    expect(decision).toEqual({ kind: "local", note: "build server Old name did not come back within 1 s; building on this machine instead" });
    expect(woken()).toBe(0); // the timer is real; the decision only needed the clock
    r.stop();
  });

  it("builds a restored job here at once when its pairing was removed or switched off", () => {
    expect(router([]).r.route(restored(), { busyPins: new Set() }).kind).toBe("local");
    expect(router([row({ enabled: false })]).r.route(restored(), { busyPins: new Set() }).kind).toBe("local");
  });

  it("takes a frozen copy of the state", () => {
    const rows = [row()];
    const snap = router(rows).r.snapshot(new Set());
    expect(Object.isFrozen(snap)).toBe(true);
    rows.length = 0;
    expect(snap.pairings).toHaveLength(1);
  });

  it("applies local_builds: a busy build server makes fallback and never wait, always build here", () => {
    const busy = [row({ idle: false })];
    expect(router(busy, { localBuilds: "always" }).r.route(fresh(), { busyPins: new Set() })).toEqual({ kind: "local" });
    expect(router(busy, { localBuilds: "fallback" }).r.route(fresh(), { busyPins: new Set() })).toEqual({ kind: "wait" });
    expect(router(busy, { localBuilds: "never" }).r.route(fresh(), { busyPins: new Set() })).toEqual({ kind: "wait" });
    const clock = { t: 0 };
    const fallback = router([row({ connected: false })], { localBuilds: "fallback", clock });
    clock.t = 1500;
    expect(fallback.r.route(fresh(), { busyPins: new Set() })).toEqual({ kind: "local" });
  });

  it("fallback: right after start, waits for a paired build server to reconnect instead of compiling here, then wakes the queue", async () => {
    const clock = { t: 0 };
    const { r, woken } = router([row({ connected: false })], { localBuilds: "fallback", clock, });
    expect(r.route(fresh(), { busyPins: new Set() })).toEqual({ kind: "wait" });
    // Nothing paired: nothing to wait for.
    expect(router([], { localBuilds: "fallback", clock }).r.route(fresh(), { busyPins: new Set() })).toEqual({ kind: "local" });
    // `always` does not wait at start.
    expect(router([row({ connected: false })], { clock }).r.route(fresh(), { busyPins: new Set() })).toEqual({ kind: "local" });
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect(woken()).toBe(1);
    clock.t = 1100;
    expect(r.route(fresh(), { busyPins: new Set() })).toEqual({ kind: "local" });
    r.stop();
  });

  it("fails a job that must build here when local builds are off, and builds it here otherwise", () => {
    const decision = router([row()], { localBuilds: "never" }).r.route(fresh(), { busyPins: new Set(), offloadable: false });
    expect(decision.kind).toBe("fail");
    expect(router([row()]).r.route(fresh(), { busyPins: new Set(), offloadable: false })).toEqual({ kind: "local" });
  });

  it("keeps waiting instead of building here when the pairing vanishes and local builds are not `always`", () => {
    expect(router([row()], { label: undefined, localBuilds: "never" }).r.route(fresh(), { busyPins: new Set() })).toEqual({ kind: "wait" });
  });

  it("after the grace period, places a restored job like any other: never keeps it waiting for a build server", () => {
    const clock = { t: 0 };
    const never = router([row({ connected: false })], { clock, localBuilds: "never" }).r;
    // Another build server is idle: it goes there instead of here.
    const other = { ...row(), stored: { ...row().stored, pin_sha256: "b".repeat(64) } };
    const always = router([row({ connected: false }), other], { clock }).r;
    clock.t = 1500;
    expect(never.route(restored(), { busyPins: new Set() })).toEqual({ kind: "wait" });
    const decision = always.route(restored(), { busyPins: new Set() });
    expect(decision).toEqual({ kind: "remote", pinSha256: "b".repeat(64), label: "Desktop" });
  });

  it("after too many lost build servers, builds here (always) or fails (never)", () => {
    expect(router([row()]).r.route(fresh(), { busyPins: new Set(), remoteLosses: 4 }).kind).toBe("local");
    expect(router([row()], { localBuilds: "never" }).r.route(fresh(), { busyPins: new Set(), remoteLosses: 4 }).kind).toBe("fail");
  });
});

describe("BuildRouter and ESPHome versions", () => {
  const versioned = (over: Partial<Row["stored"]>): Row => {
    const r = row();
    return { ...r, stored: { ...r.stored, ...over } };
  };
  function versionRouter(rows: Row[], policy: "any" | "release" | "exact" | "exact_required", ours: string | null, lastBuiltOn?: string) {
    return new BuildRouter({
      offloader: { snapshot: () => rows, label: () => "Desktop", remoteBuildsEnabled: true, versionMatchPolicy: policy },
      esphomeVersion: () => ours,
      affinity: { lastBuiltOn: () => lastBuiltOn },
      wake: () => undefined,
    });
  }

  it("builds here with a note naming the build server and its reason when its policy refuses our version", () => {
    const r = versionRouter([versioned({ esphome_version: "2026.9.1", version_policy: "release" })], "any", "2026.10.0");
    const decision = r.route(fresh(), { busyPins: new Set() });
    expect(decision).toEqual({ kind: "local", note: expect.stringMatching(/^building on this machine: Desktop: this build server runs ESPHome 2026\.9\.1 and its version policy release builds only for 2026\.9\.x/) as unknown });
  });

  it("fails the job under exact_required when no build server matches (it never builds here)", () => {
    const r = versionRouter([versioned({ esphome_version: "2026.9.1" })], "exact_required", "2026.10.0");
    const decision = r.route(fresh(), { busyPins: new Set() });
    expect(decision.kind).toBe("fail");
    expect(decision.kind === "fail" && decision.error).toContain("version_match_policy is exact_required");
  });

  it("waits under exact_required while the matching build server is busy", () => {
    const r = versionRouter([versioned({ esphome_version: "2026.10.0" })], "exact_required", "2026.10.0");
    expect(r.route(fresh(), { busyPins: new Set([PIN]) })).toEqual({ kind: "wait" });
  });

  it("an unparsable version of ours counts as unknown", () => {
    const r = versionRouter([versioned({ esphome_version: "2026.9.1" })], "exact", "not a version");
    expect(r.snapshot(new Set()).esphomeVersion).toBe("");
    expect(r.route(fresh(), { busyPins: new Set() }).kind).toBe("remote");
  });

  it("asks the affinity for the device's last build server", () => {
    const B = "b".repeat(64);
    const rows: Row[] = [row(), { ...row(), stored: { ...row().stored, pin_sha256: B, label: "Beta" } }];
    const r = new BuildRouter({
      offloader: { snapshot: () => rows, label: (pin) => (pin === B ? "Beta" : "Desktop"), remoteBuildsEnabled: true },
      affinity: { lastBuiltOn: (configuration) => (configuration === "k.yaml" ? B : undefined) },
      wake: () => undefined,
    });
    expect(r.route(fresh(), { busyPins: new Set() })).toEqual({ kind: "remote", pinSha256: B, label: "Beta" });
    expect(r.route(createJob({ configuration: "other.yaml", job_type: "install" }, now), { busyPins: new Set() })).toEqual({ kind: "remote", pinSha256: PIN, label: "Desktop" });
  });
});
