/**
 * The composition root. The constructor only wires parts together; `start()`
 * does the I/O in dependency order and `stop()` undoes it in reverse.
 */
import { promises as fs } from "node:fs";
import { isIP } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { BasicAuth } from "./api/basic-auth.ts";
import { DownloadTokens } from "./api/downloads.ts";
import type { ApiServices } from "./api/commands.ts";
import type { ServerInfo } from "./api/wire.ts";
import { HostPolicy } from "./api/host-guard.ts";
import { HttpServer } from "./api/http-server.ts";
import { LegacyApi } from "./api/legacy-api.ts";
import { DEVICE_DEFAULTS, SUPERVISOR_INGRESS_ADDRESS, isLoopbackHost, type BuilderConfig } from "./config.ts";
import { Devices } from "./devices/devices.ts";
import { DeviceScanner } from "./esphome/device-scan.ts";
import { listSerialPorts } from "./esphome/serial-ports.ts";
import { probeEsphomeVersion } from "./esphome/version.ts";
import { subprocessEnv, type EsphomeCommand } from "./esphome/cli.ts";
import { Environments } from "./esphome/environments.ts";
import { ManagedEsphome } from "./esphome/managed.ts";
import { fetchEsphomeVersions } from "./esphome/package-index.ts";
import { readPin } from "./esphome/pinned.ts";
import { findPython } from "./esphome/python-finder.ts";
import { BuildAffinity } from "./remote-build/placement/affinity.ts";
import { BuildServerVersions } from "./remote-build/build-server/versions.ts";
import { EventBus } from "./events.ts";
import { LocalRunner } from "./firmware/local-runner.ts";
import { RemoteRunner, SourceRoutedRunner } from "./firmware/remote-runner.ts";
import { BuildRouter } from "./remote-build/placement/routing.ts";
import { FirmwareQueue } from "./firmware/queue.ts";
import { HomeAssistant, type HomeAssistantDeps } from "./ha/home-assistant.ts";
import { getLogger } from "./logger.ts";
import { resolvePaths, type Paths } from "./paths.ts";
import type { ReceiverTimings } from "./remote-build/build-server/receiver.ts";
import { Problems } from "./problems.ts";
import { RemoteBuild } from "./remote-build/remote-build.ts";
import { PairingKeyWindow } from "./remote-build/build-server/pairing-key.ts";
import { RemoteBuildOnly } from "./remote-build/build-server/remote-build-only.ts";

const log = getLogger("builder");

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export const SERVER_VERSION: string = (
  JSON.parse(await fs.readFile(path.join(PROJECT_ROOT, "package.json"), "utf8")) as { version: string }
).version;

/** The built panel if there is one, else the placeholder page in `panel/`. */
async function panelDir(): Promise<string> {
  const built = path.join(PROJECT_ROOT, "panel", "dist");
  try {
    await fs.access(path.join(built, "index.html"));
    return built;
  } catch {
    return path.join(PROJECT_ROOT, "panel");
  }
}

export interface Listening {
  port: number;
  peer_link_port: number | null;
}

/** Test seams of the builder's parts. */
export interface BuilderHooks {
  /** Package index answers for `esphome/versions` (default: the real index, see src/esphome/package-index.ts). */
  esphomeVersions?: ConstructorParameters<typeof ManagedEsphome>[0]["versions"];
  /** Where automation commands are read from with `stdinCommands` (default process.stdin). */
  stdin?: HomeAssistantDeps["stdin"];
  /** Home Assistant client timings (tests shorten retries and debounces). */
  haTimings?: HomeAssistantDeps["timings"];
  /** Build-server timings (tests shorten the pair_status time limit). */
  receiverTimings?: Partial<ReceiverTimings>;
  /** `--remote-build-only`: where the pairing banner goes (default stdout) and the key window's timings. */
  remoteBuildOnly?: { write?: (text: string) => void; windowMs?: number };
  /** Device-state seams (tests inject a probe, a clock or the mDNS stack). */
  devices?: Pick<ConstructorParameters<typeof Devices>[0], "probe" | "clock" | "timings" | "bonjourFactory">;
}

export class Builder {
  readonly config: BuilderConfig;
  readonly paths: Paths;
  readonly bus = new EventBus();
  /** What a person should know about: state files moved aside, writes that fail (shown by the panel). */
  readonly problems = new Problems({ bus: this.bus });
  readonly queue: FirmwareQueue;
  readonly devices: DeviceScanner;
  /** Live device state: online/offline, firmware, update available; holds installs for offline devices. */
  readonly deviceStates: Devices;
  readonly downloads = new DownloadTokens();
  readonly remote: RemoteBuild;
  /** Entities, events, automation commands and Supervisor discovery; idle without a Home Assistant. */
  readonly ha: HomeAssistant;
  /** `--remote-build-only`: the headless build server's first-pair key; null otherwise. */
  readonly remoteBuildOnly: RemoteBuildOnly | null;
  readonly #remoteRunner: RemoteRunner;
  readonly #router: BuildRouter;
  /** Which build server compiled each device last (warm-cache affinity). */
  readonly #affinity: BuildAffinity;
  /** As a build server: ESPHome versions installed for peers that run other ones. */
  readonly #serverEnvironments: Environments;
  readonly #serverVersions: BuildServerVersions;
  /** The ESPHome jobs run: managed environments, or `--esphome PATH` as given. */
  readonly esphome: ManagedEsphome;
  /** What runners run: the managed source, or the `--esphome` path as given. */
  readonly #esphomeCommand: EsphomeCommand;
  #http: HttpServer | undefined;
  /** This builder's name for peers; in the add-on without a label option, the host's name learnt at start. */
  #label: string;

  constructor(config: BuilderConfig, hooks: BuilderHooks = {}) {
    this.config = config;
    this.#label = config.label;
    this.paths = resolvePaths({ configDir: config.configDir, dataDir: config.dataDir });
    this.esphome = this.#esphomeSource(config, hooks);
    const esphome: EsphomeCommand = config.managedEsphome === true ? this.esphome : config.esphome;
    this.#esphomeCommand = esphome;
    this.#serverEnvironments = new Environments({
      root: this.paths.buildServerVersionsDir,
      limit: config.buildServerVersions ?? 3,
      python: () => findPython({ explicit: config.python }),
      env: () => subprocessEnv("own"),
    });
    this.#serverVersions = new BuildServerVersions({
      environments: this.#serverEnvironments,
      diskBudgetBytes: (config.buildServerVersionsDiskGb ?? 8) * 1e9,
    });
    this.#affinity = new BuildAffinity({ bus: this.bus, file: this.paths.affinityFile, problems: this.problems });
    // The remote runner reaches the offloader lazily: the offloader needs the queue first.
    this.#remoteRunner = new RemoteRunner({
      paths: this.paths,
      esphome,
      esphomeVersion: () => this.esphome.currentVersion(),
      offloader: { session: (pin) => this.remote.offloader.session(pin), label: (pin) => this.remote.offloader.label(pin) },
    });
    this.queue = new FirmwareQueue({
      bus: this.bus,
      paths: this.paths,
      runner: new SourceRoutedRunner(new LocalRunner({ esphome, paths: this.paths, versions: this.#serverVersions }), this.#remoteRunner),
      localReady: () => this.esphome.ready(),
      options: { compileConcurrency: config.compileConcurrency, uploadConcurrency: config.uploadConcurrency },
      problems: this.problems,
    });
    this.devices = new DeviceScanner({ configDir: this.paths.configDir, bus: this.bus });
    this.deviceStates = new Devices({
      bus: this.bus,
      devices: this.devices,
      queue: this.queue,
      configDir: this.paths.configDir,
      devicesFile: this.paths.devicesFile,
      problems: this.problems,
      builderVersion: () => this.esphome.currentVersion(),
      pollIntervalMs: (config.devicePollSeconds ?? DEVICE_DEFAULTS.pollSeconds) * 1000,
      concurrency: config.deviceProbeConcurrency ?? DEVICE_DEFAULTS.probeConcurrency,
      waitExpiryMs: (config.deviceWaitMinutes ?? DEVICE_DEFAULTS.waitMinutes) * 60_000,
      mdns: config.mdns,
      ...hooks.devices,
    });
    const pairingKey = config.remoteBuildOnly === true
      ? new PairingKeyWindow({ allowSources: config.allowPairingSources ?? [], ...(hooks.remoteBuildOnly?.windowMs === undefined ? {} : { windowMs: hooks.remoteBuildOnly.windowMs }) })
      : undefined;
    this.remote = new RemoteBuild({
      bus: this.bus,
      queue: this.queue,
      paths: this.paths,
      host: config.peerLinkHost,
      peerLinkPort: config.peerLinkPort,
      label: () => this.#label,
      esphomeVersion: () => this.esphome.currentVersion(),
      // The build server is on by default standalone; in the add-on the user turns it on.
      receiverDefaultEnabled: !config.addon,
      haAddon: config.addon,
      ...(pairingKey === undefined ? {} : { pairingKey }),
      canProvision: () => this.#serverVersions.enabled,
      mdns: config.mdns,
      serverVersion: SERVER_VERSION,
      localBuilds: config.localBuilds,
      problems: this.problems,
      ...(hooks.receiverTimings === undefined ? {} : { receiverTimings: hooks.receiverTimings }),
      connectBackTimings: config.connectBackTimings,
    });
    this.remoteBuildOnly = pairingKey === undefined
      ? null
      : new RemoteBuildOnly({
          receiver: this.remote.receiver,
          gate: pairingKey,
          pin: () => this.remote.identityView().pin_sha256,
          label: () => this.#label,
          write: hooks.remoteBuildOnly?.write ?? ((text) => { process.stdout.write(text); }),
          allowSources: config.allowPairingSources ?? [],
        });
    this.#router = new BuildRouter({
      offloader: this.remote.offloader,
      esphomeVersion: () => this.esphome.currentVersion(),
      affinity: this.#affinity,
      wake: () => { this.queue.wake(); },
      localBuilds: () => this.remote.placement.localBuilds,
      restoreGraceMs: config.remoteRestoreGraceSeconds * 1000,
    });
    this.queue.setRouter(this.#router);
    this.ha = new HomeAssistant({
      config,
      bus: this.bus,
      queue: this.queue,
      receiver: this.remote.receiver,
      stateDir: this.paths.stateDir,
      esphome: () => this.esphome.status(),
      ...(hooks.stdin === undefined ? {} : { stdin: hooks.stdin }),
      ...(hooks.haTimings === undefined ? {} : { timings: hooks.haTimings }),
    });
  }

  async start(): Promise<Listening> {
    await fs.mkdir(this.paths.configDir, { recursive: true });
    await fs.mkdir(this.paths.stateDir, { recursive: true });
    if (this.config.labelFromSupervisor === true) {
      const name = await this.ha.hostName();
      if (name === null) {
        log.warning(`no Home Assistant host name from the Supervisor: this builder is '${this.#label}' to its peers; the label option names it`);
      } else {
        this.#label = name;
        log.info(`this builder is '${name}' to its peers (the Home Assistant host's name)`);
      }
    }
    // Remote builds first: restored jobs are routed as soon as the queue starts.
    await this.#affinity.start();
    // Only once there are any (the first is made on demand): no empty folder on builders that never serve another version.
    const versionsDir = this.paths.buildServerVersionsDir;
    if (await fs.stat(versionsDir).then(() => true, () => false)) {
      await this.#serverEnvironments.start().catch((err: unknown) => {
        log.warning(`the build server's ESPHome versions in ${versionsDir} could not be prepared: ${String(err)}`);
      });
    }
    await this.remote.start();
    // Add-on options that act on running parts (the build-server switch), before anything is served.
    await this.ha.applyAddonOptions();
    // Headless: the build server on, and a pairing key printed when nobody is paired yet.
    await this.remoteBuildOnly?.start();
    this.#remoteRunner.start();
    for (const name of ["offloader_peer_link_opened", "offloader_peer_link_closed", "offloader_queue_status_changed", "offloader_pairing_changed", "offloader_settings_changed", "local_builds_changed"] as const) {
      this.bus.on(name, () => { this.queue.wake(); });
    }
    // ESPHome before the queue: jobs wait for a first environment, provisioned in the background.
    this.bus.on("esphome_state_changed", () => {
      this.queue.wake();
      this.remote.esphomeVersionChanged();
      this.deviceStates.tracker.refreshUpdates();
    });
    await this.esphome.start();
    await this.queue.start();
    await this.devices.start();
    await this.deviceStates.start();
    const services: ApiServices = {
      bus: this.bus,
      queue: this.queue,
      devices: this.devices,
      paths: this.paths,
      problems: this.problems,
      downloads: this.downloads,
      serialPorts: () => listSerialPorts(),
      remote: this.remote,
      esphome: this.esphome,
      info: () => this.info(),
      deviceStates: this.deviceStates.tracker,
      deviceLogs: { esphome: this.#esphomeCommand, dataDir: this.paths.jobDataDir({ configuration: "", remote_peer: "" }) },
    };
    // In the add-on the Supervisor picks the ingress port, and only its ingress proxy (plus Home
    // Assistant Core on the loopback, for the legacy dashboard API) may use the listener.
    const listenPort = this.config.portFromSupervisor === true ? await this.ha.ingressPort() : this.config.port;
    this.#http = new HttpServer({
      services,
      host: this.config.host,
      port: listenPort,
      panelDir: await panelDir(),
      hosts: this.#hostPolicy(),
      legacy: new LegacyApi({ services, esphome: this.#esphomeCommand }),
      ...(this.config.addon ? { access: { full: this.config.ingressAddresses ?? [SUPERVISOR_INGRESS_ADDRESS], legacy: ["127.0.0.1", "::1"] } } : {}),
      ...(this.config.password !== undefined ? { auth: new BasicAuth({ credentials: { username: this.config.username ?? "esphome", password: this.config.password } }) } : {}),
    });
    if (!this.config.addon && this.config.password === undefined && !isLoopbackHost(this.config.host)) {
      log.warning(
        `the panel listens on ${this.config.host} without a password: anyone who can reach it can run code on this machine (ESPHome YAML can); set ESPHOME_BUILDER_PASSWORD`,
      );
    }
    const port = await this.#http.start();
    await this.remote.startDiscovery(port);
    // Last: Home Assistant learns about a builder that is fully up (it starts in the background).
    this.ha.start({ services, port });
    return { port, peer_link_port: this.remote.receiver.port };
  }

  /** Managed: environments under `<data-dir>/esphome`, the add-on image's own as the default; else `--esphome` as given. */
  #esphomeSource(config: BuilderConfig, hooks: BuilderHooks): ManagedEsphome {
    const pin = readPin(PROJECT_ROOT);
    const versions = hooks.esphomeVersions ?? (() => fetchEsphomeVersions());
    if (config.managedEsphome !== true) {
      return new ManagedEsphome({ bus: this.bus, external: config.esphome, pinned: pin.version, defaultVersion: null, versions, probe: probeEsphomeVersion });
    }
    const bundled = config.bundledEsphome !== undefined && pin.version !== null ? { version: pin.version, esphome: config.bundledEsphome } : undefined;
    const environments = new Environments({
      root: this.paths.esphomeDir,
      python: () => findPython({ explicit: config.python }),
      constraintsFor: (version) => (version === pin.version ? pin.constraints : null),
      env: () => subprocessEnv("own"),
      ...(bundled === undefined ? {} : { bundled }),
    });
    return new ManagedEsphome({
      bus: this.bus,
      environments,
      selectionFile: this.paths.esphomeSelectionFile,
      pinned: pin.version,
      defaultVersion: pin.version,
      versions,
      probe: probeEsphomeVersion,
    });
  }

  /** The DNS-rebinding guard: the names the user gave, the listen address when it is a name, the ingress proxy in the add-on. */
  #hostPolicy(): HostPolicy {
    const { host, allowedHosts, trustedProxies, addon, ingressAddresses } = this.config;
    const listenName = isIP(host) === 0 ? [host] : [];
    return new HostPolicy({
      allowedHosts: [...allowedHosts, ...listenName],
      trustedProxies,
      ingressProxies: addon ? (ingressAddresses ?? [SUPERVISOR_INGRESS_ADDRESS]) : [],
    });
  }

  info(): ServerInfo {
    return {
      server_version: SERVER_VERSION,
      esphome_version: this.esphome.currentVersion(),
      config_dir: this.paths.configDir,
      label: this.#label,
    };
  }

  async stop(): Promise<void> {
    const steps: [string, () => Promise<void>][] = [
      // No new automation commands while the parts they need stop.
      ["automation commands", () => { this.ha.stopCommands(); return Promise.resolve(); }],
      ["http", async () => this.#http?.stop()],
      ["device states", () => this.deviceStates.stop()],
      ["devices", () => this.devices.stop()],
      // The queue stops first: running remote jobs send their cancel while the sessions are still up.
      ["queue", () => this.queue.stop()],
      // After the queue (its jobs hold environments): a pip that runs is stopped, its folder removed.
      ["esphome", () => this.esphome.stop()],
      ["remote runner", () => this.#remoteRunner.stop()],
      // After the queue: the cancellations of a stop still reach Home Assistant (bounded wait).
      ["home assistant", () => this.ha.stop()],
      ["remote builds", async () => { this.#router.stop(); this.remoteBuildOnly?.stop(); await this.remote.stop(); }],
      ["build affinity", () => this.#affinity.stop()],
      ["build-server versions", () => this.#serverEnvironments.flush()],
    ];
    for (const [name, step] of steps) {
      try {
        await step();
      } catch (err) {
        log.error(`stopping ${name} failed: ${String(err)}`);
      }
    }
  }
}
