import { describe, expect, it } from "vitest";
import { LOCAL, pickBuildPath, remote, type SchedulerInputs, type SchedulerPairing } from "../../../src/remote-build/placement/scheduler.ts";

const A = "a".repeat(64);
const B = "b".repeat(64);
const C = "c".repeat(64);

const approved = (pin: string, enabled = true): SchedulerPairing => ({ pin_sha256: pin, status: "approved", enabled });

function inputs(over: Partial<SchedulerInputs> = {}): SchedulerInputs {
  return {
    remoteBuildsEnabled: true,
    pairings: [approved(A)],
    openPeerLinks: new Set([A]),
    peerQueueStatus: new Map([[A, { idle: true }]]),
    ...over,
  };
}

describe("pickBuildPath", () => {
  it("routes to an approved, connected, idle build server", () => {
    expect(pickBuildPath(inputs())).toEqual({ path: "remote", pinSha256: A });
  });

  it("builds locally when the master switch is off, even with an idle build server", () => {
    expect(pickBuildPath(inputs({ remoteBuildsEnabled: false }))).toEqual(LOCAL);
  });

  it("builds locally with no pairings", () => {
    expect(pickBuildPath(inputs({ pairings: [] }))).toEqual(LOCAL);
  });

  it.each([
    ["pending", inputs({ pairings: [{ pin_sha256: A, status: "pending", enabled: true }] })],
    ["disconnected", inputs({ openPeerLinks: new Set() })],
    ["busy", inputs({ peerQueueStatus: new Map([[A, { idle: false }]]) })],
    ["without a queue snapshot", inputs({ peerQueueStatus: new Map() })],
    ["switched off", inputs({ pairings: [approved(A, false)] })],
    ["already compiling one of ours", inputs({ busyPins: new Set([A]) })],
  ])("skips a %s build server and falls back to local", (_what, given) => {
    expect(pickBuildPath(given)).toEqual(LOCAL);
  });

  it("takes the first eligible pairing in order", () => {
    const given = inputs({
      pairings: [approved(A), approved(B)],
      openPeerLinks: new Set([A, B]),
      peerQueueStatus: new Map([[A, { idle: true }], [B, { idle: true }]]),
    });
    expect(pickBuildPath(given).pinSha256).toBe(A);
  });

  it.each([
    ["busy", { peerQueueStatus: new Map([[A, { idle: false }], [B, { idle: true }], [C, { idle: true }]]) }],
    ["disconnected", { openPeerLinks: new Set([B, C]) }],
    ["pending", { pairings: [{ pin_sha256: A, status: "pending" as const, enabled: true }, approved(B), approved(C)] }],
  ])("falls through a %s first candidate to the next", (_what, over) => {
    const base = inputs({
      pairings: [approved(A), approved(B), approved(C)],
      openPeerLinks: new Set([A, B, C]),
      peerQueueStatus: new Map([[A, { idle: true }], [B, { idle: true }], [C, { idle: true }]]),
    });
    expect(pickBuildPath({ ...base, ...over })).toEqual({ path: "remote", pinSha256: B });
  });

  it("gives both decisions the same shape", () => {
    expect(Object.keys(LOCAL).sort()).toEqual(["path", "pinSha256"]);
    expect(Object.keys(remote(A)).sort()).toEqual(["path", "pinSha256"]);
    expect(LOCAL.pinSha256).toBe("");
  });

  it("returns frozen decisions and leaves its inputs untouched", () => {
    const given = inputs();
    const before = JSON.stringify({ ...given, openPeerLinks: [...given.openPeerLinks], peerQueueStatus: [...given.peerQueueStatus] });
    const decision = pickBuildPath(given);
    expect(Object.isFrozen(decision)).toBe(true);
    expect(Object.isFrozen(LOCAL)).toBe(true);
    expect(() => { (decision as { path: string }).path = "local"; }).toThrow();
    expect(JSON.stringify({ ...given, openPeerLinks: [...given.openPeerLinks], peerQueueStatus: [...given.peerQueueStatus] })).toBe(before);
  });
});
