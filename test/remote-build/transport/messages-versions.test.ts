/**
 * The version fields of the peer link as a peer may send them: every value is
 * read by upstream's rules (a bad value is "" or false, never a reason to
 * drop the frame or the session), so a builder of any make can talk to ours.
 */
import { describe, expect, it } from "vitest";
import { intentResponseSchema, offloaderInbound, parseMessage, receiverInbound } from "../../../src/remote-build/transport/messages.ts";

const submit = (extra: Record<string, unknown>) => ({
  type: "submit_job", job_id: "job-1", configuration_filename: "kitchen.yaml", target: "compile",
  total_bundle_bytes: 10, num_chunks: 1, bundle_sha256: "0".repeat(64), ...extra,
});

describe("submit_job.target_esphome_version", () => {
  it("carries a well-formed version", () => {
    const parsed = parseMessage(receiverInbound, submit({ target_esphome_version: "2026.9.1" }));
    expect(parsed).toEqual({ kind: "ok", type: "submit_job", message: expect.objectContaining({ target_esphome_version: "2026.9.1" }) as unknown });
  });

  it.each([
    ["missing (an older offloader)", {}],
    ["not PEP 440", { target_esphome_version: "latest; rm -rf /" }],
    ["over 64 characters", { target_esphome_version: `2026.${"1".repeat(64)}` }],
    ["not a string", { target_esphome_version: 2026 }],
    ["null", { target_esphome_version: null }],
  ])("is \"\" when %s, and the job is still read", (_what, extra) => {
    const parsed = parseMessage(receiverInbound, submit(extra));
    expect(parsed.kind).toBe("ok");
    expect(parsed.kind === "ok" && (parsed.message as { target_esphome_version: string }).target_esphome_version).toBe("");
  });
});

describe("intent_response version fields", () => {
  it("reads auto_provision_supported, esphome_version and our version_policy", () => {
    expect(intentResponseSchema.parse({ intent_response: "ok", esphome_version: "2026.10.0", auto_provision_supported: true, version_policy: "exact" })).toEqual(
      expect.objectContaining({ esphome_version: "2026.10.0", auto_provision_supported: true, version_policy: "exact" }),
    );
  });

  it("treats a missing or non-bool auto_provision_supported as false, a bad version as unknown, an unknown policy as unsaid", () => {
    for (const value of [undefined, "true", 1, null]) {
      expect(intentResponseSchema.parse({ intent_response: "ok", auto_provision_supported: value }).auto_provision_supported).toBe(false);
    }
    const odd = intentResponseSchema.parse({ intent_response: "ok", esphome_version: "x".repeat(500), version_policy: "sometimes" });
    expect(odd.esphome_version).toBe("");
    expect(odd.version_policy).toBeNull();
  });
});

describe("job_state_changed.failure_reason", () => {
  const state = (extra: Record<string, unknown>) => parseMessage(offloaderInbound, { type: "job_state_changed", job_id: "job-1", status: "failed", ...extra });

  it("carries provision", () => {
    expect(state({ failure_reason: "provision" })).toEqual({ kind: "ok", type: "job_state_changed", message: expect.objectContaining({ failure_reason: "provision" }) as unknown });
  });

  it("is \"\" when missing or not a string (an ordinary failure)", () => {
    for (const extra of [{}, { failure_reason: 7 }, { failure_reason: null }]) {
      const parsed = state(extra);
      expect(parsed.kind === "ok" && (parsed.message as { failure_reason: string }).failure_reason).toBe("");
    }
  });
});
