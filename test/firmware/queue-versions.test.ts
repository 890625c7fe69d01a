/**
 * The queue's side of ESPHome versions on build servers: a remote compile the
 * build server could not do with the version asked for (`fallbackLocal`) runs
 * again on this machine as the same job, and a router that finds no build
 * server for a job that may not build here fails it with the reason.
 */
import { describe, expect, it } from "vitest";
import { EventBus } from "../../src/events.ts";
import type { StoredJob } from "../../src/firmware/job.ts";
import { FirmwareQueue, type JobRouter, type RouteDecision } from "../../src/firmware/queue.ts";
import { resolvePaths } from "../../src/paths.ts";
import { ScriptedRunner } from "../helpers/scripted-runner.ts";
import { tempDir, waitFor } from "../helpers/tmp.ts";

async function ended(queue: FirmwareQueue, jobId: string): Promise<void> {
  await waitFor(() => ["completed", "failed", "cancelled"].includes(queue.get(jobId)?.status ?? ""), 5000, "the job's end");
  await queue.stop();
}

const PIN = "b".repeat(64);

async function setup(route: (job: Readonly<StoredJob>, ctx: { busyPins: ReadonlySet<string> }) => RouteDecision) {
  const bus = new EventBus();
  const names: string[] = [];
  const lines: string[] = [];
  bus.onAny((name) => { if (name.startsWith("job_") && name !== "job_output" && name !== "job_progress") names.push(name); });
  bus.on("job_output", ({ line }) => lines.push(line));
  const runner = new ScriptedRunner();
  const router: JobRouter = { route };
  const queue = new FirmwareQueue({ bus, paths: resolvePaths({ configDir: await tempDir() }), runner, router });
  await queue.start();
  return { queue, runner, names, lines };
}

describe("FirmwareQueue and ESPHome versions", () => {
  it("runs a compile the build server could not provide the version for again here, as the same job", async () => {
    const { queue, runner, names, lines } = await setup((job) => {
      return job.force_local ? { kind: "local" } : { kind: "remote", pinSha256: PIN, label: "Box" };
    });
    const job = await queue.enqueue({ configuration: "kitchen.yaml", job_type: "install", port: "OTA" });
    const remote = await runner.next();
    expect(remote.job).toMatchObject({ source: "remote", source_pin_sha256: PIN });
    remote.end({ exitCode: null, error: "remote build on Box: nope", failureReason: "provision", fallbackLocal: "build server Box did not build this: nope; building on this machine instead" });

    const local = await runner.next();
    expect(local.phase).toBe("compile");
    expect(local.job).toMatchObject({ job_id: job.job_id, source: "local", source_pin_sha256: "", source_label: "", force_local: true });
    local.succeed();
    const upload = await runner.next();
    expect(upload.phase).toBe("upload");
    upload.succeed();
    await ended(queue, job.job_id);
    const final = queue.get(job.job_id);
    expect(final).toMatchObject({ status: "completed", failure_reason: "", force_local: true });
    expect(lines.join("")).toContain("*** build server Box did not build this: nope; building on this machine instead ***\n");
    // One job, one start, one end.
    expect(names.filter((n) => n !== "job_removed")).toEqual(["job_queued", "job_started", "job_completed"]);
  });

  it("a remote failure without fallbackLocal fails the job and keeps its failure_reason", async () => {
    const { queue, runner } = await setup(() => ({ kind: "remote", pinSha256: PIN, label: "Box" }));
    const job = await queue.enqueue({ configuration: "kitchen.yaml", job_type: "compile" });
    (await runner.next()).end({ exitCode: null, error: "could not provide ESPHome 2026.9.1: no Python", failureReason: "provision" });
    await ended(queue, job.job_id);
    expect(queue.get(job.job_id)).toMatchObject({ status: "failed", error: "could not provide ESPHome 2026.9.1: no Python", failure_reason: "provision" });
  });

  it("a fallback from a local run is an ordinary failure (only remote compiles fall back)", async () => {
    const { queue, runner } = await setup(() => ({ kind: "local" }));
    const job = await queue.enqueue({ configuration: "kitchen.yaml", job_type: "compile" });
    (await runner.next()).end({ exitCode: null, error: "odd", fallbackLocal: "should not happen" });
    await ended(queue, job.job_id);
    expect(queue.get(job.job_id)).toMatchObject({ status: "failed", error: "odd" });
    expect(runner.runs).toHaveLength(1);
  });

  it("fails a job the router finds nowhere to build, without running anything", async () => {
    const { queue, runner, names } = await setup(() => ({ kind: "fail", error: "no paired build server can build with this builder's ESPHome" }));
    const job = await queue.enqueue({ configuration: "kitchen.yaml", job_type: "compile" });
    await queue.stop();
    expect(queue.get(job.job_id)).toMatchObject({ status: "failed", error: "no paired build server can build with this builder's ESPHome" });
    expect(runner.runs).toHaveLength(0);
    expect(names).toEqual(["job_queued", "job_failed"]);
  });
});
