/**
 * The add-on's Supervisor discovery (`esphome` service) against Home Assistant's own code: the
 * message the builder really sends in add-on mode (captured by the stand-in Supervisor) is
 * handed to a real Home Assistant's ESPHome integration the way the hassio integration does
 * (a config flow with source `hassio`; test/ha/esphome_discovery_probe does what
 * components/hassio/discovery.py does, without a Supervisor). The integration's hassio step
 * must accept it: the flow aborts with `service_received` and the dashboard is stored in
 * `.storage/esphome.dashboard`, the storage the update-entity test starts from.
 */
import { cp, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { PassThrough } from "node:stream";
import { expect, it, onTestFinished } from "vitest";
import { Builder } from "../../src/builder.ts";
import { configDir, testConfig } from "../helpers/builder.ts";
import { tempDir, waitFor } from "../helpers/tmp.ts";
import { describeNeeding } from "../real-device/esphome.ts";
import { netnsUnavailableReason } from "../helpers/netns.ts";
import { FakeSupervisor } from "./fake-supervisor.ts";
import { freePort, HaCore } from "./ha-core.ts";
import { hassAvailable } from "./ha-root.ts";

const PROBE = path.join(import.meta.dirname, "esphome_discovery_probe");

describeNeeding(() => netnsUnavailableReason() ?? (hassAvailable ? null : "the Home Assistant root is missing: run `npm run test:setup` (test/setup-ha.sh)"), "the add-on's Supervisor discovery and Home Assistant's ESPHome integration", () => {
  it("the payload the add-on sends is what the integration's hassio step accepts: it stores the dashboard", { timeout: 120_000 }, async () => {
    const supervisor = new FakeSupervisor("sv-token", await freePort());
    await supervisor.start();
    onTestFinished(async () => { await supervisor.stop(); });
    const builder = new Builder(
      testConfig(await configDir({ kitchen: "" }), { addon: true, supervisorToken: "sv-token", supervisorUrl: supervisor.url, portFromSupervisor: true, ingressAddresses: ["127.0.0.2"], stdinCommands: true }),
      { stdin: new PassThrough(), haTimings: { retryMinMs: 100, retryMaxMs: 500, debounceMs: 50, publishRetryMinMs: 100 } },
    );
    await builder.start();
    onTestFinished(async () => { await builder.stop(); });
    await waitFor(() => supervisor.requests.some((r) => r.path === "/discovery"), 10_000, "the discovery call");
    const sent = supervisor.requests.find((r) => r.path === "/discovery")!.body as { service: string; config: Record<string, unknown> };
    expect(sent.service).toBe("esphome");

    const haDir = await tempDir("esb-ha-discovery-");
    await cp(PROBE, path.join(haDir, "custom_components", "esphome_discovery_probe"), { recursive: true });
    // What the Supervisor hands Core: the add-on's message with its slug, name and a uuid.
    await writeFile(path.join(haDir, "discovery.json"), JSON.stringify({ ...sent, slug: "local_esphome_builder", name: "ESPHome Device Builder", uuid: "0123456789abcdef0123456789abcdef" }));
    const core = await HaCore.create(haDir, "esphome_discovery_probe:\n");
    onTestFinished(async () => { await core.dispose(); });
    await core.start();
    const token = await core.onboard();
    await waitFor(async () => (await core.getState(token, "esphome_discovery_probe.result")) !== null, 60_000, "the discovery flow's result");
    expect(await core.getState(token, "esphome_discovery_probe.result")).toMatchObject({ state: "abort", attributes: { reason: "service_received" } });
    const stored = JSON.parse(await readFile(path.join(haDir, ".storage", "esphome.dashboard"), "utf8")) as unknown;
    expect(stored).toMatchObject({ version: 1, key: "esphome.dashboard", data: { info: { addon_slug: "local_esphome_builder", host: "127.0.0.1", port: supervisor.ingressPort } } });
  });
});
