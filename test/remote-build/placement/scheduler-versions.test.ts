/**
 * The scheduler's ESPHome-version filter and warm-cache affinity: which build
 * servers can build with this builder's version (their own policy and
 * auto-provisioning, then our version_match_policy), what the job is told when
 * it builds here instead, exact_required's wait and no_compatible_peer, and
 * the device going back to the build server that built it last.
 */
import { describe, expect, it } from "vitest";
import { THIS_MACHINE, pickBuildPath, versionSkipReason, type SchedulerInputs, type SchedulerPairing } from "../../../src/remote-build/placement/scheduler.ts";

const A = "a".repeat(64);
const B = "b".repeat(64);

function server(pin: string, over: Partial<SchedulerPairing> = {}): SchedulerPairing {
  return { pin_sha256: pin, status: "approved", enabled: true, label: pin === A ? "Alpha" : "Beta", esphome_version: "2026.10.0", ...over };
}

function inputs(pairings: SchedulerPairing[], over: Partial<SchedulerInputs> = {}): SchedulerInputs {
  const pins = pairings.map((p) => p.pin_sha256);
  return {
    remoteBuildsEnabled: true,
    pairings,
    openPeerLinks: new Set(pins),
    peerQueueStatus: new Map(pins.map((p) => [p, { idle: true }])),
    esphomeVersion: "2026.10.0",
    versionMatchPolicy: "any",
    ...over,
  };
}

describe("version eligibility", () => {
  it("skips a release-policy build server of another release line and says why", () => {
    const decision = pickBuildPath(inputs([server(A, { esphome_version: "2026.9.1", version_policy: "release" })]));
    expect(decision.path).toBe("local");
    expect(decision.path === "local" && decision.skipped).toEqual([
      { pinSha256: A, reason: expect.stringContaining("Alpha: this build server runs ESPHome 2026.9.1 and its version policy release builds only for 2026.9.x") as unknown },
    ]);
  });

  it("goes on to the next build server after a skipped one", () => {
    const decision = pickBuildPath(inputs([server(A, { esphome_version: "2026.9.1", version_policy: "release" }), server(B)]));
    expect(decision).toEqual({ path: "remote", pinSha256: B });
  });

  it("uses a build server that installs our version (exact, able to) even under exact_required here", () => {
    const provisioning = server(A, { esphome_version: "2026.9.1", version_policy: "exact", auto_provision_supported: true });
    expect(pickBuildPath(inputs([provisioning], { versionMatchPolicy: "exact_required" }))).toEqual({ path: "remote", pinSha256: A });
  });

  it("skips an exact-policy build server that cannot install versions", () => {
    const decision = pickBuildPath(inputs([server(A, { esphome_version: "2026.9.1", version_policy: "exact", auto_provision_supported: false })]));
    expect(decision.path === "local" && decision.skipped?.[0]?.reason).toContain("cannot install other ESPHome versions");
  });

  it("a build server of another make (no policy said): auto-provisioning makes it build with our version", () => {
    const upstream = server(A, { esphome_version: "2026.9.1", version_policy: null, auto_provision_supported: true });
    expect(pickBuildPath(inputs([upstream], { versionMatchPolicy: "exact" }))).toEqual({ path: "remote", pinSha256: A });
    // ...but not when our version cannot be installed by name (a dev build).
    const dev = pickBuildPath(inputs([upstream], { versionMatchPolicy: "exact", esphomeVersion: "2026.11.0.dev3" }));
    expect(dev.path).toBe("local");
    expect(dev.path === "local" && dev.skipped?.[0]?.reason).toContain("builds with ESPHome 2026.9.1 and this builder (ESPHome 2026.11.0.dev3) sends builds only where the version matches (version_match_policy exact)");
  });

  it("our version_match_policy: release keeps the same month, exact the same string; unknown versions pass both", () => {
    const older = server(A, { esphome_version: "2026.10.1", version_policy: null });
    expect(pickBuildPath(inputs([older], { versionMatchPolicy: "release" }))).toEqual({ path: "remote", pinSha256: A });
    expect(pickBuildPath(inputs([older], { versionMatchPolicy: "exact" })).path).toBe("local");
    expect(pickBuildPath(inputs([server(A, { esphome_version: "" })], { versionMatchPolicy: "exact" }))).toEqual({ path: "remote", pinSha256: A });
    expect(pickBuildPath(inputs([older], { versionMatchPolicy: "exact", esphomeVersion: "" }))).toEqual({ path: "remote", pinSha256: A });
  });

  it("any (the default) sends builds anywhere a build server's own policy allows", () => {
    expect(pickBuildPath(inputs([server(A, { esphome_version: "2020.1.0" })]))).toEqual({ path: "remote", pinSha256: A });
    const bare: SchedulerInputs = { remoteBuildsEnabled: true, pairings: [server(A, { esphome_version: "2020.1.0" })], openPeerLinks: new Set([A]), peerQueueStatus: new Map([[A, { idle: true }]]) };
    expect(pickBuildPath(bare)).toEqual({ path: "remote", pinSha256: A });
  });

  it("does not mention a skipped build server that is not connected (it is left out anyway)", () => {
    const decision = pickBuildPath(inputs([server(A, { esphome_version: "2026.9.1", version_policy: "release" })], { openPeerLinks: new Set() }));
    expect(decision).toEqual({ path: "local", pinSha256: "" });
  });

  it("exact_required: waits while a matching build server is busy or away, never builds here", () => {
    const busy = inputs([server(A)], { versionMatchPolicy: "exact_required", peerQueueStatus: new Map([[A, { idle: false }]]) });
    expect(pickBuildPath(busy).path).toBe("wait");
    const away = inputs([server(A)], { versionMatchPolicy: "exact_required", openPeerLinks: new Set() });
    expect(pickBuildPath(away).path).toBe("wait");
  });

  it("exact_required: no_compatible_peer with every reason when no paired build server matches", () => {
    const decision = pickBuildPath(inputs([server(A, { esphome_version: "2026.9.1" }), server(B, { esphome_version: "" })], { versionMatchPolicy: "exact_required", openPeerLinks: new Set([A]) }));
    expect(decision.path).toBe("no_compatible_peer");
    expect(decision.path === "no_compatible_peer" && decision.skipped.map((s) => s.pinSha256)).toEqual([A, B]);
  });

  it("exact_required with nothing paired (or all switched off) builds here", () => {
    expect(pickBuildPath(inputs([], { versionMatchPolicy: "exact_required" })).path).toBe("local");
    expect(pickBuildPath(inputs([server(A, { enabled: false })], { versionMatchPolicy: "exact_required" })).path).toBe("local");
  });

  it("versionSkipReason names the build server by its label, else its pin", () => {
    expect(versionSkipReason(server(A, { label: undefined, esphome_version: "2026.9.1" } as unknown as SchedulerPairing), "2026.10.0", "exact")).toContain(A.slice(0, 8));
    expect(versionSkipReason(server(A), "2026.10.0", "exact")).toBeNull();
  });
});

describe("warm-cache affinity", () => {
  it("sends a device back to the build server that built it last when it is eligible and idle", () => {
    expect(pickBuildPath(inputs([server(A), server(B)]), { lastBuiltOn: B })).toEqual({ path: "remote", pinSha256: B });
  });

  it("takes the usual order when that build server is busy, away, already compiling ours, or skipped for its version", () => {
    const both = [server(A), server(B)];
    expect(pickBuildPath(inputs(both, { peerQueueStatus: new Map([[A, { idle: true }], [B, { idle: false }]]) }), { lastBuiltOn: B })).toEqual({ path: "remote", pinSha256: A });
    expect(pickBuildPath(inputs(both, { openPeerLinks: new Set([A]) }), { lastBuiltOn: B })).toEqual({ path: "remote", pinSha256: A });
    expect(pickBuildPath(inputs(both, { busyPins: new Set([B]) }), { lastBuiltOn: B })).toEqual({ path: "remote", pinSha256: A });
    const skipped = [server(A), server(B, { esphome_version: "2026.9.1", version_policy: "release" })];
    expect(pickBuildPath(inputs(skipped), { lastBuiltOn: B })).toEqual({ path: "remote", pinSha256: A });
  });

  it("sends a device this machine built last to an idle build server all the same (compiles stay off this machine)", () => {
    expect(pickBuildPath(inputs([server(A)]), { lastBuiltOn: THIS_MACHINE })).toEqual({ path: "remote", pinSha256: A });
    expect(pickBuildPath(inputs([server(A)], { busyPins: new Set([A]) }), { lastBuiltOn: THIS_MACHINE })).toEqual({ path: "local", pinSha256: "" });
  });

  it("a build server that is no longer paired is simply not chosen", () => {
    expect(pickBuildPath(inputs([server(A)]), { lastBuiltOn: B })).toEqual({ path: "remote", pinSha256: A });
  });
});
