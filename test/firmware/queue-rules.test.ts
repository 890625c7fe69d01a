/** The queue's rules over plain jobs: supersede, what the router places, what the history keeps. */
import { describe, expect, it } from "vitest";
import { createJob, type StoredJob } from "../../src/firmware/job.ts";
import { finishedToPrune, isOffloadable, isPlaceable, sameTarget } from "../../src/firmware/queue-rules.ts";

let tick = 0;
function job(over: Partial<StoredJob> & Pick<StoredJob, "configuration" | "job_type">): StoredJob {
  return { ...createJob({ configuration: over.configuration, job_type: over.job_type }, new Date(Date.UTC(2026, 10, 23, 10, 0, 0, tick++))), ...over };
}
const PIN = "ab".repeat(32);

describe("sameTarget", () => {
  it("supersedes one device's jobs, and a clean_all only by a clean_all of the same build environment", () => {
    expect(sameTarget(job({ configuration: "k.yaml", job_type: "compile" }), job({ configuration: "k.yaml", job_type: "install" }))).toBe(true);
    expect(sameTarget(job({ configuration: "k.yaml", job_type: "compile" }), job({ configuration: "g.yaml", job_type: "compile" }))).toBe(false);
    const here = job({ configuration: "", job_type: "clean_all" });
    const there = job({ configuration: "", job_type: "clean_all", source: "remote", source_pin_sha256: PIN });
    expect(sameTarget(here, job({ configuration: "", job_type: "clean_all" }))).toBe(true);
    expect(sameTarget(here, there)).toBe(false);
    expect(sameTarget(there, job({ configuration: "", job_type: "clean_all", source: "remote", source_pin_sha256: PIN }))).toBe(true);
    // A peer's clean_all on a build server and its compile of a device are different targets.
    expect(sameTarget(job({ configuration: PIN, job_type: "clean_all", remote_peer: PIN }), job({ configuration: PIN, job_type: "compile", remote_peer: PIN }))).toBe(false);
  });
});

describe("isPlaceable / isOffloadable", () => {
  it("places this builder's compiles; all but force_local ones may leave (a serial install's image set comes back whole)", () => {
    const install = job({ configuration: "k.yaml", job_type: "install", port: "OTA" });
    expect([isPlaceable(install, "compile"), isOffloadable(install, "compile")]).toEqual([true, true]);
    expect(isPlaceable(install, "upload")).toBe(false);
    const serial = job({ configuration: "k.yaml", job_type: "install", port: "/dev/ttyUSB0" });
    expect([isPlaceable(serial, "compile"), isOffloadable(serial, "compile")]).toEqual([true, true]);
    const forced = job({ configuration: "k.yaml", job_type: "compile", force_local: true });
    expect([isPlaceable(forced, "compile"), isOffloadable(forced, "compile")]).toEqual([true, false]);
    expect(isPlaceable(job({ configuration: "k.yaml", job_type: "clean" }), "clean")).toBe(false);
    expect(isPlaceable(job({ configuration: `${PIN}/k/k.yaml`, job_type: "compile", remote_peer: PIN }), "compile")).toBe(false);
  });
});

describe("finishedToPrune", () => {
  it("keeps the newest per configuration and type, and counts clean_all among the cleans", () => {
    const done = (over: Partial<StoredJob> & Pick<StoredJob, "configuration" | "job_type">): StoredJob => job({ status: "completed", ...over });
    const oldCompile = done({ configuration: "k.yaml", job_type: "compile" });
    const newCompile = done({ configuration: "k.yaml", job_type: "compile" });
    const cleanAll1 = done({ configuration: "", job_type: "clean_all" });
    const clean = done({ configuration: "k.yaml", job_type: "clean" });
    const cleanAll2 = done({ configuration: "", job_type: "clean_all" });
    const running = job({ configuration: "g.yaml", job_type: "compile", status: "running" });
    const drop = finishedToPrune([oldCompile, newCompile, cleanAll1, clean, cleanAll2, running], { historyLimit: 10, auxHistoryLimit: 1 });
    expect(drop.map((j) => j.job_id).sort()).toEqual([oldCompile, cleanAll1, clean].map((j) => j.job_id).sort());
  });
});
