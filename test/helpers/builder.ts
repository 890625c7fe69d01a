/** Builders for tests: in-process (fast) or as a real child process (for crash tests). */
import { spawn, type ChildProcess } from "node:child_process";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { onTestFinished } from "vitest";
import { Builder } from "../../src/builder.ts";
import type { BuilderConfig } from "../../src/config.ts";
import { STAND_IN, testConfig } from "./config.ts";
import { tempDir } from "./tmp.ts";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export { STAND_IN, testConfig };

export const DEVICE_YAML = (name: string, extra = ""): string =>
  `esphome:\n  name: ${name}\nesp32:\n  board: esp32dev\nwifi:\n  ssid: !secret wifi_ssid\n  password: !secret wifi_password\napi:\nota:\n  - platform: esphome\nlogger:\n${extra}`;

/** A config folder with the given devices (`name` -> extra YAML). */
export async function configDir(devices: Record<string, string> = { kitchen: "" }): Promise<string> {
  const dir = await tempDir("esphome-config-");
  await writeFile(path.join(dir, "secrets.yaml"), "wifi_ssid: test\nwifi_password: secret\n");
  for (const [name, extra] of Object.entries(devices)) await writeFile(path.join(dir, `${name}.yaml`), DEVICE_YAML(name, extra));
  return dir;
}

/** Starts a builder in this process; it is stopped after the test. */
export async function startBuilder(overrides: Partial<BuilderConfig> = {}, dir?: string): Promise<{ builder: Builder; port: number; dir: string }> {
  const config = dir ?? (await configDir());
  const builder = new Builder(testConfig(config, overrides));
  const { port } = await builder.start();
  onTestFinished(async () => {
    await builder.stop();
  });
  return { builder, port, dir: config };
}

export interface BuilderProcess {
  child: ChildProcess;
  port: number;
  stdout: string[];
  stderr: string[];
  exited: Promise<number | null>;
}

/** Runs `node src/main.ts` as a real process and waits for its listening line. */
export async function spawnBuilder(args: string[], env: Record<string, string> = {}): Promise<BuilderProcess> {
  const child = spawn(process.execPath, [path.join(ROOT, "src", "main.ts"), ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  child.stderr.on("data", (d: Buffer) => stderr.push(d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => { resolve(code); }));
  const port = await new Promise<number>((resolve, reject) => {
    let buf = "";
    child.stdout.on("data", (d: Buffer) => {
      buf += d.toString();
      stdout.push(d.toString());
      const line = buf.split("\n").find((l) => l.includes('"listening"'));
      if (line !== undefined) resolve((JSON.parse(line) as { port: number }).port);
    });
    void exited.then((code) => { reject(new Error(`builder exited with ${code}: ${stderr.join("")}`)); });
  });
  onTestFinished(async () => {
    // SIGTERM first: the builder cancels its jobs and their process groups go
    // with them. A SIGKILL would leave a running ESPHome process behind.
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const forced = setTimeout(() => child.kill("SIGKILL"), 8000);
    await exited;
    clearTimeout(forced);
  });
  return { child, port, stdout, stderr, exited };
}
