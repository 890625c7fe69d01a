import { describe, expect, it } from "vitest";
import { announcedPinDiffers, flowPairingKey, needsPairingKey, pairFlowReducer, pairingKeyReady, pairStep, startPairFlow, type PairAction, type PairFlow } from "../../panel/src/data/pair-flow.ts";
import { seedRemoteBuild, applyRemoteEvent, type RemoteBuildState } from "../../panel/src/data/remote-build.ts";
import type { PairPreview } from "../../panel/src/data/types.ts";
import { pairing, PIN_A, PIN_B, remoteSnapshot } from "./fixtures.ts";

const preview: PairPreview = { pin_sha256: PIN_B, fingerprint_emoji: [], label: "Desktop", esphome_version: "2026.11.0", requires_pairing_key: false };
const headless: PairPreview = { ...preview, requires_pairing_key: true };

function run(actions: PairAction[], from: PairFlow = startPairFlow({ hostname: "192.168.1.20", port: 6055 })): PairFlow {
  return actions.reduce(pairFlowReducer, from);
}

describe("the pair dialog's steps", () => {
  it("goes address -> previewing -> confirm (label from the build server) -> requesting -> waiting", () => {
    let flow = startPairFlow();
    expect(flow).toMatchObject({ step: "address", hostname: "", port: "" });
    flow = run([{ type: "edit", hostname: "desktop.local", port: "6055" }, { type: "preview_started" }], flow);
    expect(flow.step).toBe("previewing");
    flow = run([{ type: "preview_ok", preview }], flow);
    expect(flow).toMatchObject({ step: "confirm", label: "Desktop", preview });
    flow = run([{ type: "edit", label: "Big desktop" }, { type: "request_started" }], flow);
    expect(flow).toMatchObject({ step: "requesting", label: "Big desktop" });
    flow = run([{ type: "request_ok", pairing: pairing({ status: "pending" }) }], flow);
    expect(flow.step).toBe("waiting");
  });

  it("keeps a label the user typed before the preview", () => {
    expect(run([{ type: "edit", label: "Mine" }, { type: "preview_ok", preview }]).label).toBe("Mine");
  });

  it("returns to the address with the reason when nothing answers there", () => {
    const flow = run([{ type: "preview_started" }, { type: "preview_failed", message: "cannot reach 192.168.1.20:6055" }]);
    expect(flow).toMatchObject({ step: "address", preview: null, error: { kind: "unreachable", message: "cannot reach 192.168.1.20:6055" } });
  });

  it("tells a closed pairing window (unavailable, with the builder's text) from a key mismatch (invalid_args)", () => {
    const confirmed = run([{ type: "preview_ok", preview }, { type: "request_started" }]);
    const window = pairFlowReducer(confirmed, { type: "request_failed", code: "unavailable", message: "192.168.1.20 is not accepting pairing requests: open the pairing window" });
    expect(window).toMatchObject({ step: "confirm", error: { kind: "refused", message: expect.stringContaining("open the pairing window") as unknown } });
    const mismatch = pairFlowReducer(confirmed, { type: "request_failed", code: "invalid_args", message: "pin mismatch" });
    expect(mismatch.error?.kind).toBe("mismatch");
    // Trying again clears the error.
    expect(pairFlowReducer(window, { type: "request_started" }).error).toBeNull();
  });

  it("does not request without a preview; back forgets the preview", () => {
    const flow = startPairFlow({ hostname: "h" });
    expect(pairFlowReducer(flow, { type: "request_started" })).toBe(flow);
    expect(run([{ type: "preview_ok", preview }, { type: "back" }])).toMatchObject({ step: "address", preview: null, hostname: "192.168.1.20" });
  });

  it("warns when the key differs from the one announced over mDNS", () => {
    expect(announcedPinDiffers(run([{ type: "preview_ok", preview }], startPairFlow({ hostname: "h", announcedPin: PIN_A })))).toBe(true);
    expect(announcedPinDiffers(run([{ type: "preview_ok", preview }], startPairFlow({ hostname: "h", announcedPin: PIN_B })))).toBe(false);
    expect(announcedPinDiffers(run([{ type: "preview_ok", preview }]))).toBe(false);
  });

  it("shows paired once the builder reports the pairing approved, rejected when it went away", () => {
    const waiting = run([{ type: "preview_ok", preview }, { type: "request_started" }, { type: "request_ok", pairing: pairing({ status: "pending" }) }]);
    let remote: RemoteBuildState = seedRemoteBuild(remoteSnapshot());
    remote = applyRemoteEvent(remote, { event: "offloader_pairing_changed", data: { pairing: pairing({ status: "pending" }) } });
    expect(pairStep(waiting, remote)).toBe("waiting");
    const approved = applyRemoteEvent(remote, { event: "offloader_pairing_changed", data: { pairing: pairing({ status: "approved" }) } });
    expect(pairStep(waiting, approved)).toBe("paired");
    const rejected = applyRemoteEvent(remote, { event: "offloader_pairing_removed", data: { pin_sha256: PIN_B, reason: "no_approved_peer" } });
    expect(pairStep(waiting, rejected)).toBe("rejected");
    // Other steps are the flow's own.
    expect(pairStep(startPairFlow(), approved)).toBe("address");
  });
});

describe("the pair dialog and a headless build server's pairing key", () => {
  const atConfirm = (p: PairPreview): PairFlow => run([{ type: "preview_ok", preview: p }]);

  it("asks for a key only when the preview says the build server needs one", () => {
    expect(needsPairingKey(atConfirm(preview))).toBe(false);
    expect(flowPairingKey(atConfirm(preview))).toBeUndefined();
    expect(pairingKeyReady(atConfirm(preview))).toBe(true);
    expect(needsPairingKey(atConfirm(headless))).toBe(true);
  });

  it("groups the key as it is typed and holds the request until it is complete", () => {
    let flow = atConfirm(headless);
    expect(pairingKeyReady(flow)).toBe(false);
    // Without a complete key the request does not start.
    expect(pairFlowReducer(flow, { type: "request_started" })).toBe(flow);
    flow = pairFlowReducer(flow, { type: "edit", pairingKey: "abcd efg" });
    expect(flow.pairingKey).toBe("ABCD-EFG");
    expect(flowPairingKey(flow)).toBeNull();
    flow = pairFlowReducer(flow, { type: "edit", pairingKey: "abcd-efgh-jkmn-pqrsXYZ" });
    expect(flow.pairingKey).toBe("ABCD-EFGH-JKMN-PQRS");
    expect(flowPairingKey(flow)).toBe("ABCD-EFGH-JKMN-PQRS");
    expect(pairFlowReducer(flow, { type: "request_started" }).step).toBe("requesting");
    // A complete key of characters the alphabet does not have is not ready.
    expect(pairingKeyReady(pairFlowReducer(flow, { type: "edit", pairingKey: "OOOO-OOOO-OOOO-OOOO" }))).toBe(false);
  });

  it("says the key is wrong or expired when the build server did not take it, and forgets that once the key is edited", () => {
    const flow = run([{ type: "edit", pairingKey: "ABCD-EFGH-JKMN-PQRS" }, { type: "request_started" }], atConfirm(headless));
    const refused = pairFlowReducer(flow, { type: "request_failed", code: "pairing_key_refused", message: "desktop did not take the pairing key: it is wrong or expired" });
    expect(refused).toMatchObject({ step: "confirm", error: { kind: "key" } });
    expect(pairFlowReducer(refused, { type: "edit", pairingKey: "ABCD-EFGH-JKMN-PQRT" }).error).toBeNull();
    // Editing the label keeps it.
    expect(pairFlowReducer(refused, { type: "edit", label: "x" }).error?.kind).toBe("key");
  });
});
