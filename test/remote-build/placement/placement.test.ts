/**
 * Where this builder's own compiles go under each `local_builds` setting: the
 * pure decision over a scheduler snapshot (the snapshot is what the router
 * copies out of the offloader's live state).
 */
import { describe, expect, it } from "vitest";
import { LOCAL_BUILDS } from "../../../src/api/wire.ts";
import { LOCAL_BUILDS_OPTIONS } from "../../../src/config.ts";
import { MAX_REROUTES, hasEligibleBuildServer, placeCompile } from "../../../src/remote-build/placement/placement.ts";
import type { SchedulerInputs } from "../../../src/remote-build/placement/scheduler.ts";

const A = "a".repeat(64);
const B = "b".repeat(64);

function inputs(servers: { pin: string; connected?: boolean; idle?: boolean | null; enabled?: boolean; status?: "approved" | "pending" }[], over: Partial<SchedulerInputs> = {}): SchedulerInputs {
  const open = new Set<string>();
  const status = new Map<string, { idle: boolean }>();
  for (const s of servers) {
    if (s.connected === false) continue;
    open.add(s.pin);
    if (s.idle !== null) status.set(s.pin, { idle: s.idle ?? true });
  }
  return {
    remoteBuildsEnabled: true,
    pairings: servers.map((s) => ({ pin_sha256: s.pin, status: s.status ?? "approved", enabled: s.enabled ?? true })),
    openPeerLinks: open,
    peerQueueStatus: status,
    busyPins: new Set(),
    ...over,
  };
}

const own = { offloadable: true, remoteLosses: 0 };

describe("placeCompile", () => {
  it("sends a compile to an idle build server whatever the setting", () => {
    for (const mode of LOCAL_BUILDS) expect(placeCompile(inputs([{ pin: A }]), mode, own)).toEqual({ kind: "remote", pinSha256: A });
  });

  it("always: compiles here while every build server is busy", () => {
    expect(placeCompile(inputs([{ pin: A, idle: false }]), "always", own)).toEqual({ kind: "local" });
    expect(placeCompile(inputs([{ pin: A }], { busyPins: new Set([A]) }), "always", own)).toEqual({ kind: "local" });
  });

  it("fallback: waits for a connected build server that is busy (or has not reported yet) instead of compiling here", () => {
    expect(placeCompile(inputs([{ pin: A, idle: false }]), "fallback", own)).toEqual({ kind: "wait" });
    expect(placeCompile(inputs([{ pin: A }], { busyPins: new Set([A]) }), "fallback", own)).toEqual({ kind: "wait" });
    expect(placeCompile(inputs([{ pin: A, idle: null }]), "fallback", own)).toEqual({ kind: "wait" });
    // One busy, one idle: the idle one.
    expect(placeCompile(inputs([{ pin: A, idle: false }, { pin: B }]), "fallback", own)).toEqual({ kind: "remote", pinSha256: B });
  });

  it("fallback: compiles here when no eligible build server is connected", () => {
    expect(placeCompile(inputs([]), "fallback", own)).toEqual({ kind: "local" });
    expect(placeCompile(inputs([{ pin: A, connected: false }]), "fallback", own)).toEqual({ kind: "local" });
    // Connected but not eligible: switched off, still pending, or sending builds off altogether.
    expect(placeCompile(inputs([{ pin: A, enabled: false, idle: false }]), "fallback", own)).toEqual({ kind: "local" });
    expect(placeCompile(inputs([{ pin: A, status: "pending", idle: false }]), "fallback", own)).toEqual({ kind: "local" });
    expect(placeCompile(inputs([{ pin: A, idle: false }], { remoteBuildsEnabled: false }), "fallback", own)).toEqual({ kind: "local" });
  });

  it("fallback: while this builder is starting up, waits for a paired build server that has not reconnected yet", () => {
    const starting = { ...own, startingUp: true };
    expect(placeCompile(inputs([{ pin: A, connected: false }]), "fallback", starting)).toEqual({ kind: "wait" });
    expect(placeCompile(inputs([]), "fallback", starting)).toEqual({ kind: "local" });
    expect(placeCompile(inputs([{ pin: A, connected: false, enabled: false }]), "fallback", starting)).toEqual({ kind: "local" });
    expect(placeCompile(inputs([{ pin: A, connected: false }], { remoteBuildsEnabled: false }), "fallback", starting)).toEqual({ kind: "local" });
    expect(placeCompile(inputs([{ pin: A, connected: false }]), "always", starting)).toEqual({ kind: "local" });
  });

  it("never: waits when no build server is connected or idle", () => {
    expect(placeCompile(inputs([]), "never", own)).toEqual({ kind: "wait" });
    expect(placeCompile(inputs([{ pin: A, connected: false }]), "never", own)).toEqual({ kind: "wait" });
    expect(placeCompile(inputs([{ pin: A, idle: false }]), "never", own)).toEqual({ kind: "wait" });
  });

  it("never: a job that must build here fails with the reason and the fix; the others build here", () => {
    const must = { offloadable: false, remoteLosses: 0 };
    const decision = placeCompile(inputs([{ pin: A }]), "never", must);
    expect(decision.kind).toBe("fail");
    expect(decision.kind === "fail" && decision.error).toMatch(/local_builds: never; change it under Build servers.*must build here/);
    expect(placeCompile(inputs([{ pin: A }]), "always", must)).toEqual({ kind: "local" });
    expect(placeCompile(inputs([{ pin: A }]), "fallback", must)).toEqual({ kind: "local" });
  });

  it(`re-routes a compile up to ${MAX_REROUTES} times, then builds here unless the setting says never`, () => {
    const idle = inputs([{ pin: A }]);
    expect(placeCompile(idle, "fallback", { offloadable: true, remoteLosses: MAX_REROUTES })).toEqual({ kind: "remote", pinSha256: A });
    const after = { offloadable: true, remoteLosses: MAX_REROUTES + 1 };
    expect(placeCompile(idle, "always", after)).toEqual({ kind: "local", note: "build servers were lost mid-build 4 times; building on this machine instead" });
    expect(placeCompile(idle, "fallback", after).kind).toBe("local");
    expect(placeCompile(idle, "never", after)).toEqual({ kind: "fail", error: "build servers were lost mid-build 4 times; this builder does not compile (local_builds: never; change it under Build servers)" });
  });

  it("asks the scheduler's own eligibility rules whether a build server could take it", () => {
    expect(hasEligibleBuildServer(inputs([{ pin: A, idle: false }], { busyPins: new Set([A]) }))).toBe(true);
    expect(hasEligibleBuildServer(inputs([{ pin: A, connected: false }]))).toBe(false);
    expect(hasEligibleBuildServer(inputs([{ pin: A, enabled: false }]))).toBe(false);
  });

  it("knows the same settings as the configuration", () => {
    expect([...LOCAL_BUILDS_OPTIONS]).toEqual([...LOCAL_BUILDS]);
  });
});
