/**
 * Device state at scale: 300 device YAMLs (host platform, each at 127.0.0.1 on its
 * own API port) and 300 simulated devices (bench/device-fleet.ts, another process).
 *
 * - Learning: from the builder's start until every device is online with what it runs.
 * - Refresh CPU: the builder's CPU time for full refreshes of all 300, per device, vs
 *   the floor measured in the same run: the same 300 native-API probes made directly
 *   with the same client (src/devices/native-probe.ts), 8 at a time, no builder.
 *   At the default poll interval (60 s) that is the steady share of one core.
 * - Panel: Chromium opens the panel of that builder; first contentful paint and the
 *   time until all 300 rows are in the list.
 * Prints one JSON object.
 */
import { spawn } from "node:child_process";
import { utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { chromium } from "playwright-core";
import { Builder } from "../src/builder.ts";
import { nativeApiProbe } from "../src/devices/native-probe.ts";
import { buildPanel } from "../panel/build.ts";
import { hostDeviceYaml } from "../test/real-device/devices.ts";
import { ROOT, tempDir, waitUntil } from "./lib.ts";
import { testConfig } from "../test/helpers/config.ts";

const N = Number(process.env.BENCH_DEVICES ?? 300);
const CONCURRENCY = 8;
const POLL_MS = 10_000;
const DEFAULT_POLL_MS = 60_000;

const fleet = spawn(process.execPath, [path.join(ROOT, "bench", "device-fleet.ts"), String(N)], { stdio: ["ignore", "pipe", "inherit"] });
const ports = await new Promise<number[]>((resolve, reject) => {
  let buf = "";
  fleet.stdout.on("data", (d: Buffer) => {
    buf += d.toString();
    const line = buf.split("\n").find((l) => l.startsWith("{"));
    if (line !== undefined) resolve((JSON.parse(line) as { ports: number[] }).ports);
  });
  fleet.once("exit", (code) => { reject(new Error(`the fleet exited (${code})`)); });
});

try {
  // The floor: the same probes, directly.
  const probe = nativeApiProbe({ connectTimeoutMs: 5000 });
  const floor = async (): Promise<number> => {
    const cpu0 = process.cpuUsage();
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < ports.length) {
          const port = ports[next++] as number;
          const r = await probe({ key: String(port), host: "127.0.0.1", port, apiKey: null }, AbortSignal.timeout(5000));
          if (r.kind !== "answer") throw new Error(`probe failed: ${JSON.stringify(r)}`);
        }
      }),
    );
    const cpu = process.cpuUsage(cpu0);
    return (cpu.user + cpu.system) / 1000;
  };
  await floor(); // warm-up
  const floorMs = Math.min(await floor(), await floor());

  const dir = await tempDir("bench-devices-");
  const before = new Date("2026-12-01T09:00:00Z");
  await Promise.all(
    ports.map(async (port, i) => {
      const file = path.join(dir, `device${i}.yaml`);
      await writeFile(file, hostDeviceYaml({ name: `device${i}`, api_port: port }));
      await utimes(file, before, before);
    }),
  );
  const builder = new Builder(testConfig(dir, { logLevel: "error", devicePollSeconds: POLL_MS / 1000, deviceProbeConcurrency: CONCURRENCY }));
  const t0 = performance.now();
  const cpuStart = process.cpuUsage();
  const { port } = await builder.start();
  const online = (): number => builder.deviceStates.tracker.list().filter((s) => s.status === "online" && s.firmware !== null).length;
  await waitUntil(() => online() === N, 120_000, 20);
  const learnMs = performance.now() - t0;
  const learnCpu = process.cpuUsage(cpuStart);
  // The last answers' update checks (a stat of each YAML) finish just after.
  await new Promise((r) => setTimeout(r, 1000));
  const outdated = builder.deviceStates.tracker.list().filter((s) => s.update_reasons.length > 0).length;

  // Three poll intervals of steady state: the builder's CPU over that time, per device probe
  // (each device is probed once per interval; nothing else reads the state meanwhile).
  const refreshCpu0 = process.cpuUsage();
  const refresh0 = performance.now();
  await new Promise((r) => setTimeout(r, 3 * POLL_MS));
  const refreshWall = performance.now() - refresh0;
  const refreshCpu = process.cpuUsage(refreshCpu0);
  const refreshCpuMs = (refreshCpu.user + refreshCpu.system) / 1000;
  const probesInWindow = (refreshWall / POLL_MS) * N;
  const cpuPerProbe = refreshCpuMs / probesInWindow;
  const floorPerProbe = floorMs / N;

  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  // The panel with 300 devices, and with none (the same run's floor).
  await buildPanel({ ifStale: true });
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"] });
  /** First contentful paint of a panel, median of three reloads after a warm-up visit; `rows`: wait for that many device rows. */
  const visit = async (panelPort: number, rows: number): Promise<{ fcp: number; list: number; first: number }> => {
    const paints: number[] = [];
    const lists: number[] = [];
    const firsts: number[] = [];
    for (let i = 0; i < 4; i++) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      await context.route((url) => !(url.hostname === "127.0.0.1" && url.port === String(panelPort)), (route) => route.abort());
      const page = await context.newPage();
      const nav0 = Date.now();
      await page.goto(`http://127.0.0.1:${panelPort}/`);
      let firstMs = 0;
      if (rows > 0) {
        await page.locator("esphome-devices-view li.device >> nth=0").waitFor({ state: "visible", timeout: 60_000 });
        firstMs = Date.now() - nav0;
      }
      if (rows > 0) await page.locator(`esphome-devices-view li.device >> nth=${rows - 1}`).waitFor({ state: "attached", timeout: 60_000 });
      else await page.locator("esphome-devices-view .empty").waitFor({ state: "attached", timeout: 60_000 });
      const listMs = Date.now() - nav0;
      const fcp = await page.evaluate(() => performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? -1);
      if (i > 0) {
        paints.push(fcp);
        lists.push(listMs);
        firsts.push(firstMs);
      }
      await context.close();
    }
    return { fcp: median(paints), list: median(lists), first: median(firsts) };
  };
  const emptyDir = await tempDir("bench-devices-empty-");
  const empty = new Builder(testConfig(emptyDir, { logLevel: "error" }));
  const emptyPort = (await empty.start()).port;
  const bare = await visit(emptyPort, 0);
  await empty.stop();
  const full = await visit(port, N);
  await browser.close();
  await builder.stop();

  process.stdout.write(
    JSON.stringify({
      devices: N,
      outdated,
      learn_ms: learnMs,
      learn_cpu_ms: (learnCpu.user + learnCpu.system) / 1000,
      floor_cpu_ms_per_probe: floorPerProbe,
      builder_cpu_ms_per_probe: cpuPerProbe,
      builder_vs_floor: cpuPerProbe / floorPerProbe,
      steady_core_pct_at_default_interval: ((cpuPerProbe * N) / DEFAULT_POLL_MS) * 100,
      panel_fcp_ms: full.fcp,
      panel_list_ms: full.list,
      panel_first_row_ms: full.first,
      panel_empty_fcp_ms: bare.fcp,
    }) + "\n",
  );
} finally {
  fleet.kill("SIGTERM");
}
