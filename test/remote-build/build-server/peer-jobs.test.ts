/**
 * A build server's jobs for a peer, as upstream runs them (WIRE-FACTS §4, §5):
 * the configuration name only names the peer's subtree (the YAML compiled is
 * the one the bundle's manifest names), and a new job for the same device
 * from the same peer supersedes the older one still queued or running.
 */
import { execFileSync } from "node:child_process";
import { rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { esphomeEnv } from "../../../src/esphome/cli.ts";
import { EventBus } from "../../../src/events.ts";
import { FirmwareQueue } from "../../../src/firmware/queue.ts";
import { resolvePaths } from "../../../src/paths.ts";
import { readArtifacts } from "../../../src/remote-build/archives/artifacts.ts";
import { IdentityStore } from "../../../src/remote-build/transport/identity.ts";
import { Offloader } from "../../../src/remote-build/offloader/offloader.ts";
import { Receiver } from "../../../src/remote-build/build-server/receiver.ts";
import { DEVICE_YAML, STAND_IN } from "../../helpers/builder.ts";
import { standInBundle } from "../../helpers/pairing.ts";
import { watchJob } from "../../helpers/remote-job.ts";
import { ScriptedRunner } from "../../helpers/scripted-runner.ts";
import { tempDir, waitFor } from "../../helpers/tmp.ts";

async function setup() {
  const serverPaths = resolvePaths({ configDir: await tempDir() });
  const serverBus = new EventBus();
  const runner = new ScriptedRunner();
  const queue = new FirmwareQueue({ bus: serverBus, paths: serverPaths, runner });
  await queue.start();
  const receiver = new Receiver({
    bus: serverBus, queue, paths: serverPaths,
    identity: new IdentityStore({ keyFile: serverPaths.peerLinkKeyFile, idFile: serverPaths.identityFile }),
    host: "127.0.0.1", port: 0, label: () => "Desktop", esphomeVersion: () => "2026.11.0", defaultEnabled: true,
  });
  await receiver.start();
  const dir = await tempDir();
  for (const name of ["kitchen", "garage"]) await writeFile(path.join(dir, `${name}.yaml`), DEVICE_YAML(name));
  await writeFile(path.join(dir, "secrets.yaml"), "wifi_ssid: a\nwifi_password: b\n");
  const paths = resolvePaths({ configDir: dir });
  const bus = new EventBus();
  const identity = new IdentityStore({ keyFile: paths.peerLinkKeyFile, idFile: paths.identityFile });
  const offloader = new Offloader({ bus, paths, identity, label: () => "Pi" });
  await offloader.start();
  receiver.setPairingWindow("t", true);
  const preview = await offloader.previewPair("127.0.0.1", receiver.port!);
  await offloader.requestPair("127.0.0.1", receiver.port!, preview.pin_sha256);
  receiver.approve((await identity.load()).dashboard_id);
  await waitFor(() => offloader.session(preview.pin_sha256) !== undefined, 5000, "a session");
  const session = offloader.session(preview.pin_sha256)!;
  return {
    dir, runner, queue, session, serverPaths,
    stop: async () => { await offloader.stop(); await receiver.stop(); await queue.stop(); },
  };
}

describe("a peer's jobs on our build server", () => {
  it("accepts any safe configuration name and compiles the YAML the manifest names, in that name's subtree", async () => {
    const t = await setup();
    const bundle = await standInBundle(t.dir, "kitchen.yaml");
    const job = watchJob(t.session, "jobnosuch001");
    expect(await t.session.submitJob("jobnosuch001", "compile", "nosuch.yaml", bundle, "nosuch")).toEqual({ accepted: true });
    const run = await t.runner.next();
    expect(run.job.configuration).toMatch(/^[0-9a-f]{64}\/nosuch\/kitchen\.yaml$/);
    run.succeed();
    await waitFor(() => job.statuses().includes("completed"), 5000, "completed");
    expect(job.statuses()).toEqual(["queued", "running", "completed"]);
    await t.stop();
  });

  it("supersedes the same peer's older job for the same device, and only that one", async () => {
    const t = await setup();
    const kitchen = await standInBundle(t.dir, "kitchen.yaml");
    const garage = await standInBundle(t.dir, "garage.yaml");
    const kitchen1 = watchJob(t.session, "jobkitchen01");
    const garage1 = watchJob(t.session, "jobgarage001");
    const kitchen2 = watchJob(t.session, "jobkitchen02");
    expect(await t.session.submitJob("jobkitchen01", "compile", "kitchen.yaml", kitchen, "kitchen")).toEqual({ accepted: true });
    const first = await t.runner.next();
    expect(await t.session.submitJob("jobgarage001", "compile", "garage.yaml", garage, "garage")).toEqual({ accepted: true });
    await waitFor(() => garage1.statuses().includes("queued"), 5000, "garage queued");
    expect(await t.session.submitJob("jobkitchen02", "compile", "kitchen.yaml", kitchen, "kitchen")).toEqual({ accepted: true });
    await waitFor(() => kitchen1.statuses().includes("cancelled"), 5000, "the older kitchen job cancelled");
    expect(first.job.remote_job_id).toBe("jobkitchen01");
    expect(kitchen1.states.find((s) => s.status === "cancelled")?.error).toMatch(/superseded/);
    // The other device's job and the newer one go on.
    const next = await t.runner.next();
    expect(["jobgarage001", "jobkitchen02"]).toContain(next.job.remote_job_id);
    expect(garage1.statuses()).not.toContain("cancelled");
    expect(kitchen2.statuses()).not.toContain("cancelled");
    next.succeed();
    const last = await t.runner.next();
    last.succeed();
    await waitFor(() => kitchen2.statuses().includes("completed") && garage1.statuses().includes("completed"), 5000, "both completed");
    await t.stop();
  });

  it("packs a peer's artifacts when its compile completes: the download sends that pack", async () => {
    const t = await setup();
    const bundle = await standInBundle(t.dir, "kitchen.yaml");
    const packed1 = watchJob(t.session, "jobpacked001");
    const packed2 = watchJob(t.session, "jobpacked002");
    expect(await t.session.submitJob("jobpacked001", "compile", "kitchen.yaml", bundle, "kitchen")).toEqual({ accepted: true });
    const run = await t.runner.next();
    const env = { ...process.env, ...esphomeEnv(t.serverPaths.jobDataDir(run.job)), ESPHOME_STANDIN_COMPILE_SECONDS: "0", ESPHOME_STANDIN_FAIL: "" };
    execFileSync(STAND_IN, ["--dashboard", "compile", t.serverPaths.jobYaml(run.job)], { env, stdio: "ignore" });
    run.succeed();
    await waitFor(() => packed1.statuses().includes("completed"), 5000, "completed");
    const first = await t.session.downloadArtifacts("jobpacked001");
    // The build goes away: a pack made on request would now fail; the one made at completion is still sent.
    await rm(path.join(t.serverPaths.jobDataDir(run.job), "build"), { recursive: true, force: true });
    const again = await t.session.downloadArtifacts("jobpacked001");
    expect(again).toEqual(first);
    expect((await readArtifacts(again)).firmwareInBuild).toBe(".pioenvs/kitchen/firmware.bin");
    // A new job for the device drops that pack.
    expect(await t.session.submitJob("jobpacked002", "compile", "kitchen.yaml", bundle, "kitchen")).toEqual({ accepted: true });
    const next = await t.runner.next();
    next.fail("boom");
    await waitFor(() => packed2.statuses().includes("failed"), 5000, "failed");
    await expect(t.session.downloadArtifacts("jobpacked001")).rejects.toThrow(/build_dir_missing|unknown_job/);
    await t.stop();
  });
});
