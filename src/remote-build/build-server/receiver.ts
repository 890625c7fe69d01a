/**
 * The build-server role ("receiver"): composes the peer-link listener
 * (listener.ts), pairing with human approval (pairing.ts), sessions with
 * approved offloaders (sessions.ts) and, through `PeerJobs`, compiling for
 * them on this builder's own queue. It owns receiver.json (the switch, the
 * version policy, the approved peers) and the cleanup of peers' bundles.
 * The receiver only ever compiles; flashing is always the offloader's.
 */
import path from "node:path";
import type { PeerSummary, ReceiverSettings, RemoteBuildProblem } from "../../domain/remote-build.ts";
import { VERSION_POLICIES, type VersionPolicy } from "../../domain/policy.ts";
import { resolveExecutable } from "../../esphome/cli.ts";
import { isVersionPolicy, serveVersion, type ServeDecision } from "../../esphome/version-policy.ts";
import { errorMessage } from "../../errors.ts";
import type { EventBus, Unsubscribe } from "../../events.ts";
import type { FirmwareQueue } from "../../firmware/queue.ts";
import { getLogger } from "../../logger.ts";
import type { Paths } from "../../paths.ts";
import { JsonStore } from "../../store.ts";
import { cleanupRemoteBuilds } from "../archives/bundle.ts";
import { looseFileSchema, rowName, StateFileReport, type LooseFile } from "../state-files.ts";
import type { Identity, IdentityStore } from "../transport/identity.ts";
import { HEARTBEAT_INTERVAL_MS, HEARTBEAT_TIMEOUT_MS } from "../transport/messages.ts";
import type { ConnectBackPeer } from "./connect-back.ts";
import { PeerLinkListener } from "./listener.ts";
import type { PairingKeyWindow } from "./pairing-key.ts";
import { PAIR_STATUS_MAX_WAIT_MS, PAIRING_WINDOW_MS, PairingBook, storedPeerSchema } from "./pairing.ts";
import { PeerJobs } from "./peer-jobs.ts";
import { PeerSessions, queueStatusFrame } from "./sessions.ts";

const log = getLogger("receiver");

/** Bundles and build caches of peers are deleted after a day without use. */
export const REMOTE_BUILDS_TTL_MS = 24 * 60 * 60 * 1000;
const CLEANUP_INTERVAL_MS = 60 * 60 * 1000;

export interface ReceiverTimings {
  pairingWindowMs: number;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  stepTimeoutMs: number;
  remoteBuildsTtlMs: number;
  pairStatusMaxWaitMs: number;
}

export interface ReceiverDeps {
  bus: EventBus;
  queue: FirmwareQueue;
  paths: Paths;
  identity: IdentityStore;
  host: string;
  port: number;
  label: () => string;
  esphomeVersion: () => string | null;
  /** The receiver switch when no settings were saved yet. */
  defaultEnabled: boolean;
  /** Whether this builder can install other ESPHome versions (it manages its ESPHome; not with --esphome). */
  canProvision?: () => boolean;
  /** Running as the Home Assistant add-on (said in intent responses as `ha_addon`). */
  haAddon?: boolean;
  /**
   * `--remote-build-only`: previews say `requires_pairing_key`, and while the
   * window's key is armed a pair request pairs only with it (PairingBook).
   */
  pairingKey?: PairingKeyWindow;
  timings?: Partial<ReceiverTimings>;
  now?: () => number;
  /** Answers intent `connect_back` (our offloader role); without it the intent is `bad_intent`. */
  answerConnectBack?: (pin: string, remoteAddress: string, payload: Record<string, unknown>) => Promise<Record<string, unknown>>;
}

export class Receiver {
  readonly #deps: ReceiverDeps;
  readonly #timings: ReceiverTimings;
  readonly #now: () => number;
  readonly #store: JsonStore<LooseFile>;
  readonly #pairing: PairingBook;
  readonly #sessions: PeerSessions;
  readonly #listener: PeerLinkListener;
  readonly #jobs: PeerJobs;
  /** What could not be read of receiver.json at start-up. */
  readonly problems: RemoteBuildProblem[] = [];
  #enabled = false;
  #versionPolicy: VersionPolicy = "any";
  #ccache = false;
  #identity: Identity | undefined;
  /** Our offloader role wants the listener (connect-back) even while the build server is off. */
  #offloaderWants = false;
  #bindWarned = false;
  #cleanupTimer: NodeJS.Timeout | undefined;
  readonly #unsubscribe: Unsubscribe[] = [];

  constructor(deps: ReceiverDeps) {
    this.#deps = deps;
    const timings: ReceiverTimings = {
      pairingWindowMs: PAIRING_WINDOW_MS,
      heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS,
      heartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS,
      stepTimeoutMs: 10_000,
      remoteBuildsTtlMs: REMOTE_BUILDS_TTL_MS,
      pairStatusMaxWaitMs: PAIR_STATUS_MAX_WAIT_MS,
      ...deps.timings,
    };
    this.#timings = timings;
    const now = deps.now ?? Date.now;
    this.#now = now;
    this.#store = new JsonStore({ file: deps.paths.receiverFile, schema: looseFileSchema, mode: 0o600, debounceMs: 50 });
    this.#sessions = new PeerSessions({
      bus: deps.bus,
      now,
      heartbeatIntervalMs: timings.heartbeatIntervalMs,
      heartbeatTimeoutMs: timings.heartbeatTimeoutMs,
      queueStatus: () => deps.queue.status(),
      jobs: () => this.#jobs,
    });
    this.#pairing = new PairingBook({
      bus: deps.bus,
      now,
      pairingWindowMs: timings.pairingWindowMs,
      pairStatusMaxWaitMs: timings.pairStatusMaxWaitMs,
      save: () => { this.#save(); },
      saveNow: () => this.#store.saveNow(() => this.#fileData()),
      connected: (id) => this.#sessions.has(id),
      ...(deps.pairingKey === undefined ? {} : { pairingKey: deps.pairingKey }),
    });
    this.#listener = new PeerLinkListener({
      host: deps.host,
      port: deps.port,
      stepTimeoutMs: timings.stepTimeoutMs,
      identity: () => this.#identity,
      label: deps.label,
      esphomeVersion: deps.esphomeVersion,
      autoProvisionSupported: () => this.autoProvisionSupported,
      versionPolicy: () => this.#versionPolicy,
      haAddon: deps.haAddon ?? false,
      requiresPairingKey: deps.pairingKey !== undefined,
      pairing: this.#pairing,
      sessions: this.#sessions,
      buildServerOn: () => this.#enabled,
      ...(deps.answerConnectBack === undefined ? {} : { answerConnectBack: deps.answerConnectBack }),
    });
    this.#jobs = new PeerJobs({ queue: deps.queue, paths: deps.paths, sessionsOf: (pin) => this.#sessions.sessionsOf(pin), serve: (target) => this.serve(target) });
  }

  async start(): Promise<void> {
    await this.#load();
    // ESPHome wraps compiles with a ccache it finds on PATH (host, ESP-IDF and PlatformIO builds alike).
    this.#ccache = (await resolveExecutable("ccache")) !== null;
    if (this.#ccache) log.info("ccache is on PATH: ESPHome caches compiled objects between builds");
    this.#identity = await this.#deps.identity.load();
    const { bus } = this.#deps;
    this.#unsubscribe.push(
      bus.on("queue_status_changed", (status) => { this.#sessions.broadcast(queueStatusFrame(status)); }),
      bus.on("job_queued", ({ job }) => { this.#jobs.jobStateChanged(job, "queued"); }),
      bus.on("job_started", ({ job }) => { this.#jobs.jobStateChanged(job, "running"); }),
      bus.on("job_completed", ({ job }) => { this.#jobs.jobStateChanged(job, "completed"); }),
      bus.on("job_failed", ({ job }) => { this.#jobs.jobStateChanged(job, "failed"); }),
      bus.on("job_cancelled", ({ job }) => { this.#jobs.jobStateChanged(job, "cancelled"); }),
      bus.on("job_output", ({ job_id, line }) => { this.#jobs.jobOutput(job_id, line); }),
    );
    if (this.#enabled) await this.#listener.bind();
    await this.cleanup();
    this.#cleanupTimer = setInterval(() => { void this.cleanup(); }, CLEANUP_INTERVAL_MS);
    this.#cleanupTimer.unref();
  }

  /**
   * Reads receiver.json. Missing: the default switch, nobody approved. Not a
   * JSON object: moved aside, and the build server stays off. Otherwise each
   * approved peer is read on its own (a bad one is skipped, the others kept)
   * and a switch that is not true or false counts as off. Whatever could not
   * be read is reported (`problems`), and the file is rewritten at once with
   * what was kept (the original copied aside first), so a restart does not
   * turn the build server on again.
   */
  async #load(): Promise<void> {
    const file = this.#deps.paths.receiverFile;
    const report = new StateFileReport(file);
    const loaded = await this.#store.load();
    if (loaded.kind === "missing") {
      this.#enabled = this.#deps.defaultEnabled;
      return;
    }
    if (loaded.kind === "corrupt") {
      this.#enabled = false;
      report.movedAside(
        "receiver_file",
        loaded,
        "The build server was left off and no builder is approved here: turn the build server on under Build servers and pair the other builders again, or put back a repaired copy and restart.",
      );
    } else {
      this.#enabled = report.flag(loaded.value, "enabled", {
        kind: "receiver_file",
        fallback: false,
        consequence: "the build server was left off. Turn it on under Build servers if it should compile for other builders.",
      });
      const peers = report.rows(loaded.value, "peers", {
        schema: storedPeerSchema,
        key: (peer) => peer.dashboard_id,
        kind: "receiver_peer",
        name: (raw, index) => rowName("Approved builder", raw, index, ["label", "dashboard_id"]),
        remedy: "it can no longer build here until it pairs again (open Build servers here, then pair from that builder).",
        whenUnreadable: "no builder is approved here now; pair the other builders again.",
      });
      this.#pairing.load(peers);
      const policy = loaded.value["version_policy"];
      if (isVersionPolicy(policy)) this.#versionPolicy = policy;
      else if (policy !== undefined) log.warning(`receiver.json: version_policy ${JSON.stringify(policy)} is not one of ${VERSION_POLICIES.join(", ")}; using any`);
    }
    const rewrite = loaded.kind === "corrupt" || report.needsRewrite;
    await report.finish(this.#now);
    this.problems.push(...report.problems);
    if (rewrite) await this.#store.saveNow(() => this.#fileData());
  }

  /** Deletes peers' bundle folders not used for a day, except those of jobs still active. */
  async cleanup(): Promise<string[]> {
    const { paths, queue } = this.#deps;
    const keep = new Set<string>();
    for (const job of queue.list()) {
      if (job.remote_peer !== "" && !["completed", "failed", "cancelled"].includes(job.status)) keep.add(path.dirname(paths.jobYaml(job)));
    }
    try {
      const removed = await cleanupRemoteBuilds(paths.remoteBuildsDir, { ttlMs: this.#timings.remoteBuildsTtlMs, now: this.#now(), keep });
      if (removed.length > 0) log.info(`removed ${removed.length} unused remote build folder(s)`);
      return removed;
    } catch (err) {
      log.warning(`cleaning up remote builds failed: ${errorMessage(err)}`);
      return [];
    }
  }

  async stop(): Promise<void> {
    if (this.#cleanupTimer !== undefined) clearInterval(this.#cleanupTimer);
    for (const off of this.#unsubscribe.splice(0)) off();
    this.#jobs.clear();
    this.#pairing.closeWindowNow();
    await this.#listener.unbind("server_shutting_down");
    await this.#store.flush();
  }

  /** The bound peer-link port while the build server is on; null while it is off (even when bound for connect-back). */
  get port(): number | null {
    return this.#enabled ? this.#listener.port : null;
  }

  /** The bound listener's port in either mode (build server, or offloader-only for connect-back); null when not bound. */
  get listenerPort(): number | null {
    return this.#listener.port;
  }

  /**
   * Connect-back hook: our offloader role wants (or no longer wants) the
   * listener. While the build server is off it is bound in offloader-only
   * mode: intent `connect_back` only, every other intent `rejected/bad_intent`.
   * Resolves with the bound port, or null when not bound (binding failed).
   */
  async offloaderListener(wanted: boolean): Promise<number | null> {
    this.#offloaderWants = wanted;
    if (wanted) {
      try {
        await this.#listener.bind();
        this.#bindWarned = false;
      } catch (err) {
        // Asked again before every session attempt: say it once per failure streak.
        if (!this.#bindWarned) log.warning(`peer-link listener for connect-back not bound on ${this.#deps.host}:${this.#deps.port} (no connect-back until it is): ${errorMessage(err)}`);
        this.#bindWarned = true;
      }
    } else if (!this.#enabled) {
      await this.#listener.unbind("server_shutting_down");
    }
    return this.#listener.port;
  }

  /** Connect-back hook: the approved peers with what the dialer needs. */
  connectBackPeers(): ConnectBackPeer[] {
    return this.#pairing.approvedPeers().map((p) => ({
      dashboard_id: p.dashboard_id,
      pin_sha256: p.pin_sha256,
      peer_ip: p.peer_ip,
      connect_back_port: p.connect_back_port,
      connected: this.#sessions.has(p.dashboard_id),
    }));
  }

  get enabled(): boolean {
    return this.#enabled;
  }

  /** Turns the receiver on or off now: binds or unbinds the listener. */
  async setEnabled(enabled: boolean): Promise<void> {
    if (enabled === this.#enabled) return;
    this.#enabled = enabled;
    this.#save();
    if (enabled) await this.#listener.bind();
    else if (this.#offloaderWants) this.#sessions.terminateAll("server_shutting_down");
    else await this.#listener.unbind("server_shutting_down");
    this.#deps.bus.emit("remote_build_receiver_changed", { enabled, peer_link_port: this.port });
  }

  /** Identity changed (rotation): rebuild the listener so new handshakes use the new key. */
  async identityChanged(): Promise<void> {
    this.#identity = await this.#deps.identity.load();
    if (this.#listener.port !== null) {
      await this.#listener.unbind("server_shutting_down");
      await this.#listener.bind();
    }
  }

  settings(): ReceiverSettings {
    const expires = this.#pairing.windowExpiresIn();
    return {
      enabled: this.#enabled,
      version_policy: this.#versionPolicy,
      auto_provision_supported: this.autoProvisionSupported,
      ccache: this.#ccache,
      pairing_window_open: expires !== null,
      expires_in_seconds: expires,
      peers: this.peers(),
    };
  }

  /** What this build server does with a job for another ESPHome version. */
  get versionPolicy(): VersionPolicy {
    return this.#versionPolicy;
  }

  /** Advertised in intent responses: it installs the version a job asks for (policy exact or exact_required, and able to). */
  get autoProvisionSupported(): boolean {
    return (this.#versionPolicy === "exact" || this.#versionPolicy === "exact_required") && (this.#deps.canProvision?.() ?? false);
  }

  /**
   * Sets the version policy. Open sessions are left alone (one may be
   * building): their builders learn the new policy when they reconnect, and
   * until then a job the policy refuses fails with `failure_reason:
   * "provision"`, which makes them build it themselves.
   */
  setVersionPolicy(policy: VersionPolicy): void {
    if (policy === this.#versionPolicy) return;
    this.#versionPolicy = policy;
    this.#save();
    this.#deps.bus.emit("remote_build_version_policy_changed", { version_policy: policy, auto_provision_supported: this.autoProvisionSupported });
  }

  /** What a job for ESPHome `target` ("" unsaid) gets here. */
  serve(target: string): ServeDecision {
    return serveVersion(this.#versionPolicy, this.#deps.esphomeVersion() ?? "", target, this.#deps.canProvision?.() ?? false);
  }

  peers(): PeerSummary[] {
    return this.#pairing.peers();
  }

  // ---- pairing (pairing.ts) ----

  /** Opens (or extends) or closes the pairing window for one client. */
  setPairingWindow(clientId: string, open: boolean): { open: boolean; expires_in_seconds: number | null } {
    return this.#pairing.setWindow(clientId, open, this.#enabled);
  }

  /** A panel client went away: its window share ends. */
  clientGone(clientId: string): void {
    this.#pairing.clientGone(clientId);
  }

  approve(dashboardId: string): PeerSummary {
    return this.#pairing.approve(dashboardId);
  }

  /** Rejects a pending request or removes an approved peer (its session ends). */
  remove(dashboardId: string): void {
    this.#pairing.remove(dashboardId, () => { this.#sessions.terminate(dashboardId, "revoked"); });
  }

  #fileData(): LooseFile {
    return { enabled: this.#enabled, version_policy: this.#versionPolicy, peers: this.#pairing.approvedPeers() };
  }

  #save(): void {
    this.#store.scheduleSave(() => this.#fileData());
  }

  /** Writes pending state now (approvals must be on disk before a peer is told). */
  flush(): Promise<void> {
    return this.#store.flush();
  }
}
