/**
 * Devices heard over mDNS (`_esphomelib._tcp`), the device-updates entity for Home
 * Assistant, and `install_bulk` with a filter from an automation. mDNS goes through an
 * in-memory stand-in of bonjour-service's browser (what test/remote-build/discovery.test.ts
 * does for the builder's own discovery): services are what bonjour-service hands out
 * (`{name, txt, ...}`); multicast itself is not sent from a test outside a namespace.
 */
import { EventEmitter } from "node:events";
import { PassThrough } from "node:stream";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import type { DeviceState } from "../../src/api/wire.ts";
import { Builder } from "../../src/builder.ts";
import { parseAnnouncement } from "../../src/devices/mdns.ts";
import { deviceUpdatesEntity, ENTITY_IDS } from "../../src/ha/publisher.ts";
import type { BonjourBrowserLike, BonjourFactory, BonjourLike } from "../../src/mdns/bonjour.ts";
import { testConfig } from "../helpers/config.ts";
import { tempDir } from "../helpers/tmp.ts";

class Browser extends EventEmitter implements BonjourBrowserLike {
  stopped = false;
  readonly type: string;
  constructor(type: string) {
    super();
    this.type = type;
  }
  stop(): void {
    this.stopped = true;
  }
}

class Stack implements BonjourLike {
  readonly browsers: Browser[] = [];
  destroyed = false;
  publish(): never {
    throw new Error("devices never publish");
  }
  find(config: { type: string; protocol: "tcp" }, onup: (service: unknown) => void): Browser {
    const b = new Browser(config.type);
    b.on("up", onup);
    this.browsers.push(b);
    return b;
  }
  destroy(): void {
    this.destroyed = true;
  }
}

async function until<T>(get: () => T | undefined, ms = 5_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("devices over mDNS", () => {
  it("reads name, version and project from a service; refuses nameless or overlong ones", () => {
    expect(parseAnnouncement({ name: "Kitchen", txt: { version: "2026.10.0", project_name: "acme.lamp", project_version: "1.2", mac: "aa" } })).toEqual({
      name: "kitchen",
      version: "2026.10.0",
      projectName: "acme.lamp",
      projectVersion: "1.2",
    });
    expect(parseAnnouncement({ name: "x", txt: { version: Buffer.from("2026.9.0\u0007") } })?.version).toBe("2026.9.0");
    expect(parseAnnouncement({ name: "" })).toBeNull();
    expect(parseAnnouncement({ name: "a".repeat(64) })).toBeNull();
    expect(parseAnnouncement(null)).toBeNull();
  });

  it("an announcement puts the device online with its version at once; a goodbye makes the builder look again", async () => {
    const dir = await tempDir("announce-");
    await writeFile(path.join(dir, "kitchen.yaml"), "esphome:\n  name: kitchen\nesp32:\n  board: esp32dev\nwifi:\n  ssid: x\n  use_address: 127.0.0.1\napi:\n  port: 1\n");
    const stack = new Stack();
    const factory: BonjourFactory = () => stack;
    // Probes go nowhere (port 1 refuses) and are slow: only mDNS can say it is online.
    const builder = new Builder(testConfig(dir, { mdns: true }), { devices: { bonjourFactory: factory, timings: { intervalMs: 60_000, startSpacingMs: 60_000 } } });
    // Only the scan and device state run (no listener, no discovery of builders).
    await builder.devices.start();
    await builder.deviceStates.start();
    onTestFinished(async () => {
      await builder.deviceStates.stop();
      await builder.devices.stop();
    });
    const browser = await until(() => stack.browsers.find((b) => b.type === "esphomelib"));
    browser.emit("up", { name: "kitchen", txt: { version: "2026.9.0" } });
    const state = await until(() => builder.deviceStates.tracker.list().find((s): s is DeviceState => s.status === "online"));
    expect(state).toMatchObject({ configuration: "kitchen.yaml", firmware: { esphome_version: "2026.9.0", compilation_time: null, source: "mdns" } });
    // A device the builder has no YAML for changes nothing.
    browser.emit("up", { name: "stranger", txt: { version: "2026.1.0" } });
    expect(builder.deviceStates.tracker.list()).toHaveLength(1);
    // The goodbye hurries a probe, which (port 1) misses.
    browser.emit("down", { name: "kitchen" });
    await until(() => builder.deviceStates.tracker.get("kitchen.yaml")?.probe_error ?? undefined);
  });

  it("no browser under --no-mdns", async () => {
    const dir = await tempDir("announce-");
    const stack = new Stack();
    const builder = new Builder(testConfig(dir, { mdns: false }), { devices: { bonjourFactory: () => stack } });
    await builder.deviceStates.start();
    onTestFinished(() => builder.deviceStates.stop());
    expect(stack.browsers).toEqual([]);
  });
});

describe("Home Assistant", () => {
  const state = (configuration: string, over: Partial<DeviceState>): DeviceState => ({
    configuration,
    address: "x.local",
    address_source: "yaml",
    status: "online",
    last_seen: null,
    status_since: null,
    firmware: { esphome_version: "2026.9.0", compilation_time: null, project_name: null, project_version: null, source: "api" },
    update_reasons: [],
    update_detail: null,
    probe_error: null,
    deep_sleep: false,
    ...over,
  });

  it("the device-updates entity counts devices with an update and lists them with the reason", () => {
    const entity = deviceUpdatesEntity([
      state("a.yaml", { update_reasons: ["esphome_version"], update_detail: "runs ESPHome 2026.9.0, this builder has 2026.10.0" }),
      state("b.yaml", {}),
      state("c.yaml", { status: "offline", deep_sleep: true, update_reasons: ["configuration_changed"], update_detail: "changed" }),
    ]);
    expect(entity.entityId).toBe(ENTITY_IDS.deviceUpdates);
    expect(entity.state).toBe("2");
    expect(entity.attributes).toMatchObject({
      online: 2,
      offline: 1,
      devices: [
        { configuration: "a.yaml", status: "online", deployed_version: "2026.9.0", reasons: ["esphome_version"], deep_sleep: false },
        { configuration: "c.yaml", status: "offline", reasons: ["configuration_changed"], deep_sleep: true },
      ],
    });
    expect(deviceUpdatesEntity([]).state).toBe("0");
  });

  it("an automation's install_bulk takes a filter (stdin commands, in order); a bad filter runs nothing", async () => {
    const dir = await tempDir("announce-");
    // A host device whose API port nothing listens on: offline after its misses.
    await writeFile(path.join(dir, "a.yaml"), "esphome:\n  name: a\nhost:\napi:\n  port: 1\n");
    const stdin = new PassThrough();
    const builder = new Builder(testConfig(dir, { stdinCommands: true }), { stdin, devices: { timings: { intervalMs: 300, retryMs: 50, maxBackoffMs: 300, timeoutMs: 300 } } });
    await builder.start();
    onTestFinished(() => builder.stop());
    await until(() => (builder.deviceStates.tracker.get("a.yaml")?.status === "offline" ? true : undefined));
    stdin.write(JSON.stringify({ command: "install_bulk", configurations: "all", filter: "newest" }) + "\n");
    stdin.write(JSON.stringify({ command: "install_bulk", configurations: "all", filter: "online" }) + "\n");
    stdin.write(JSON.stringify({ command: "install_bulk", configurations: ["a.yaml"], filter: "all" }) + "\n");
    const job = await until(() => builder.queue.list()[0]);
    expect(job.configuration).toBe("a.yaml");
    expect(builder.queue.list()).toHaveLength(1);
  });
});
