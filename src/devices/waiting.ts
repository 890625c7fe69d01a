/**
 * Installs that wait for their device. An install compiles at once; its upload
 * is held (the job shows `waiting: {reason: "device"}`, cancelable like any queued job)
 * while the device is offline, and starts when the device is seen again. A
 * wait that lasts longer than `expiryMs` fails the job with a message that says
 * so; a device that sleeps (`deep_sleep`) is probed at the retry rate meanwhile,
 * and its mDNS announcement on waking releases the upload at once.
 *
 * Only `offline` holds: a device not yet probed (`unknown`), an upload to a
 * serial port, or one sent to another address than the device's is not held,
 * so nothing waits on a guess.
 */
import type { DeviceState } from "../domain/device.ts";
import type { FirmwareJob } from "../domain/job.ts";
import type { EventBus, Unsubscribe } from "../events.ts";
import type { JobGate } from "../firmware/queue.ts";
import type { StoredJob } from "../firmware/job.ts";
import { isSerialPort } from "../esphome/port.ts";
import { getLogger } from "../logger.ts";
import type { Clock } from "./prober.ts";
import { systemClock } from "./prober.ts";

const log = getLogger("devices.waiting");

/** The start of a held job's error when its wait expired (stable, for automations). */
export const DEVICE_WAIT_EXPIRED = "device_wait_expired";

export interface WaitingQueue {
  list(): FirmwareJob[];
  wake(): void;
  failWaiting(jobId: string, error: string): boolean;
}

export interface WaitingInstallsDeps {
  bus: EventBus;
  queue: WaitingQueue;
  state: (configuration: string) => DeviceState | undefined;
  /** A device with a held install is probed at the retry rate. */
  urgent: (configuration: string, urgent: boolean) => void;
  expiryMs: number;
  clock?: Clock;
}

export class WaitingInstalls implements JobGate {
  readonly #deps: WaitingInstallsDeps;
  readonly #clock: Clock;
  readonly #timers = new Map<string, unknown>();
  readonly #unsubscribe: Unsubscribe[] = [];

  constructor(deps: WaitingInstallsDeps) {
    this.#deps = deps;
    this.#clock = deps.clock ?? systemClock;
  }

  holds(job: Readonly<StoredJob>): "device" | null {
    if (job.port !== "" && isSerialPort(job.port)) return null;
    const state = this.#deps.state(job.configuration);
    if (state?.status !== "offline") return null;
    // An upload sent elsewhere than where the device is looked for: its state says nothing about that address.
    if (job.port !== "" && job.port !== "OTA" && job.port !== state.address) return null;
    return "device";
  }

  start(): void {
    const { bus } = this.#deps;
    this.#unsubscribe.push(
      bus.on("job_updated", ({ job }) => { this.#follow(job); }),
      bus.on("device_state_changed", ({ state }) => {
        if (state.status === "online" && this.#heldFor(state.configuration)) this.#deps.queue.wake();
      }),
    );
    for (const name of ["job_completed", "job_failed", "job_cancelled"] as const) {
      this.#unsubscribe.push(bus.on(name, ({ job }) => { this.#forget(job); }));
    }
    for (const job of this.#deps.queue.list()) if (job.waiting?.reason === "device") this.#follow(job);
  }

  stop(): void {
    for (const off of this.#unsubscribe.splice(0)) off();
    for (const timer of this.#timers.values()) this.#clock.clearTimeout(timer);
    this.#timers.clear();
  }

  #heldFor(configuration: string): boolean {
    return this.#deps.queue.list().some((j) => j.configuration === configuration && j.waiting?.reason === "device");
  }

  #follow(job: FirmwareJob): void {
    if (job.waiting?.reason !== "device") {
      this.#forget(job);
      return;
    }
    if (this.#timers.has(job.job_id)) return;
    this.#deps.urgent(job.configuration, true);
    const deadline = Date.parse(job.waiting.since) + this.#deps.expiryMs;
    const timer = this.#clock.setTimeout(() => {
      this.#timers.delete(job.job_id);
      const state = this.#deps.state(job.configuration);
      const minutes = Math.round(this.#deps.expiryMs / 60_000);
      const error =
        `${DEVICE_WAIT_EXPIRED}: ${job.configuration} was not online (at ${state?.address ?? "its address"}) within ` +
        `${minutes > 0 ? `${minutes} minute(s)` : `${Math.round(this.#deps.expiryMs / 1000)} s`} of the compile, so it was not installed. ` +
        "Switch the device on (or wake it) and install again, or allow a longer wait with --device-wait.";
      if (this.#deps.queue.failWaiting(job.job_id, error)) log.info(`install ${job.job_id} for ${job.configuration} gave up waiting for the device`);
      this.#settle(job.configuration);
    }, Math.max(0, deadline - this.#clock.now()));
    this.#timers.set(job.job_id, timer);
  }

  #forget(job: FirmwareJob): void {
    const timer = this.#timers.get(job.job_id);
    if (timer !== undefined) {
      this.#clock.clearTimeout(timer);
      this.#timers.delete(job.job_id);
    }
    this.#settle(job.configuration);
  }

  #settle(configuration: string): void {
    if (!this.#heldFor(configuration)) this.#deps.urgent(configuration, false);
  }
}
