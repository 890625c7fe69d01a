/**
 * A running host-platform ESPHome device: the compiled `program`, copied out of the
 * build tree (an OTA install replaces the file it runs from, in place, and re-execs
 * it under the same pid) and started inside a device namespace with its own
 * ESPHOME_PREFDIR (where the host platform keeps its preferences).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { chmod, copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { DeviceLink } from "./network.ts";
import { waitForFirmware, type FirmwareInfo } from "./probe.ts";

const running = new Set<ChildProcess>();
let hooked = false;

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;

export interface DeviceOptions {
  /** The compiled program (e.g. `<build>/.pioenvs/<name>/program`); a copy is run. */
  program: string;
  link: DeviceLink;
  /** Its native API port (the YAML's `api: port:`). Default 6053. */
  apiPort?: number;
  /** How long it may take to answer on the API. Default 30 s. */
  startTimeoutMs?: number;
}

export class RealDevice {
  readonly address: string;
  readonly apiPort: number;
  /** Where it runs from: `program` (the copy OTA replaces) and `prefs/`. */
  readonly dir: string;
  readonly program: string;
  /** Its log lines, colour codes removed. */
  readonly log: string[] = [];
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;

  private constructor(child: ChildProcess, dir: string, address: string, apiPort: number) {
    this.#child = child;
    this.dir = dir;
    this.program = path.join(dir, "program");
    this.address = address;
    this.apiPort = apiPort;
    this.#exited = new Promise((resolve) => child.once("exit", () => { resolve(); }));
    let rest = "";
    const onData = (chunk: Buffer): void => {
      const parts = (rest + chunk.toString("utf8")).split("\n");
      rest = parts.pop() ?? "";
      for (const line of parts) this.log.push(line.replace(ANSI, ""));
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
  }

  /** Starts the device and waits until its native API answers; returns it with what it runs. */
  static async start(opts: DeviceOptions): Promise<{ device: RealDevice; firmware: FirmwareInfo }> {
    if (!hooked) {
      hooked = true;
      process.once("exit", () => {
        for (const child of running) child.kill("SIGKILL");
      });
    }
    const dir = await mkdtemp(path.join(os.tmpdir(), "esb-device-"));
    const program = path.join(dir, "program");
    await copyFile(opts.program, program);
    await chmod(program, 0o755);
    await mkdir(path.join(dir, "prefs"));
    const child = spawn("ip", ["netns", "exec", opts.link.ns, program], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir, ESPHOME_PREFDIR: path.join(dir, "prefs") },
      stdio: ["ignore", "pipe", "pipe"],
    });
    running.add(child);
    child.once("exit", () => running.delete(child));
    const device = new RealDevice(child, dir, opts.link.deviceAddress, opts.apiPort ?? 6053);
    try {
      const firmware = await waitForFirmware(device.address, () => true, { port: device.apiPort, timeoutMs: opts.startTimeoutMs ?? 30_000, stillAlive: () => device.alive });
      return { device, firmware };
    } catch (err) {
      await device.stop();
      throw new Error(`the device did not come up: ${String(err)}\n${device.log.slice(-20).join("\n")}`, { cause: err });
    }
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  get alive(): boolean {
    return this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** What its native API says it runs (it may be re-executing after an OTA: retried until `timeoutMs`). */
  firmware(timeoutMs = 20_000, until: (info: FirmwareInfo) => boolean = () => true): Promise<FirmwareInfo> {
    return waitForFirmware(this.address, until, { port: this.apiPort, timeoutMs, stillAlive: () => this.alive });
  }

  /** SIGKILL: the device is gone without a word (no goodbye to its API clients, as a power cut); removes its folder. */
  async kill(): Promise<void> {
    if (this.alive) {
      this.#child.kill("SIGKILL");
      await this.#exited;
    }
    await rm(this.dir, { recursive: true, force: true });
  }

  /** SIGTERM (it says goodbye to its API clients, as before a restart), then SIGKILL after 3 s; removes its folder. */
  async stop(): Promise<void> {
    if (this.alive) {
      this.#child.kill("SIGTERM");
      const timer = setTimeout(() => this.#child.kill("SIGKILL"), 3000);
      await this.#exited;
      clearTimeout(timer);
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}
