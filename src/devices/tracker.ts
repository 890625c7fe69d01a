/**
 * Device state, kept live: for every configured device, whether it answers,
 * what firmware it runs and whether it needs an install. It follows the scan
 * (`device_updated`/`device_removed`), probes through the `Prober`, listens to
 * mDNS announcements, and fires `device_state_changed` for every change. The
 * state is learnt again after each start; the owner's addresses and last-seen
 * times are kept in `devices.json` (DeviceStore).
 */
import { promises as fs } from "node:fs";
import type { Device, DeviceState } from "../domain/device.ts";
import type { EventBus, Unsubscribe } from "../events.ts";
import { errorMessage, invalidArgs, notFound } from "../errors.ts";
import { getLogger } from "../logger.ts";
import { resolveAddress } from "./address.ts";
import type { DeviceStore } from "./device-store.ts";
import type { Announcement } from "./mdns.ts";
import type { Clock, ProbeOutcome, Prober } from "./prober.ts";
import { markAnnounced, markAnswered, markAnsweredWithError, markMissed, newDeviceState, setAddress, setDeepSleep, setUpdate } from "./state.ts";
import { updateVerdict } from "./update.ts";
import { newestMtime, readYamlFacts, type YamlFacts } from "./yaml-facts.ts";

const log = getLogger("devices");

/** The scan's side the tracker needs (DeviceScanner). */
export interface DeviceSource {
  list(): Device[];
  get(configuration: string): Device | undefined;
}

export interface DeviceTrackerDeps {
  bus: EventBus;
  devices: DeviceSource;
  store: DeviceStore;
  prober: Prober;
  configDir: string;
  /** This builder's ESPHome version (null while unknown). */
  builderVersion: () => string | null;
  clock?: Pick<Clock, "now">;
  /**
   * Null when the address may be probed, else why not (under --no-mdns a
   * `.local` name, which only mDNS resolves, is not looked up).
   */
  unprobeable?: (address: string) => string | null;
}

interface Tracked {
  state: DeviceState;
  device: Device;
  facts: YamlFacts | null;
  /** `mtimeMs:size` of the YAML the facts were read from. */
  factsKey: string;
  /** Bumped on every (re)load, so a slow read for an old version is dropped. */
  generation: number;
}

export class DeviceTracker {
  readonly #deps: DeviceTrackerDeps;
  readonly #now: () => Date;
  readonly #tracked = new Map<string, Tracked>();
  readonly #unsubscribe: Unsubscribe[] = [];
  readonly #pending = new Set<Promise<unknown>>();
  #stopped = false;

  constructor(deps: DeviceTrackerDeps) {
    this.#deps = deps;
    const clock = deps.clock;
    this.#now = clock === undefined ? () => new Date() : () => new Date(clock.now());
  }

  async start(): Promise<void> {
    this.#stopped = false;
    await this.#deps.store.load();
    const { bus } = this.#deps;
    this.#unsubscribe.push(
      bus.on("device_updated", ({ device }) => { this.#track(this.#load(device)); }),
      bus.on("device_removed", ({ configuration }) => { this.#remove(configuration); }),
    );
    // States exist at once (status unknown) so the panel lists every device; facts and probes follow.
    for (const device of this.#deps.devices.list()) this.#ensure(device);
    await Promise.all(this.#deps.devices.list().map((d) => this.#load(d)));
    this.#deps.prober.start();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const off of this.#unsubscribe.splice(0)) off();
    this.#deps.prober.stop();
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
    await this.#deps.store.flush();
  }

  list(): DeviceState[] {
    return [...this.#tracked.values()].map((t) => structuredClone(t.state)).sort((a, b) => (a.configuration < b.configuration ? -1 : 1));
  }

  get(configuration: string): DeviceState | undefined {
    const t = this.#tracked.get(configuration);
    return t === undefined ? undefined : structuredClone(t.state);
  }

  /** Sets (null: clears) the owner's address for a device; persisted before it takes effect. */
  async setAddress(configuration: string, address: string | null): Promise<DeviceState> {
    const t = this.#tracked.get(configuration);
    if (t === undefined) throw notFound(`No device with configuration ${configuration}`);
    if (address !== null && address.trim() === "") throw invalidArgs("address must not be empty; send null to clear it");
    await this.#deps.store.setAddress(configuration, address);
    await this.#load(t.device);
    return structuredClone(t.state);
  }

  /** Probes the device soon (the panel's refresh, an install waiting for it). */
  probeNow(configuration: string): void {
    this.#deps.prober.hurry(configuration);
  }

  /** Re-evaluates every "update available" (this builder's ESPHome version changed). */
  refreshUpdates(): void {
    for (const t of this.#tracked.values()) this.#track(this.#evaluate(t));
  }

  /** mDNS heard a device: online at once, and probed soon for the rest of what it runs. */
  announced(a: Announcement): void {
    for (const t of this.#tracked.values()) {
      if (t.device.name.toLowerCase() !== a.name || t.state.address_source === "owner") continue;
      const changed = markAnnounced(t.state, a.version, this.#now());
      this.#seen(t);
      if (changed) this.#emit(t);
      if (t.state.firmware?.source !== "api") this.#deps.prober.hurry(t.state.configuration);
      this.#track(this.#evaluate(t));
    }
  }

  /** mDNS heard a goodbye: look again now. */
  wentAway(name: string): void {
    for (const t of this.#tracked.values()) if (t.device.name.toLowerCase() === name) this.#deps.prober.hurry(t.state.configuration);
  }

  /** The prober's outcome for `configuration`. */
  onProbe(configuration: string, outcome: ProbeOutcome): void {
    const t = this.#tracked.get(configuration);
    if (t === undefined) return;
    const now = this.#now();
    let changed: boolean;
    if (outcome.kind === "answer") {
      const a = outcome.answer;
      changed = markAnswered(t.state, {
        esphome_version: a.esphomeVersion,
        compilation_time: a.compilationTime,
        project_name: a.projectName,
        project_version: a.projectVersion,
        source: "api",
      }, now);
      this.#seen(t);
    } else if (outcome.kind === "answered_error") {
      changed = markAnsweredWithError(t.state, outcome.error, now);
      this.#seen(t);
    } else {
      changed = markMissed(t.state, outcome.error, outcome.misses, this.#deps.prober.timings.offlineAfterMisses, now);
    }
    if (changed) this.#emit(t);
    if (outcome.kind !== "unreachable") this.#track(this.#evaluate(t));
  }

  /** A method: TypeScript keeps `#stopped` narrowed across an await. */
  #isStopped(): boolean {
    return this.#stopped;
  }

  #seen(t: Tracked): void {
    if (t.state.last_seen !== null) this.#deps.store.setLastSeen(t.state.configuration, t.state.last_seen);
  }

  #track(promise: Promise<unknown>): void {
    this.#pending.add(promise);
    promise.then(
      () => this.#pending.delete(promise),
      (err: unknown) => {
        this.#pending.delete(promise);
        log.error(`device state update failed: ${errorMessage(err)}`);
      },
    );
  }

  #ensure(device: Device): Tracked {
    let t = this.#tracked.get(device.configuration);
    if (t === undefined) {
      const { address, source } = resolveAddress(device, true, this.#deps.store.address(device.configuration));
      t = {
        state: newDeviceState(device.configuration, address, source, this.#deps.store.lastSeen(device.configuration)),
        device,
        facts: null,
        factsKey: "",
        generation: 0,
      };
      this.#tracked.set(device.configuration, t);
    }
    t.device = device;
    return t;
  }

  /** Reads the YAML's facts, resolves the address and (re)targets the prober. */
  async #load(device: Device): Promise<void> {
    if (this.#stopped) return;
    const t = this.#ensure(device);
    const generation = ++t.generation;
    const key = await this.#statKey(device.path);
    const facts = key === t.factsKey && t.facts !== null ? t.facts : await readYamlFacts(this.#deps.configDir, device.path);
    if (t.generation !== generation || this.#tracked.get(device.configuration) !== t || this.#isStopped()) return;
    t.facts = facts;
    t.factsKey = key;
    const { address, source } = resolveAddress(device, facts.hasNetworkBlock, this.#deps.store.address(device.configuration));
    const fresh = t.state.status === "unknown" && t.state.status_since === null;
    let changed = setAddress(t.state, address, source);
    changed = setDeepSleep(t.state, facts.deepSleep) || changed;
    if (changed && !fresh) {
      // A new address: what was known about the old one no longer holds.
      t.state.status = "unknown";
      t.state.status_since = this.#now().toISOString();
      t.state.firmware = null;
      t.state.probe_error = null;
    }
    const why = this.#deps.unprobeable?.(address) ?? null;
    if (why === null) {
      this.#deps.prober.set({ key: device.configuration, host: address, port: facts.apiPort, apiKey: facts.apiKey });
    } else {
      this.#deps.prober.delete(device.configuration);
      if (t.state.probe_error !== why) {
        t.state.probe_error = why;
        changed = true;
      }
    }
    changed = (await this.#evaluateInto(t)) || changed;
    if (changed || fresh) this.#emit(t);
  }

  async #statKey(file: string): Promise<string> {
    try {
      const stat = await fs.stat(file);
      return `${stat.mtimeMs}:${stat.size}`;
    } catch {
      return "";
    }
  }

  async #evaluate(t: Tracked): Promise<void> {
    if (await this.#evaluateInto(t)) this.#emit(t);
  }

  /** Recomputes "update available"; true when it changed. Re-reads the facts when the YAML changed. */
  async #evaluateInto(t: Tracked): Promise<boolean> {
    if (t.state.firmware === null) return setUpdate(t.state, [], null);
    const key = await this.#statKey(t.device.path);
    if (key !== t.factsKey) {
      t.facts = await readYamlFacts(this.#deps.configDir, t.device.path);
      t.factsKey = key;
    }
    const mtime = await newestMtime(t.device.path, t.facts?.includes ?? []);
    const verdict = updateVerdict(t.state.firmware, this.#deps.builderVersion(), mtime);
    return setUpdate(t.state, verdict.reasons, verdict.detail);
  }

  #remove(configuration: string): void {
    const t = this.#tracked.get(configuration);
    if (t === undefined) return;
    t.generation++;
    this.#tracked.delete(configuration);
    this.#deps.prober.delete(configuration);
  }

  #emit(t: Tracked): void {
    if (this.#stopped) return;
    this.#deps.bus.emit("device_state_changed", { state: structuredClone(t.state) });
  }
}
