/**
 * Version policies across two real builder processes (the stand-in CLI, each
 * builder with its own ESPHome version): A sends builds, B is the build
 * server. A's scheduler skips a B whose policy would refuse A's version and
 * says so in the job; a B that refuses anyway (its policy changed under an
 * open session) or cannot install the version answers with
 * `failure_reason: "provision"`, and A builds the job itself.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { FirmwareJob, PairingSummary } from "../../src/api/wire.ts";
import { ApiClient } from "../helpers/api-client.ts";
import { STAND_IN, configDir, spawnBuilder } from "../helpers/builder.ts";
import { pairBuilders } from "../helpers/pairing.ts";
import { waitFor } from "../helpers/tmp.ts";

async function builder(name: string, version: string, env: Record<string, string> = {}, args: string[] = []) {
  const dir = await configDir({ kitchen: "" });
  const record = path.join(dir, "record.jsonl");
  const proc = await spawnBuilder(
    ["--config-dir", dir, "--port", "0", "--peer-link-port", "0", "--peer-link-host", "127.0.0.1", "--esphome", STAND_IN, "--no-mdns", "--label", name, "--log-level", "warning", ...args],
    { ESPHOME_STANDIN_COMPILE_SECONDS: "0.3", ESPHOME_STANDIN_FAIL: "", ESPHOME_STANDIN_HOST: name, ESPHOME_STANDIN_RECORD: record, ESPHOME_STANDIN_VERSION: version, ...env },
  );
  const line = proc.stdout.join("").split("\n").find((l) => l.includes("listening")) ?? "{}";
  const peerPort = (JSON.parse(line) as { peer_link_port: number }).peer_link_port;
  const api = await ApiClient.connect(proc.port);
  // The builder learns its ESPHome version in the background at start.
  await waitFor(async () => (await api.call<{ esphome_version: string | null }>("remote_build/get_identity")).esphome_version === version, 15_000, `${name} to see ESPHome ${version}`);
  return { proc, api, dir, record, peerPort, name };
}

/** The stand-in calls a builder made (its version probes left out). */
async function commands(record: string): Promise<string[]> {
  const text = await readFile(record, "utf8").catch(() => "");
  return text.split("\n").filter((l) => l !== "").map((l) => (JSON.parse(l) as { command: string }).command).filter((c) => c !== "version");
}

async function compile(api: ApiClient): Promise<FirmwareJob> {
  const job = await api.call<FirmwareJob>("firmware/compile", { configuration: "kitchen.yaml" });
  const follow = api.stream("firmware/follow_job", { job_id: job.job_id });
  await follow.until((f) => f.event === "result", 60_000);
  return api.call<FirmwareJob>("firmware/get_job", { job_id: job.job_id });
}

describe("version policies between two builders", () => {
  it("a release-policy build server of another release line is skipped, and the job says why", async () => {
    const a = await builder("Laptop", "2026.10.0");
    const b = await builder("Build box", "2026.9.1");
    await b.api.call("remote_build/set_settings", { version_policy: "release" });
    await pairBuilders(a, b);
    const pairing = (await a.api.call<{ pairings: PairingSummary[] }>("remote_build/get_offloader_settings")).pairings[0];
    expect(pairing).toMatchObject({ esphome_version: "2026.9.1", version_policy: "release", auto_provision_supported: false });

    const job = await compile(a.api);
    expect(job).toMatchObject({ status: "completed", source: "local" });
    expect(job.output.join("")).toContain(
      "*** building on this machine: Build box: this build server runs ESPHome 2026.9.1 and its version policy release builds only for 2026.9.x; ESPHome 2026.10.0 was asked for.",
    );
    expect(await commands(b.record)).toEqual([]);
    expect(await commands(a.record)).toEqual(["compile"]);
  });

  it("the same release line goes to the build server, which builds with its own ESPHome", async () => {
    const a = await builder("Laptop", "2026.10.2");
    const b = await builder("Build box", "2026.10.0");
    await b.api.call("remote_build/set_settings", { version_policy: "release" });
    await pairBuilders(a, b);
    const job = await compile(a.api);
    expect(job).toMatchObject({ status: "completed", source: "remote", source_label: "Build box" });
    expect(job.output.join("")).toContain("building with ESPHome 2026.10.0 for 2026.10.2 (the same release line; version policy release)");
    expect(await commands(b.record)).toEqual(["compile"]);
  });

  it("a build server that refuses the version (its policy changed under an open session) makes the job build here", async () => {
    const a = await builder("Laptop", "2026.10.0");
    const b = await builder("Build box", "2026.9.1");
    await pairBuilders(a, b);
    // A still has B's old policy (any) until it reconnects.
    const settings = await b.api.call<{ version_policy: string }>("remote_build/set_settings", { version_policy: "release" });
    expect(settings.version_policy).toBe("release");

    const job = await compile(a.api);
    expect(job).toMatchObject({ status: "completed", source: "local", source_pin_sha256: "", force_local: true, failure_reason: "" });
    const text = job.output.join("");
    expect(text).toContain("*** building on Build box ***");
    expect(text).toContain("*** build server Build box did not build this: this build server runs ESPHome 2026.9.1 and its version policy release builds only for 2026.9.x");
    expect(text).toContain("building on this machine instead ***");
    expect(await commands(b.record)).toEqual([]);
    expect(await commands(a.record)).toEqual(["bundle", "compile"]);
    // Nothing was queued on B for a job its policy refused.
    expect(await b.api.call<FirmwareJob[]>("firmware/get_jobs", {})).toEqual([]);
  });

  it("exact: a version the build server cannot install fails over to this machine, and B's job says why", async () => {
    const a = await builder("Laptop", "2026.10.0");
    // No package index reachable: pip fails at once (a real venv and a real pip run on B).
    const b = await builder("Build box", "2026.9.1", { PIP_INDEX_URL: "http://127.0.0.1:9/simple", PIP_RETRIES: "0", PIP_TIMEOUT: "2", PIP_FIND_LINKS: "", PIP_NO_CACHE_DIR: "1" });
    await b.api.call("remote_build/set_settings", { version_policy: "exact" });
    await pairBuilders(a, b);
    expect((await a.api.call<{ pairings: PairingSummary[] }>("remote_build/get_offloader_settings")).pairings[0]).toMatchObject({ version_policy: "exact", auto_provision_supported: true });

    const job = await compile(a.api);
    expect(job).toMatchObject({ status: "completed", source: "local", force_local: true });
    const text = job.output.join("");
    expect(text).toContain("*** provisioning ESPHome 2026.10.0 for this build ***");
    expect(text).toMatch(/build server Build box did not build this: could not provide ESPHome 2026\.10\.0: .+; building on this machine instead/);

    const onB = await b.api.call<FirmwareJob[]>("firmware/get_jobs", {});
    expect(onB).toHaveLength(1);
    expect(onB[0]).toMatchObject({ status: "failed", target_esphome_version: "2026.10.0", failure_reason: "provision", remote_peer_label: "Laptop" });
    expect(onB[0]?.error).toMatch(/^could not provide ESPHome 2026\.10\.0: /);
    expect(await commands(b.record)).toEqual([]);
  }, 120_000);

  it("exact with --build-server-versions 0: says it cannot install versions, and is skipped for another version", async () => {
    const a = await builder("Laptop", "2026.10.0");
    const b = await builder("Build box", "2026.9.1", {}, ["--build-server-versions", "0"]);
    const settings = await b.api.call<{ auto_provision_supported: boolean }>("remote_build/set_settings", { version_policy: "exact" });
    expect(settings.auto_provision_supported).toBe(false);
    await pairBuilders(a, b);
    const job = await compile(a.api);
    expect(job).toMatchObject({ status: "completed", source: "local" });
    expect(job.output.join("")).toContain("Build box: this build server cannot install other ESPHome versions");
  });

  it("the sending builder's exact_required fails a job no build server can build with its version", async () => {
    const a = await builder("Laptop", "2026.10.0");
    const b = await builder("Build box", "2026.9.1");
    await pairBuilders(a, b);
    const offloader = await a.api.call<{ version_match_policy: string }>("remote_build/set_offloader_settings", { version_match_policy: "exact_required" });
    expect(offloader.version_match_policy).toBe("exact_required");
    const job = await compile(a.api);
    expect(job.status).toBe("failed");
    expect(job.error).toContain("no paired build server can build with this builder's ESPHome and version_match_policy is exact_required");
    expect(await commands(a.record)).toEqual([]);
    expect(await commands(b.record)).toEqual([]);
  });

  it("refuses a policy that is not one of the four, and keeps the one it had", async () => {
    const b = await builder("Build box", "2026.9.1");
    await expect(b.api.call("remote_build/set_settings", { version_policy: "sometimes" })).rejects.toThrow(/invalid_args|version_policy/);
    await expect(b.api.call("remote_build/set_offloader_settings", { version_match_policy: "newest" })).rejects.toThrow(/invalid_args|version_match_policy/);
    expect((await b.api.call<{ version_policy: string }>("remote_build/get_settings")).version_policy).toBe("any");
  });
});
