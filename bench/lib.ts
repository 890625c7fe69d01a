/** Helpers shared by the benchmarks: builders in this process, temp folders, device files. */
import { mkdtemp, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Builder } from "../src/builder.ts";
import type { BuilderConfig } from "../src/config.ts";
import { setLogLevel } from "../src/logger.ts";
import { STAND_IN, testConfig } from "../test/helpers/config.ts";

setLogLevel("error");

/** Polls `predicate` until it holds; rejects after `timeoutMs`. */
export async function waitUntil(predicate: () => boolean, timeoutMs: number, stepMs = 2): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export { STAND_IN };

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), prefix));
}

export async function deviceFolder(names: string[]): Promise<string> {
  const dir = await tempDir("bench-config-");
  await writeFile(path.join(dir, "secrets.yaml"), "wifi_ssid: x\nwifi_password: y\n");
  for (const name of names) {
    await writeFile(
      path.join(dir, `${name}.yaml`),
      `esphome:\n  name: ${name}\nesp32:\n  board: esp32dev\nwifi:\n  ssid: !secret wifi_ssid\n  password: !secret wifi_password\napi:\nota:\n  - platform: esphome\n`,
    );
  }
  return dir;
}

export async function builder(dir: string, label: string, over: Partial<BuilderConfig> = {}): Promise<Builder> {
  const b = new Builder(testConfig(dir, { label, logLevel: "error", ...over }));
  await b.start();
  return b;
}

/** Pairs offloader `a` with build server `b` and waits for an idle session. */
export async function pair(a: Builder, b: Builder): Promise<string> {
  const port = b.remote.receiver.port;
  if (port === null) throw new Error("build server is off");
  b.remote.receiver.setPairingWindow("bench", true);
  const preview = await a.remote.offloader.previewPair("127.0.0.1", port);
  await a.remote.offloader.requestPair("127.0.0.1", port, preview.pin_sha256);
  b.remote.receiver.approve(a.remote.identityView().dashboard_id);
  await waitUntil(() => a.remote.offloader.session(preview.pin_sha256)?.queueStatus?.idle === true, 10_000);
  return preview.pin_sha256;
}

/** Runs jobs through `b`'s queue and resolves when all of them ended. */
export function allDone(b: Builder, ids: readonly string[]): Promise<void> {
  return waitUntil(() => ids.every((id) => ["completed", "failed", "cancelled"].includes(b.queue.get(id)?.status ?? "")), 120_000).then(() => {
    const bad = ids.map((id) => b.queue.get(id)).filter((j) => j?.status !== "completed");
    if (bad.length > 0) throw new Error(`jobs did not complete: ${bad.map((j) => `${j?.job_id} ${j?.status} ${j?.error}`).join("; ")}`);
  });
}
