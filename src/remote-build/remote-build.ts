/**
 * Remote builds as one part of the composition root: this builder's identity,
 * its build-server role (receiver), its offloader role and mDNS discovery.
 */
import type { IdentityView, RemoteBuildProblem, RemoteBuildSnapshot } from "../domain/remote-build.ts";
import { notFound } from "../errors.ts";
import type { EventBus } from "../events.ts";
import type { FirmwareQueue } from "../firmware/queue.ts";
import { getLogger } from "../logger.ts";
import type { Paths } from "../paths.ts";
import { fingerprintEmoji, pinHexPairs } from "./transport/fingerprint.ts";
import { Discovery, type DiscoveredHost } from "./discovery/discovery.ts";
import { IdentityStore, type Identity } from "./transport/identity.ts";
import { Offloader, type OffloaderTimings } from "./offloader/offloader.ts";
import { PlacementSettings } from "./placement/placement-settings.ts";
import type { LocalBuilds } from "./placement/placement.ts";
import type { ProblemSink } from "../problems.ts";
import { Receiver, type ReceiverTimings } from "./build-server/receiver.ts";
import { ConnectBackDialer, dialConnectBack, type ConnectBackTimings } from "./build-server/connect-back.ts";
import { ConnectBackAnswerer, probeBuildServer } from "./offloader/connect-back.ts";
import { HANDSHAKE_STEP_MS } from "./transport/messages.ts";
import type { PairingKeyWindow } from "./build-server/pairing-key.ts";

const log = getLogger("remote-build");

export interface RemoteBuildDeps {
  bus: EventBus;
  queue: FirmwareQueue;
  paths: Paths;
  host: string;
  peerLinkPort: number;
  /** This builder's name shown to peers (read at each use: the add-on learns it at start). */
  label: () => string;
  esphomeVersion: () => string | null;
  receiverDefaultEnabled: boolean;
  /** Whether the build server can install other ESPHome versions for its peers. */
  canProvision?: () => boolean;
  receiverTimings?: Partial<ReceiverTimings>;
  offloaderTimings?: Partial<OffloaderTimings>;
  /** Connect-back dialer timings (tests shorten them; ESPHOME_BUILDER_CONNECT_BACK_TIMINGS). */
  connectBackTimings?: Partial<ConnectBackTimings> | undefined;
  /** Advertise and browse with mDNS. */
  mdns: boolean;
  serverVersion: string;
  /** The configured `local_builds` (flag, variable, add-on option); undefined when not given. */
  localBuilds?: LocalBuilds | undefined;
  problems?: ProblemSink;
  /** Running as the Home Assistant add-on (`ha_addon` in what this builder tells peers). */
  haAddon?: boolean;
  /** `--remote-build-only`: the first-pair key window the build server checks pair requests against. */
  pairingKey?: PairingKeyWindow;
}


export class RemoteBuild {
  readonly identity: IdentityStore;
  readonly receiver: Receiver;
  readonly offloader: Offloader;
  /** Where this builder's own compiles run. */
  readonly placement: PlacementSettings;
  /** Connect-back, build-server side: dials quiet approved peers at their announced listener. */
  readonly connectBack: ConnectBackDialer;
  readonly #deps: RemoteBuildDeps;
  #current: Identity | undefined;
  #discovery: Discovery | undefined;
  readonly #offs: (() => void)[] = [];
  readonly #dismissed = new Set<string>();

  constructor(deps: RemoteBuildDeps) {
    this.#deps = deps;
    this.identity = new IdentityStore({ keyFile: deps.paths.peerLinkKeyFile, idFile: deps.paths.identityFile });
    const label = deps.label;
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
      ...(deps.canProvision === undefined ? {} : { canProvision: deps.canProvision }),
      ...(deps.haAddon === undefined ? {} : { haAddon: deps.haAddon }),
      ...(deps.pairingKey === undefined ? {} : { pairingKey: deps.pairingKey }),
      ...(deps.receiverTimings === undefined ? {} : { timings: deps.receiverTimings }),
      answerConnectBack: (pin, address, payload) => answerer.answer(pin, address, payload),
    });
    this.offloader = new Offloader({
      bus: deps.bus,
      paths: deps.paths,
      identity: this.identity,
      label,
      ...(deps.haAddon === undefined ? {} : { haAddon: deps.haAddon }),
      ...(deps.offloaderTimings === undefined ? {} : { timings: deps.offloaderTimings }),
      // Any approved pairing keeps a listener bound (offloader-only mode while the build server is off).
      connectBackPort: () => this.receiver.offloaderListener(true),
    });
    const answerer = new ConnectBackAnswerer({
      pairing: (pin) => this.offloader.connectBackPairing(pin),
      probe: (host, port, pin) => probeBuildServer({ identity: this.#current, host, port, pin, stepTimeoutMs: deps.offloaderTimings?.stepTimeoutMs ?? HANDSHAKE_STEP_MS }),
      rebind: (pin, host, port) => { this.offloader.rebindFromConnectBack(pin, host, port); },
    });
    this.connectBack = new ConnectBackDialer({
      peers: () => this.receiver.connectBackPeers(),
      ownPort: () => this.receiver.port,
      dial: (peer, ownPort, timeoutMs) => {
        const id = this.#current;
        if (id === undefined) return Promise.resolve({ kind: "failed", error: "no identity yet" });
        return dialConnectBack({ host: peer.peer_ip, port: peer.connect_back_port, pin: peer.pin_sha256, ownPort, privateKey: id.privateKey, timeoutMs });
      },
      now: Date.now,
      timings: deps.connectBackTimings,
    });
    this.placement = new PlacementSettings({
      file: deps.paths.placementFile,
      bus: deps.bus,
      configured: deps.localBuilds,
      ...(deps.problems === undefined ? {} : { problems: deps.problems }),
    });
  }

  async start(): Promise<void> {
    this.#current = await this.identity.load();
    await this.receiver.start();
    await this.offloader.start();
    await this.placement.start();
    this.connectBack.start();
    // The last approved pairing gone: a listener bound only for connect-back is closed.
    this.#offs.push(this.#deps.bus.on("offloader_pairing_removed", () => {
      if (!this.offloader.hasApprovedPairings()) void this.receiver.offloaderListener(false);
    }));
    log.info(`identity ${this.#current.dashboard_id}, pin ${this.#current.pin_sha256}`);
  }

  /**
   * Starts mDNS once the HTTP port is known: advertises this builder (with its
   * pin and peer-link port while the build server is on) and lists the other
   * builders it hears. Discovery only proposes addresses; trust is the pin.
   */
  async startDiscovery(httpPort: number): Promise<void> {
    if (!this.#deps.mdns) return;
    const { bus } = this.#deps;
    const discovery = new Discovery({
      onChange: (event) => {
        if (event.type === "added") bus.emit("remote_build_host_added", { host: event.host });
        else bus.emit("remote_build_host_removed", { name: event.name });
      },
    });
    this.#discovery = discovery;
    let advertised;
    try {
      await discovery.start();
      advertised = this.#txt();
      await discovery.advertise({ instanceName: this.#instanceName(), port: httpPort, txt: advertised });
    } catch (err) {
      log.warning(`mDNS is not available (${String(err)}); add build servers by host and port`);
      return;
    }
    const refresh = (): void => {
      void discovery.updateTxt(this.#txt()).catch((err: unknown) => { log.warning(`mDNS update failed: ${String(err)}`); });
    };
    this.#refreshTxt = refresh;
    this.#offs.push(bus.on("remote_build_receiver_changed", refresh), bus.on("remote_build_identity_rotated", refresh));
    // The ESPHome version may have become known while the advertisement went out.
    if (advertised.esphome_version !== this.#txt().esphome_version) refresh();
  }

  #refreshTxt: (() => void) | null = null;

  /** The ESPHome version is known (or changed): the mDNS TXT says so (upstream's `esphome_version`). */
  esphomeVersionChanged(): void {
    this.#refreshTxt?.();
  }

  hosts(): DiscoveredHost[] {
    return this.#discovery?.hosts() ?? [];
  }

  #instanceName(): string {
    return `esphome-builder-${(this.#current?.dashboard_id ?? "unknown").slice(0, 8)}`;
  }

  /** The mDNS TXT this builder advertises now (upstream's keys, plus `friendly_name` as newer upstream). */
  txt(): { server_version: string; esphome_version: string; friendly_name: string; pin_sha256?: string; remote_build_port?: number } {
    return this.#txt();
  }

  #txt(): { server_version: string; esphome_version: string; friendly_name: string; pin_sha256?: string; remote_build_port?: number } {
    const port = this.receiver.port;
    return {
      server_version: this.#deps.serverVersion,
      esphome_version: this.#deps.esphomeVersion() ?? "",
      friendly_name: this.#deps.label(),
      ...(port !== null && this.#current !== undefined ? { pin_sha256: this.#current.pin_sha256, remote_build_port: port } : {}),
    };
  }

  async stop(): Promise<void> {
    this.connectBack.stop();
    this.#refreshTxt = null;
    for (const off of this.#offs.splice(0)) off();
    await this.#discovery?.stop();
    await this.offloader.stop();
    await this.receiver.stop();
    await this.placement.stop();
  }

  identityView(): IdentityView {
    const id = this.#current;
    if (id === undefined) throw new Error("remote builds are not started");
    return {
      dashboard_id: id.dashboard_id,
      pin_sha256: id.pin_sha256,
      fingerprint_emoji: fingerprintEmoji(id.pin_sha256),
      fingerprint_hex: pinHexPairs(id.pin_sha256),
      label: this.#deps.label(),
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

  /**
   * State files that could not be read at start-up (identity, key,
   * receiver.json, offloader.json) and were repaired or set aside, until
   * someone dismisses them.
   */
  problems(): RemoteBuildProblem[] {
    return [...this.identity.problems, ...this.receiver.problems, ...this.offloader.problems].filter((p) => !this.#dismissed.has(p.id));
  }

  /** Hides a problem from every panel (it stays in the log). */
  dismissProblem(id: string): void {
    if (!this.problems().some((p) => p.id === id)) throw notFound(`No remote-build problem ${id}`);
    this.#dismissed.add(id);
    this.#deps.bus.emit("remote_build_problem_dismissed", { id });
  }

  /** What a panel needs to draw the build-server screens. */
  snapshot(): RemoteBuildSnapshot {
    return {
      identity: this.identityView(),
      receiver: this.receiver.settings(),
      offloader: this.offloader.settings(),
      alerts: this.offloader.alerts(),
      problems: this.problems(),
      hosts: this.hosts(),
      local_builds: this.placement.localBuilds,
    };
  }
}
