/**
 * The device-state part the builder composes: the store, the prober (with the
 * native-API client), the tracker, the mDNS browser (not under --no-mdns) and
 * the waiting installs (the queue's gate). Constructors wire; start()/stop() do
 * the I/O.
 */
import type { EventBus } from "../events.ts";
import type { FirmwareQueue } from "../firmware/queue.ts";
import type { ProblemSink } from "../problems.ts";
import type { BonjourFactory } from "../mdns/bonjour.ts";
import { DeviceStore } from "./device-store.ts";
import { DeviceMdns } from "./mdns.ts";
import { nativeApiProbe } from "./native-probe.ts";
import { Prober, timingsFor, type Clock, type ProbeFn, type ProbeTimings } from "./prober.ts";
import { DeviceTracker, type DeviceSource } from "./tracker.ts";
import { WaitingInstalls } from "./waiting.ts";

export interface DevicesDeps {
  bus: EventBus;
  devices: DeviceSource;
  queue: FirmwareQueue;
  configDir: string;
  devicesFile: string;
  problems?: ProblemSink;
  builderVersion: () => string | null;
  /** Poll interval of online devices (the other timings follow from it: prober.ts `timingsFor`). */
  pollIntervalMs: number;
  concurrency: number;
  /** How long an install waits for its offline device before it fails. */
  waitExpiryMs: number;
  mdns: boolean;
  bonjourFactory?: BonjourFactory;
  /** Test seams. */
  probe?: ProbeFn;
  clock?: Clock;
  timings?: Partial<ProbeTimings>;
}

export class Devices {
  readonly tracker: DeviceTracker;
  readonly prober: Prober;
  readonly waiting: WaitingInstalls;
  readonly #store: DeviceStore;
  readonly #mdns: DeviceMdns | null;

  constructor(deps: DevicesDeps) {
    const timings = { ...timingsFor(deps.pollIntervalMs, deps.concurrency), ...deps.timings };
    this.#store = new DeviceStore({ file: deps.devicesFile, ...(deps.problems === undefined ? {} : { problems: deps.problems }) });
    this.prober = new Prober({
      probe: deps.probe ?? nativeApiProbe({ connectTimeoutMs: timings.timeoutMs }),
      timings,
      ...(deps.clock === undefined ? {} : { clock: deps.clock }),
      onResult: (key, outcome) => { this.tracker.onProbe(key, outcome); },
    });
    this.tracker = new DeviceTracker({
      bus: deps.bus,
      devices: deps.devices,
      store: this.#store,
      prober: this.prober,
      configDir: deps.configDir,
      builderVersion: deps.builderVersion,
      ...(deps.clock === undefined ? {} : { clock: deps.clock }),
      unprobeable: (address) =>
        !deps.mdns && /\.local\.?$/i.test(address)
          ? `${address} is an mDNS name and mDNS is off (--no-mdns): set the device's address in the panel to follow it`
          : null,
    });
    this.#mdns = deps.mdns
      ? new DeviceMdns({
          refreshMs: timings.intervalMs,
          onUp: (a) => { this.tracker.announced(a); },
          onDown: (name) => { this.tracker.wentAway(name); },
          ...(deps.bonjourFactory === undefined ? {} : { bonjourFactory: deps.bonjourFactory }),
        })
      : null;
    this.waiting = new WaitingInstalls({
      bus: deps.bus,
      queue: deps.queue,
      state: (configuration) => this.tracker.get(configuration),
      urgent: (configuration, urgent) => { this.prober.setUrgent(configuration, urgent); },
      expiryMs: deps.waitExpiryMs,
      ...(deps.clock === undefined ? {} : { clock: deps.clock }),
    });
    deps.queue.setGate(this.waiting);
  }

  async start(): Promise<void> {
    await this.tracker.start();
    this.waiting.start();
    this.#mdns?.start();
  }

  async stop(): Promise<void> {
    this.#mdns?.stop();
    this.waiting.stop();
    await this.tracker.stop();
  }
}
