/**
 * Remote builds as one part of the composition root: this builder's identity,
 * its build-server role (receiver), its offloader role and mDNS discovery.
 */
import type { EventBus } from "../events.ts";
import type { FirmwareQueue } from "../firmware/queue.ts";
import { getLogger } from "../logger.ts";
import type { Paths } from "../paths.ts";
import { fingerprintEmoji, pinHexPairs } from "./fingerprint.ts";
import { IdentityStore, type Identity } from "./identity.ts";
import { Offloader, type OffloaderTimings } from "./offloader.ts";
import { Receiver, type ReceiverTimings } from "./receiver.ts";

const log = getLogger("remote-build");

export interface RemoteBuildDeps {
  bus: EventBus;
  queue: FirmwareQueue;
  paths: Paths;
  host: string;
  peerLinkPort: number;
  label: string;
  esphomeVersion: () => string | null;
  receiverDefaultEnabled: boolean;
  receiverTimings?: Partial<ReceiverTimings>;
  offloaderTimings?: Partial<OffloaderTimings>;
}

export interface IdentityView {
  dashboard_id: string;
  pin_sha256: string;
  fingerprint_emoji: string[];
  fingerprint_hex: string;
  label: string;
  esphome_version: string | null;
  listener_port: number | null;
}

export class RemoteBuild {
  readonly identity: IdentityStore;
  readonly receiver: Receiver;
  readonly offloader: Offloader;
  readonly #deps: RemoteBuildDeps;
  #current: Identity | undefined;

  constructor(deps: RemoteBuildDeps) {
    this.#deps = deps;
    this.identity = new IdentityStore({ keyFile: deps.paths.peerLinkKeyFile, idFile: deps.paths.identityFile });
    const label = (): string => deps.label;
    this.receiver = new Receiver({
      bus: deps.bus,
      queue: deps.queue,
      paths: deps.paths,
      identity: this.identity,
      host: deps.host,
      port: deps.peerLinkPort,
      label,
      esphomeVersion: deps.esphomeVersion,
      defaultEnabled: deps.receiverDefaultEnabled,
      ...(deps.receiverTimings === undefined ? {} : { timings: deps.receiverTimings }),
    });
    this.offloader = new Offloader({
      bus: deps.bus,
      paths: deps.paths,
      identity: this.identity,
      label,
      ...(deps.offloaderTimings === undefined ? {} : { timings: deps.offloaderTimings }),
    });
  }

  async start(): Promise<void> {
    this.#current = await this.identity.load();
    await this.receiver.start();
    await this.offloader.start();
    log.info(`identity ${this.#current.dashboard_id}, pin ${this.#current.pin_sha256}`);
  }

  async stop(): Promise<void> {
    await this.offloader.stop();
    await this.receiver.stop();
  }

  identityView(): IdentityView {
    const id = this.#current;
    if (id === undefined) throw new Error("remote builds are not started");
    return {
      dashboard_id: id.dashboard_id,
      pin_sha256: id.pin_sha256,
      fingerprint_emoji: fingerprintEmoji(id.pin_sha256),
      fingerprint_hex: pinHexPairs(id.pin_sha256),
      label: this.#deps.label,
      esphome_version: this.#deps.esphomeVersion(),
      listener_port: this.receiver.port,
    };
  }

  /** A new key: every paired builder on either side must pair again. */
  async rotateIdentity(): Promise<IdentityView> {
    this.#current = await this.identity.rotate();
    await this.receiver.identityChanged();
    await this.offloader.identityChanged();
    this.#deps.bus.emit("remote_build_identity_rotated", { dashboard_id: this.#current.dashboard_id, pin_sha256: this.#current.pin_sha256 });
    return this.identityView();
  }

  /** What a panel needs to draw the build-server screens. */
  snapshot(): {
    identity: IdentityView;
    receiver: ReturnType<Receiver["settings"]>;
    offloader: ReturnType<Offloader["settings"]>;
    alerts: ReturnType<Offloader["alerts"]>;
  } {
    return {
      identity: this.identityView(),
      receiver: this.receiver.settings(),
      offloader: this.offloader.settings(),
      alerts: this.offloader.alerts(),
    };
  }
}
