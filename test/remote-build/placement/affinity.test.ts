/**
 * Warm-cache affinity's memory: which build server compiled each device last,
 * learnt from the job events, kept on disk, bounded, forgotten with the
 * pairing, and read back row by row.
 */
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { EventBus } from "../../../src/events.ts";
import { createJob, type FirmwareJob } from "../../../src/firmware/job.ts";
import { AFFINITY_MAX_ENTRIES, BuildAffinity } from "../../../src/remote-build/placement/affinity.ts";
import { THIS_MACHINE } from "../../../src/remote-build/placement/scheduler.ts";
import { tempDir } from "../../helpers/tmp.ts";

const A = "a".repeat(64);
const B = "b".repeat(64);

function job(over: Partial<FirmwareJob>): FirmwareJob {
  return { ...createJob({ configuration: "kitchen.yaml", job_type: "install" }, new Date()), output: [], source: "remote", source_pin_sha256: A, source_label: "A", ...over };
}

async function affinity(file?: string) {
  const bus = new EventBus();
  const f = file ?? path.join(await tempDir(), "build-affinity.json");
  const a = new BuildAffinity({ bus, file: f });
  await a.start();
  return { a, bus, file: f };
}

describe("BuildAffinity", () => {
  it("remembers the build server of a completed remote build, and of one whose upload failed after the compile", async () => {
    const { a, bus } = await affinity();
    bus.emit("job_completed", { job: job({ status: "completed" }) });
    expect(a.lastBuiltOn("kitchen.yaml")).toBe(A);
    bus.emit("job_failed", { job: job({ status: "failed", phase: "upload", source_pin_sha256: B }) });
    expect(a.lastBuiltOn("kitchen.yaml")).toBe(B);
    await a.stop();
  });

  it("remembers this machine for a local build", async () => {
    const { a, bus } = await affinity();
    bus.emit("job_completed", { job: job({ status: "completed", source: "local", source_pin_sha256: "" }) });
    expect(a.lastBuiltOn("kitchen.yaml")).toBe(THIS_MACHINE);
    await a.stop();
  });

  it("ignores compiles that failed, cleans and uploads, and a build server's jobs for its peers", async () => {
    const { a, bus } = await affinity();
    bus.emit("job_failed", { job: job({ status: "failed", phase: "compile" }) });
    bus.emit("job_completed", { job: job({ status: "completed", job_type: "clean", source: "local", source_pin_sha256: "" }) });
    bus.emit("job_completed", { job: job({ status: "completed", job_type: "upload", source: "local", source_pin_sha256: "" }) });
    bus.emit("job_completed", { job: job({ status: "completed", remote_peer: B, configuration: "x/y/kitchen.yaml" }) });
    expect(a.lastBuiltOn("kitchen.yaml")).toBeUndefined();
    expect(a.lastBuiltOn("x/y/kitchen.yaml")).toBeUndefined();
    await a.stop();
  });

  it("keeps it across restarts and forgets a pairing that was removed", async () => {
    const { a, bus, file } = await affinity();
    bus.emit("job_completed", { job: job({ status: "completed" }) });
    bus.emit("job_completed", { job: job({ status: "completed", configuration: "porch.yaml", source_pin_sha256: B }) });
    await a.stop();
    const again = await affinity(file);
    expect(again.a.lastBuiltOn("kitchen.yaml")).toBe(A);
    again.bus.emit("offloader_pairing_removed", { pin_sha256: A, reason: "unpaired" });
    expect(again.a.lastBuiltOn("kitchen.yaml")).toBeUndefined();
    expect(again.a.lastBuiltOn("porch.yaml")).toBe(B);
    await again.a.stop();
    expect(JSON.parse(await readFile(file, "utf8"))).toEqual({ devices: { "porch.yaml": { pin_sha256: B, at: expect.any(Number) as unknown } } });
  });

  it("reads rows one by one: a bad row is dropped, the others kept; a file that is not JSON starts empty", async () => {
    const dir = await tempDir();
    const file = path.join(dir, "build-affinity.json");
    await writeFile(file, JSON.stringify({ devices: { "kitchen.yaml": { pin_sha256: A, at: 1 }, "bad.yaml": { pin_sha256: "../../etc", at: 2 }, "worse.yaml": 7 } }));
    const { a } = await affinity(file);
    expect(a.lastBuiltOn("kitchen.yaml")).toBe(A);
    expect(a.lastBuiltOn("bad.yaml")).toBeUndefined();
    await a.stop();
    await writeFile(file, "{not json");
    const broken = await affinity(file);
    expect(broken.a.lastBuiltOn("kitchen.yaml")).toBeUndefined();
    await broken.a.stop();
  });

  it(`remembers at most ${AFFINITY_MAX_ENTRIES} devices, forgetting the oldest`, async () => {
    const { a, bus } = await affinity();
    for (let i = 0; i <= AFFINITY_MAX_ENTRIES; i++) bus.emit("job_completed", { job: job({ status: "completed", configuration: `d${i}.yaml` }) });
    expect(a.lastBuiltOn("d0.yaml")).toBeUndefined();
    expect(a.lastBuiltOn("d1.yaml")).toBe(A);
    expect(a.lastBuiltOn(`d${AFFINITY_MAX_ENTRIES}.yaml`)).toBe(A);
    await a.stop();
  });
});
