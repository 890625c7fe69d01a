/**
 * Devices heard over real mDNS: a builder process in one network namespace (mDNS on)
 * and an ESPHome-style `_esphomelib._tcp` announcement from another, joined by a veth
 * pair (test/helpers/netns.ts); nothing is sent in the root namespace. The device's
 * API does not answer (nothing listens there), so only the announcement can make it
 * online; after the goodbye the probes miss and it goes offline.
 */
import { type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { DeviceState } from "../../src/api/wire.ts";
import { STAND_IN } from "../helpers/config.ts";
import { createLanPair, NODE_BIN, netnsUnavailableReason, spawnInNetns } from "../helpers/netns.ts";
import { JsonLines } from "../helpers/json-lines.ts";
import { missingTool } from "../helpers/tools.ts";

const MAIN = path.resolve(import.meta.dirname, "../../src/main.ts");
const WATCH = path.resolve(import.meta.dirname, "../helpers/netns-api-watch.ts");
const ANNOUNCER = path.resolve(import.meta.dirname, "../helpers/netns-esphome-announcer.ts");
const skipReason = netnsUnavailableReason();


const stateIn = (f: Record<string, unknown>): DeviceState | undefined =>
  f.event === "device_state_changed" ? (f.data as { state: DeviceState }).state : undefined;

describe.skipIf(missingTool(skipReason === null, skipReason ?? ""))("devices over real mDNS, in network namespaces", () => {
  it("an announcement makes the device online with its TXT version; after its goodbye it goes offline", async () => {
    const lan = createLanPair();
    const children: ChildProcessWithoutNullStreams[] = [];
    try {
      const dir = await mkdtemp(path.join(os.tmpdir(), "netns-devices-"));
      await writeFile(path.join(dir, "kitchen.yaml"), "esphome:\n  name: kitchen\nesp32:\n  board: esp32dev\nwifi:\n  ssid: x\napi:\n");
      const builder = new JsonLines(
        spawnInNetns(lan.nsA, [NODE_BIN, MAIN, "--config-dir", dir, "--host", lan.addrA, "--port", "0", "--peer-link-host", lan.addrA, "--peer-link-port", "0", "--esphome", STAND_IN, "--label", "A", "--device-poll-interval", "2"]),
      );
      children.push(builder.child);
      const listening = await builder.find((l) => "peer_link_port" in l, "the builder to listen");
      const watch = new JsonLines(spawnInNetns(lan.nsA, [NODE_BIN, WATCH, lan.addrA, String(listening.port)]));
      children.push(watch.child);
      await watch.find((f) => f.event === "initial_state", "initial_state");

      const announcer = new JsonLines(spawnInNetns(lan.nsB, [NODE_BIN, ANNOUNCER, JSON.stringify({ interface: lan.addrB, name: "kitchen", txt: { version: "2026.9.1", mac: "aabbccddeeff", platform: "ESP32", board: "esp32dev", network: "wifi", project_name: "acme.kitchen", project_version: "2.0" } })]));
      children.push(announcer.child);
      await announcer.find((f) => f.event === "published", "the announcement");
      const online = await watch.find((f) => stateIn(f)?.status === "online", "the device online");
      expect(stateIn(online)).toMatchObject({ configuration: "kitchen.yaml", firmware: { esphome_version: "2026.9.1", compilation_time: null, source: "mdns" } });

      const onlineAt = watch.items.indexOf(online);
      announcer.child.stdin.write("stop\n");
      await announcer.find((f) => f.event === "stopped", "the goodbye");
      const offline = await watch.find((f) => watch.items.indexOf(f) > onlineAt && stateIn(f)?.status === "offline", "the device offline after the goodbye", 30_000);
      // Last seen: when it was announced, not later.
      expect(stateIn(offline)?.last_seen).toBe(stateIn(online)?.last_seen);
    } finally {
      for (const c of children) c.kill("SIGTERM");
      await new Promise((r) => setTimeout(r, 300));
      lan.destroy();
    }
  }, 90_000);
});
