/**
 * The built add-on image, run the way the Supervisor runs it, against a
 * stand-in Supervisor (test/ha/fake-supervisor.ts) on the Supervisor's address.
 * Only `bash test/image/check.sh` runs this file: it builds the image and runs
 * vitest inside a network namespace of its own, which is the container's "host
 * network" here (so the builder's mDNS stays on, as in the add-on, and never
 * reaches a real interface).
 *
 * Checks: the image carries the Supervisor's labels, the pinned ESPHome and
 * Python packages, Node 24 and no build tools; the container starts and prints
 * its listening line on the ingress port the Supervisor names; the panel and
 * /ws answer there to the ingress address only; discovery is posted; entities
 * reach the Core proxy; a stdin command runs the real ESPHome; Home Assistant
 * Core on the loopback gets the dashboard API; the label is the host's name;
 * it stops on SIGTERM within the add-on's timeout.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { parse as parseYaml } from "yaml";
import { ENTITY_IDS } from "../../src/ha/publisher.ts";
import { ROOT } from "../helpers/builder.ts";
import { waitFor } from "../helpers/tmp.ts";
import { FakeSupervisor } from "../ha/fake-supervisor.ts";
import { inImage, startAddon, type AddonManifest, type RunningAddon } from "./supervisor-run.ts";

const env = {
  image: process.env.IMAGE_CHECK_IMAGE ?? "",
  podman: (process.env.IMAGE_CHECK_PODMAN ?? "").split(" ").filter((a) => a !== ""),
  ulimits: (process.env.IMAGE_CHECK_ULIMITS ?? "").split(" ").filter((a) => a !== ""),
  arch: process.env.IMAGE_CHECK_ARCH ?? "",
  /** Where the add-on's log is written for a look after a failure. */
  logFile: path.join(process.env.IMAGE_CHECK_DIR ?? os.tmpdir(), "addon.log"),
};
/** The Supervisor's network: ingress connects from .2 (the Supervisor) to .1 (a host-network add-on). */
const SUPERVISOR = "172.30.32.2";
const ADDON = "172.30.32.1";
const TOKEN = "image-check-token";
const HA_HOSTNAME = "ha-image-check";
const KITCHEN_YAML = [
  "esphome:", "  name: kitchen",
  "esp32:", "  board: esp32dev", "  framework:", "    type: esp-idf",
  "wifi:", "  ssid: !secret wifi_ssid", "  password: !secret wifi_password",
  "api:", "ota:", "  - platform: esphome", "logger:", "",
].join("\n");

const manifest = parseYaml(readFileSync(path.join(ROOT, "config.yaml"), "utf8")) as AddonManifest & { version: string; name: string; options: Record<string, unknown> };
const esphomePin = /^esphome==(\S+)$/m.exec(readFileSync(path.join(ROOT, "addon", "requirements.txt"), "utf8"))?.[1] ?? "";
const constraints = readFileSync(path.join(ROOT, "addon", "constraints.txt"), "utf8").split("\n").filter((l) => /^[A-Za-z0-9]/.test(l));

/** A free TCP port in this namespace (the Supervisor picks the ingress port the same way). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, ADDON, resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function get(port: number, urlPath: string, from: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const host = from === "127.0.0.1" ? "127.0.0.1" : ADDON;
    http.get({ host, port, path: urlPath, localAddress: from }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => { resolve({ status: res.statusCode ?? 0, body }); });
    }).on("error", reject);
  });
}

/** Opens /ws from `from`; resolves with the socket, or the HTTP status it was refused with. */
function openWs(port: number, from: string): Promise<WebSocket | number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${ADDON}:${port}/ws`, { localAddress: from });
    ws.once("open", () => { resolve(ws); });
    ws.once("unexpected-response", (_req, res) => { resolve(res.statusCode ?? 0); });
    ws.once("error", reject);
  });
}

async function command(ws: WebSocket, name: string, args: Record<string, unknown> = {}): Promise<unknown> {
  const id = `${name}-${Math.random().toString(36).slice(2)}`;
  return new Promise((resolve, reject) => {
    const onMessage = (data: Buffer): void => {
      const frame = JSON.parse(data.toString("utf8")) as { message_id?: string; result?: unknown; error_code?: string; details?: string };
      if (frame.message_id !== id) return;
      ws.off("message", onMessage);
      if (frame.error_code !== undefined) reject(new Error(`${name}: ${frame.error_code} ${frame.details ?? ""}`));
      else resolve(frame.result);
    };
    ws.on("message", onMessage);
    ws.send(JSON.stringify({ command: name, message_id: id, args }));
  });
}

describe("the add-on image", () => {
  beforeAll(() => {
    if (env.image === "" || env.podman.length === 0) throw new Error("run the image check with `bash test/image/check.sh`: it builds the image and runs this file");
    // The container gets this namespace as its host network: it must be the one check.sh made.
    const interfaces = Object.keys(os.networkInterfaces()).sort();
    if (interfaces.join(",") !== "hassio,hassio-peer,lo") throw new Error(`not in the image check's network namespace (interfaces: ${interfaces.join(", ")}); run bash test/image/check.sh`);
  });

  it("carries the Supervisor's labels, the pinned ESPHome and Python packages, ccache, Node 24, and no build tools", async () => {
    const [bin = "podman", ...global] = env.podman;
    const labels = (JSON.parse(execFileSync(bin, [...global, "image", "inspect", "--format", "{{json .Labels}}", env.image], { encoding: "utf8" })) ?? {}) as Record<string, string>;
    expect(labels).toMatchObject({ "io.hass.version": manifest.version, "io.hass.arch": env.arch, "io.hass.type": "app", "io.hass.name": manifest.name });

    const report = await inImage(env.podman, env.ulimits, env.image, [
      "echo node=$(node --version)",
      "echo esphome=$(esphome version)",
      "echo ccache=$(ccache --version | head -n 1) dir=$CCACHE_DIR max=$CCACHE_MAXSIZE",
      "for tool in npm npx nodejs gcc cc make; do command -v $tool && echo found=$tool; done",
      "dpkg-query -W -f='${Package}\\n' nodejs npm 2>/dev/null | sed 's/^/package=/'",
      "echo pip-check=$(/opt/esphome/bin/pip check >/dev/null && echo ok)",
      "/opt/esphome/bin/pip freeze --exclude esphome | sed 's/^/pip=/'",
    ].join("; "));
    const lines = report.split("\n");
    expect(lines).toContain(`esphome=Version: ${esphomePin}`);
    // ccache on PATH (ESPHome picks it up there), its objects under /data.
    expect(lines.find((l) => l.startsWith("ccache="))).toMatch(/^ccache=ccache version \d+\.\d+.* dir=\/data\/ccache max=2G$/);
    expect(lines.find((l) => l.startsWith("node="))).toMatch(/^node=v24\./);
    expect(lines.filter((l) => l.startsWith("found=") || l.startsWith("package="))).toEqual([]);
    expect(lines).toContain("pip-check=ok");
    // Exactly what addon/constraints.txt pins: nothing unpinned slipped in, nothing pinned is missing.
    const frozen = lines.filter((l) => l.startsWith("pip=")).map((l) => l.slice(4).toLowerCase()).sort();
    expect(frozen).toEqual(constraints.map((l) => l.toLowerCase()).sort());
  });

  describe("run as the Supervisor runs it", () => {
    let supervisor: FakeSupervisor;
    let addon: RunningAddon;
    let root: string;
    let dataDir: string;
    let port = 0;

    beforeAll(async () => {
      supervisor = new FakeSupervisor(TOKEN, await freePort());
      supervisor.hostname = HA_HOSTNAME;
      await supervisor.start(80, SUPERVISOR);
      root = await mkdtemp(path.join(os.tmpdir(), "esphome-image-check-"));
      dataDir = path.join(root, "data");
      const haConfig = path.join(root, "homeassistant");
      await mkdir(path.join(dataDir, "build", "kitchen"), { recursive: true });
      await writeFile(path.join(dataDir, "build", "kitchen", "left-by-an-old-build"), "");
      // The options the Supervisor writes: config.yaml's defaults (label "" among them).
      await writeFile(path.join(dataDir, "options.json"), JSON.stringify(manifest.options));
      // Home Assistant's configuration with a device in the official ESPHome add-on's folder.
      await mkdir(path.join(haConfig, "esphome"), { recursive: true });
      await writeFile(path.join(haConfig, "esphome", "secrets.yaml"), "wifi_ssid: image-check\nwifi_password: image-check-password\n");
      await writeFile(path.join(haConfig, "esphome", "kitchen.yaml"), KITCHEN_YAML);
      addon = startAddon({ podman: env.podman, ulimits: env.ulimits, image: env.image, manifest, dataDir, homeAssistantConfigDir: haConfig, token: TOKEN, supervisorAddress: SUPERVISOR });
    }, 120_000);

    afterAll(async () => {
      await writeFile(env.logFile, `${addon.stdout.join("")}\n${addon.stderr.join("")}`);
      await addon.remove();
      await supervisor.stop();
      await rm(root, { recursive: true, force: true });
    });

    it("starts and prints its listening line on the ingress port the Supervisor names", async () => {
      await waitFor(() => addon.stdout.join("").includes('"listening"') || addon.child.exitCode !== null, 90_000, "the listening line");
      const line = addon.stdout.join("").split("\n").find((l) => l.includes('"listening"'));
      expect(line, `the add-on exited: ${addon.stderr.join("")}`).toBeDefined();
      const listening = JSON.parse(line!) as { event: string; port: number };
      expect(listening).toMatchObject({ event: "listening", port: supervisor.ingressPort });
      port = listening.port;
      expect(supervisor.requests.some((r) => r.path === "/addons/self/info" && r.auth === `Bearer ${TOKEN}`)).toBe(true);
      // It finds the ESPHome the image installed (the version probe runs in the background).
      await waitFor(() => addon.stderr.join("").includes(`ESPHome ${esphomePin}`), 60_000, `"ESPHome ${esphomePin}" in the log`);
    });

    it("serves the panel and /ws on the ingress port to the ingress address only", async () => {
      const page = await get(port, "/", SUPERVISOR);
      expect(page.status).toBe(200);
      const script = /src="\.?\/?(panel-[A-Za-z0-9]+\.js)"/.exec(page.body)?.[1];
      expect(script, page.body.slice(0, 300)).toBeDefined();
      expect((await get(port, `/${script!}`, SUPERVISOR)).status).toBe(200);
      for (const stranger of ["127.0.0.1", ADDON]) {
        expect((await get(port, "/", stranger)).status, stranger).toBe(403);
        expect(await openWs(port, stranger), stranger).toBe(403);
      }
      const ws = await openWs(port, SUPERVISOR);
      if (typeof ws === "number") throw new Error(`/ws refused the ingress address: ${ws}`);
      try {
        // The label option is empty: the builder is named after the Home Assistant host.
        expect(await command(ws, "config/info")).toMatchObject({ label: HA_HOSTNAME, esphome_version: esphomePin, config_dir: "/config/esphome" });
      } finally {
        ws.close();
      }
    });

    it("announces the dashboard API by discovery, and Home Assistant Core on the loopback can use it", async () => {
      await waitFor(() => supervisor.requests.some((r) => r.path === "/discovery"), 30_000, "the discovery call");
      expect(supervisor.requests.find((r) => r.path === "/discovery")).toMatchObject({ method: "POST", auth: `Bearer ${TOKEN}`, body: { service: "esphome", config: { host: "127.0.0.1", port } } });
      const devices = await get(port, "/devices", "127.0.0.1");
      expect(devices.status).toBe(200);
      expect(JSON.parse(devices.body)).toMatchObject({ configured: [{ configuration: "kitchen.yaml", current_version: esphomePin }] });
      // `esphome config` inside the image: the real ESPHome validates the device.
      const config = await get(port, "/json-config?configuration=kitchen.yaml", "127.0.0.1");
      expect(config.status, config.body).toBe(200);
      // ESPHome's own validation: defaults filled in, the secret resolved, the network list made.
      expect(JSON.parse(config.body)).toMatchObject({ esphome: { name: "kitchen" }, wifi: { networks: [{ ssid: "image-check", password: "image-check-password" }] } });
    });

    it("publishes its entities through the Supervisor's Core proxy and listens for commands there", async () => {
      await waitFor(() => Object.values(ENTITY_IDS).every((id) => supervisor.states(id).length > 0), 30_000, "all the entities");
      expect(supervisor.states(ENTITY_IDS.queue)[0]).toMatchObject({ state: "0" });
      // Managed ESPHome in the add-on: the image's own (bundled) ESPHome is the one jobs use, nothing installed.
      expect(supervisor.states(ENTITY_IDS.esphome)[0]).toMatchObject({ state: esphomePin });
      await waitFor(() => supervisor.subscribers("esphome_builder_command") > 0, 30_000, "the command event subscription");
      expect(supervisor.authAccepted).toBeGreaterThan(0);
    });

    it("runs a command from stdin with the real ESPHome inside the image", async () => {
      addon.writeStdin(JSON.stringify({ command: "clean", configuration: "kitchen.yaml" }));
      const completed = "/core/api/events/esphome_builder_job_completed";
      await waitFor(() => supervisor.requests.some((r) => r.path === completed || r.path.endsWith("job_failed")), 60_000, "the clean job's end");
      const event = supervisor.requests.find((r) => r.path.startsWith("/core/api/events/esphome_builder_job_") && !r.path.endsWith("queued") && !r.path.endsWith("started"));
      expect(event).toMatchObject({ path: completed, body: { type: "clean", configuration: "kitchen.yaml", source: "local", exit_code: 0 } });
      // ESPHome deleted the build folder in /data (the add-on's data, mounted from the host).
      expect(existsSync(path.join(dataDir, "build", "kitchen"))).toBe(false);
      const ws = await openWs(port, SUPERVISOR);
      if (typeof ws === "number") throw new Error(`/ws refused: ${ws}`);
      try {
        const job = (await command(ws, "firmware/get_job", { job_id: (event?.body as { job_id: string }).job_id })) as { output: string[] };
        const output = job.output.join("");
        expect(output).toContain(`ESPHome ${esphomePin}`);
        expect(output).toContain("Deleting /data/build/kitchen");
      } finally {
        ws.close();
      }
    });

    it("stops on SIGTERM within the add-on's timeout, with exit code 0", async () => {
      const ms = await addon.stop();
      expect(ms).toBeLessThan((manifest.timeout ?? 10) * 1000);
      expect(await addon.exited).toBe(0);
      expect(addon.stderr.join("")).toContain("SIGTERM received; stopping");
      console.log(`the add-on stopped in ${ms} ms (timeout ${manifest.timeout ?? 10} s)`);
    });
  });
});
