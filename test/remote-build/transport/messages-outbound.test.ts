/**
 * Each role's typed send takes exactly what the other role's schemas parse
 * (messages.ts derives the outbound unions from the inbound schemas): a frame
 * that type-checks is one the peer accepts, and a frame of the wrong role or
 * with a missing field does not compile (`npm run typecheck` runs these files).
 */
import { describe, expect, it } from "vitest";
import {
  offloaderInbound,
  parseMessage,
  receiverInbound,
  type BuildServerOutbound,
  type OffloaderOutbound,
} from "../../../src/remote-build/transport/messages.ts";

describe("typed outbound frames", () => {
  it("an offloader's frames parse on the build server's side", () => {
    const frames: OffloaderOutbound[] = [
      { type: "cancel_job", job_id: "j1" },
      { type: "download_artifacts", job_id: "j1", files: ["firmware.bin"] },
      { type: "reset_build_env", job_id: "j2" },
      { type: "ping", nonce: 3 },
      { type: "terminate", reason: "bye" },
    ];
    for (const frame of frames) expect(parseMessage(receiverInbound, frame)).toMatchObject({ kind: "ok", type: frame.type });
  });

  it("a build server's frames parse on the offloader's side", () => {
    const frames: BuildServerOutbound[] = [
      { type: "queue_status", idle: true, running: false, queue_depth: 0 },
      { type: "submit_job_ack", job_id: "j1", accepted: false, reason: "busy" },
      { type: "job_state_changed", job_id: "j1", status: "failed", error_message: "", failure_reason: "provision" },
      { type: "job_output", job_id: "j1", stream: "stdout", line: "INFO ok" },
      { type: "artifacts_end", job_id: "j1", accepted: false, reason: "build_dir_missing", detail: "build/x" },
      { type: "reset_build_env_ack", job_id: "j2", accepted: true },
    ];
    for (const frame of frames) expect(parseMessage(offloaderInbound, frame)).toMatchObject({ kind: "ok", type: frame.type });
  });

  it("a frame of the other role, or one missing a field, does not type-check", () => {
    // @ts-expect-error queue_status is the build server's, not the offloader's
    const wrongRole: OffloaderOutbound = { type: "queue_status", idle: true, running: false, queue_depth: 0 };
    // @ts-expect-error submit_job_ack needs `accepted`
    const missing: BuildServerOutbound = { type: "submit_job_ack", job_id: "j1" };
    // @ts-expect-error an unknown frame type
    const unknown: OffloaderOutbound = { type: "make_coffee", job_id: "j1" };
    // What the compiler refuses the peer refuses too.
    expect(parseMessage(receiverInbound, wrongRole).kind).toBe("unknown");
    expect(parseMessage(offloaderInbound, missing).kind).toBe("malformed");
    expect(parseMessage(receiverInbound, unknown).kind).toBe("unknown");
  });
});
