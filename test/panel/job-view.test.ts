import { describe, expect, it } from "vitest";
import {
  jobSubject,
  canBuildLocally,
  localRetryArgs,
  progressView,
  remoteBuildLabel,
  remotePeerLabel,
  resultKind,
} from "../../panel/src/data/job-view.ts";
import { job } from "./fixtures.ts";

describe("progressView", () => {
  it("is indeterminate while queued or at 0", () => {
    expect(progressView(job())).toMatchObject({ phase: null, step: 1, steps: 2, indeterminate: true });
    expect(progressView(job({ status: "running", progress: 0 }))).toMatchObject({ phase: "compile", indeterminate: true });
  });

  it("follows compile then upload, resetting between them", () => {
    expect(progressView(job({ status: "running", phase: "compile", progress: 45 }))).toEqual({
      phase: "compile",
      step: 1,
      steps: 2,
      value: 45,
      indeterminate: false,
    });
    expect(progressView(job({ status: "running", phase: "upload", progress: 0 }))).toMatchObject({ step: 2, value: 0 });
    expect(progressView(job({ status: "running", phase: "upload", progress: 60 }))).toMatchObject({ step: 2, value: 60 });
  });

  it("is full on success and frozen on failure", () => {
    expect(progressView(job({ status: "completed", phase: "upload", progress: 100 }))).toMatchObject({ value: 100, indeterminate: false });
    expect(progressView(job({ status: "failed", phase: "compile", progress: 30 }))).toMatchObject({ value: 30, indeterminate: false });
    expect(progressView(job({ job_type: "clean", status: "running", phase: "clean", progress: 0 }))).toMatchObject({ steps: 1 });
  });
});

describe("remote builds", () => {
  const remote = job({ status: "running", phase: "compile", source: "remote", source_label: "garage-server", source_pin_sha256: "ab".repeat(32) });

  it("shows Building on {label} only while a remote job is active", () => {
    expect(remoteBuildLabel(remote)).toBe("garage-server");
    expect(remoteBuildLabel({ ...remote, source_label: "" })).toBe("abababababab");
    expect(remoteBuildLabel({ ...remote, status: "completed" })).toBeNull();
    expect(remoteBuildLabel(job({ status: "running" }))).toBeNull();
  });

  it("offers Build locally instead before the upload starts", () => {
    expect(canBuildLocally(remote)).toBe(true);
    expect(canBuildLocally({ ...remote, status: "queued", phase: null })).toBe(true);
    expect(canBuildLocally({ ...remote, phase: "upload" })).toBe(false);
    expect(canBuildLocally({ ...remote, job_type: "clean" })).toBe(false);
    expect(canBuildLocally({ ...remote, status: "failed" })).toBe(false);
  });

  it("re-issues with force_local and the same port", () => {
    expect(localRetryArgs(remote)).toEqual({ configuration: "kitchen.yaml", forceLocal: true });
    expect(localRetryArgs({ ...remote, port: "OTA" })).toEqual({ configuration: "kitchen.yaml", port: "OTA", forceLocal: true });
  });

  it("labels jobs compiled here for another builder", () => {
    expect(remotePeerLabel(job())).toBeNull();
    expect(remotePeerLabel(job({ remote_peer_label: "living room pi" }))).toBe("living room pi");
  });
});

describe("resultKind", () => {
  it("maps terminal statuses", () => {
    expect(resultKind(job({ status: "completed" }))).toBe("success");
    expect(resultKind(job({ status: "failed" }))).toBe("failed");
    expect(resultKind(job({ status: "cancelled" }))).toBe("cancelled");
    expect(resultKind(job({ status: "running" }))).toBeNull();
  });
});

describe("jobSubject", () => {
  const localize = (key: string, args?: { label: string }): string => (args === undefined ? key : `${key}:${args.label}`);
  it("names the device, or for a clean_all all devices here or this builder's files on a build server", () => {
    expect(jobSubject(job(), "kitchen", localize)).toBe("kitchen");
    expect(jobSubject(job({ job_type: "clean_all", configuration: "" }), "", localize)).toBe("jobs.all_devices");
    expect(jobSubject(job({ job_type: "clean_all", configuration: "", source: "remote", source_label: "Desktop" }), "", localize)).toBe("jobs.build_server_env:Desktop");
    expect(jobSubject(job({ job_type: "clean_all", configuration: "", source: "remote", source_label: "", source_pin_sha256: "ab".repeat(32) }), "", localize)).toBe(`jobs.build_server_env:${"ab".repeat(6)}`);
  });
});
