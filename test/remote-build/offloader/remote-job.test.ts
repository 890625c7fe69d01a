/**
 * The handle of one job on a build server (src/remote-build/offloader/remote-job.ts):
 * its frames, its outcome (settled once), cancel with and without a confirmation,
 * and release. The session side is a recording link; the runner tests
 * (test/firmware/remote-runner.test.ts) drive it through a real session.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { RemoteJob, type RemoteJobLink } from "../../../src/remote-build/offloader/remote-job.ts";

function handle(cancelSent = true): { job: RemoteJob; cancels: string[]; released: RemoteJob[]; downloads: (readonly string[] | undefined)[] } {
  const cancels: string[] = [];
  const released: RemoteJob[] = [];
  const downloads: (readonly string[] | undefined)[] = [];
  const link: RemoteJobLink = {
    cancel: (id) => { cancels.push(id); return cancelSent; },
    download: (_id, files) => { downloads.push(files); return Promise.resolve(Buffer.from("tgz")); },
    release: (job) => { released.push(job); },
  };
  return { job: new RemoteJob("abcdef012345", link), cancels, released, downloads };
}

afterEach(() => { vi.useRealTimers(); });

describe("a remote job handle", () => {
  it("passes output and states on, and ends with the first terminal state only", async () => {
    const { job } = handle();
    const lines: string[] = [];
    const states: string[] = [];
    job.onOutput((line, stream) => lines.push(`${stream}:${line}`));
    job.onState((status) => states.push(status));
    job.output("a\n", "stdout");
    job.state("running", "", "");
    job.state("failed", "no space", "provision");
    job.state("completed", "", "");
    job.lost("transport_error");
    expect(await job.outcome).toEqual({ status: "failed", error: "no space", failureReason: "provision" });
    expect(lines).toEqual(["stdout:a\n"]);
    expect(states).toEqual(["running", "failed", "completed"]);
  });

  it("ends as lost with the reason when the session closes first", async () => {
    const { job } = handle();
    job.state("running", "", "");
    job.lost("heartbeat_timeout");
    expect(await job.outcome).toEqual({ status: "lost", error: "heartbeat_timeout", failureReason: "" });
  });

  it("is cancelled at once when the cancel cannot be sent", async () => {
    const { job, cancels } = handle(false);
    job.cancel(10_000);
    expect(cancels).toEqual(["abcdef012345"]);
    expect(await job.outcome).toMatchObject({ status: "cancelled" });
  });

  it("waits for the build server's confirmation, then gives up after the wait", async () => {
    vi.useFakeTimers();
    const { job } = handle();
    let settled = false;
    void job.outcome.then(() => { settled = true; });
    job.cancel(5000);
    await vi.advanceTimersByTimeAsync(4999);
    expect(settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(await job.outcome).toMatchObject({ status: "cancelled" });
  });

  it("takes the build server's own end when it comes within the wait", async () => {
    vi.useFakeTimers();
    const { job } = handle();
    job.cancel(5000);
    job.state("cancelled", "cancelled by the offloader", "");
    await vi.advanceTimersByTimeAsync(6000);
    expect(await job.outcome).toEqual({ status: "cancelled", error: "cancelled by the offloader", failureReason: "" });
  });

  it("downloads through its session and releases itself when closed", async () => {
    const { job, released, downloads } = handle();
    expect((await job.downloadArtifacts(["firmware.bin"])).toString()).toBe("tgz");
    job.close();
    expect(downloads).toEqual([["firmware.bin"]]);
    expect(released).toEqual([job]);
  });
});
