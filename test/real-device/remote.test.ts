/**
 * A remote build with the real ESPHome on both builders: the offloader bundles with
 * the real `esphome bundle`, the build server compiles the host-platform device with
 * the real CLI, the artifacts carry the image StorageJSON names (the host `program`),
 * and the offloader flashes a running device over the air with it.
 *
 * The device first runs what a remote compile materialised into the offloader's own
 * build folder; then a remote install of a changed configuration replaces it, the real
 * `esphome upload` finding the program in that build folder as after a local compile.
 */
import { readFileSync, readdirSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { RealDevice } from "./device.ts";
import { writeHostDevice } from "./devices.ts";
import { PINNED_ESPHOME_VERSION, describeRealDevice } from "./esphome.ts";
import { createDeviceLink, type DeviceLink } from "./network.ts";
import { outputText, pairBuilders, runJob, startRealBuilder, type RealBuilder } from "./builder.ts";

const COMPILE_MS = 600_000;

/** The one folder a build server made for its peer's device: `<data>/.remote_builds/<id8>/hostdev`. */
function remoteFolder(serverDir: string): string {
  const root = path.join(serverDir, ".esphome", ".remote_builds");
  const peers = readdirSync(root).filter((d) => !d.startsWith("."));
  expect(peers).toHaveLength(1);
  return path.join(root, peers[0] as string, "hostdev");
}

describeRealDevice("a remote build with the real ESPHome on both builders", () => {
  let offloaderDir = "";
  let serverDir = "";
  let link: DeviceLink;
  let a: RealBuilder;
  let b: RealBuilder;
  let device: RealDevice | undefined;

  beforeAll(async () => {
    offloaderDir = await mkdtemp(path.join(os.tmpdir(), "esb-real-a-"));
    serverDir = await mkdtemp(path.join(os.tmpdir(), "esb-real-b-"));
    await writeHostDevice(offloaderDir, "hostdev.yaml", { label: "remote-1" });
    link = createDeviceLink();
    a = await startRealBuilder(offloaderDir, { label: "Offloader" });
    b = await startRealBuilder(serverDir, { label: "Build server" });
  }, 60_000);

  afterAll(async () => {
    await device?.stop();
    await a.stop();
    await b.stop();
    link.destroy();
    await rm(offloaderDir, { recursive: true, force: true });
    await rm(serverDir, { recursive: true, force: true });
  }, 60_000);

  it("e: bundles with the real CLI, compiles on the build server, carries the host program back, and flashes the device over the air", { timeout: 2 * COMPILE_MS }, async () => {
    const pin = await pairBuilders(a, b);

    // A remote compile: the build server's program lands in this machine's build folder.
    const compile = await runJob(a.api, "firmware/compile", { configuration: "hostdev.yaml" }, COMPILE_MS);
    expect(compile.result, outputText(compile).slice(-3000)).toEqual({ status: "completed", exit_code: 0, error: null });
    expect(compile.final).toMatchObject({ source: "remote", source_pin_sha256: pin, source_label: "Build server" });
    const text = outputText(compile);
    expect(text).toContain("building on Build server");
    expect(text).toMatch(/^\[\d+\/\d+\] LINK program$/m);
    expect(new Set(compile.streamed.flatMap((s) => (s.kind === "progress" && s.progress > 0 && s.progress < 100 ? [s.progress] : []))).size).toBeGreaterThanOrEqual(10);

    const folder = remoteFolder(serverDir);
    const manifest = JSON.parse(readFileSync(path.join(folder, "manifest.json"), "utf8")) as { esphome_version: string; config_filename: string };
    expect(manifest, "made by the real `esphome bundle`").toMatchObject({ esphome_version: PINNED_ESPHOME_VERSION, config_filename: "hostdev.yaml" });
    const serverStorage = JSON.parse(readFileSync(path.join(folder, ".esphome", "storage", "hostdev.yaml.json"), "utf8")) as { build_path: string; firmware_bin_path: string };
    expect(serverStorage.firmware_bin_path).toBe(path.join(serverStorage.build_path, ".pioenvs", "hostdev", "program"));
    const serverBuildTime = (): string => (JSON.parse(readFileSync(path.join(serverStorage.build_path, "build_info.json"), "utf8")) as { build_time_str: string }).build_time_str;

    const localStorage = JSON.parse(readFileSync(path.join(offloaderDir, ".esphome", "storage", "hostdev.yaml.json"), "utf8")) as { build_path: string; firmware_bin_path: string };
    expect(localStorage).toMatchObject({
      build_path: path.join(offloaderDir, ".esphome", "build", "hostdev"),
      firmware_bin_path: path.join(offloaderDir, ".esphome", "build", "hostdev", ".pioenvs", "hostdev", "program"),
    });
    expect(Buffer.compare(await readFile(localStorage.firmware_bin_path), await readFile(serverStorage.firmware_bin_path))).toBe(0);

    const started = await RealDevice.start({ program: localStorage.firmware_bin_path, link });
    device = started.device;
    expect(started.firmware).toMatchObject({ name: "hostdev", esphomeVersion: PINNED_ESPHOME_VERSION, compilationTime: serverBuildTime() });
    const pid = device.pid;

    // A remote install of a changed configuration, flashed over the air from here.
    await writeHostDevice(offloaderDir, "hostdev.yaml", { label: "remote-2" });
    const install = await runJob(a.api, "firmware/install", { configuration: "hostdev.yaml", port: device.address }, COMPILE_MS);
    expect(install.result, outputText(install).slice(-3000)).toEqual({ status: "completed", exit_code: 0, error: null });
    expect(install.final).toMatchObject({ source: "remote", source_label: "Build server" });
    const installText = outputText(install);
    expect(installText).toContain("building the configuration bundle for the remote build");
    // As the upstream offloader: the real CLI finds the build server's program in this machine's build tree (no --file).
    expect(installText).toContain(`Uploading ${path.join(offloaderDir, ".esphome", "build", "hostdev", ".pioenvs", "hostdev", "program")} (`);
    expect(installText).toContain("OTA successful");

    const after = await device.firmware(30_000, (info) => info.compilationTime !== started.firmware.compilationTime);
    expect(after.compilationTime).toBe(serverBuildTime());
    expect(device.pid, "re-executed in place").toBe(pid);

    const onServer = await b.api.call<{ remote_peer_label: string; status: string; job_type: string }[]>("firmware/get_jobs", {});
    // The build server keeps the newest finished job per device and type: the install's compile.
    expect(onServer.map((j) => [j.remote_peer_label, j.job_type, j.status])).toEqual([["Offloader", "compile", "completed"]]);
  });
});
