/**
 * The build-server role ("receiver"): the peer-link listener, pairing with
 * human approval, sessions with approved offloaders, and (through
 * `PeerJobs`) compiling for them on this builder's own queue. The receiver
 * only ever compiles; flashing is always the offloader's.
 *
 * Trust: a peer is identified by its Noise static key (its pin). Pending
 * requests live in memory only, bounded; only approved peers are written down.
 * A known dashboard_id presenting a different key is refused, never re-keyed.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { WebSocketServer, type WebSocket } from "ws";
import { z } from "zod";
import { VERSION_POLICIES, type PeerSummary, type QueueStatus, type ReceiverSettings, type RemoteBuildProblem, type VersionPolicy } from "../api/wire.ts";
import { resolveExecutable } from "../esphome/cli.ts";
import { isVersionPolicy, serveVersion, type ServeDecision } from "../esphome/version-policy.ts";
import { BuilderError, ErrorCode, errorMessage, notFound } from "../errors.ts";
import type { EventBus, Unsubscribe } from "../events.ts";
import type { FirmwareQueue } from "../firmware/queue.ts";
import { getLogger } from "../logger.ts";
import type { Paths } from "../paths.ts";
import { JsonStore } from "../store.ts";
import { cleanupRemoteBuilds } from "./bundle.ts";
import { accept, hangUp, type SecureChannel } from "./channel.ts";
import { pinSchema } from "./fingerprint.ts";
import type { Identity, IdentityStore } from "./identity.ts";
import {
  CONTROL_FRAME_MAX_BYTES,
  HEARTBEAT_INTERVAL_MS,
  HEARTBEAT_TIMEOUT_MS,
  PEER_LINK_PATH,
  dashboardIdPayloadSchema,
  pairRequestSchema,
  parseMessage,
  receiverInbound,
  type ReceiverInbound,
} from "./messages.ts";
import type { PairingKeyWindow } from "./build-server/pairing-key.ts";
import { newJobSession, PeerJobs, type JobSession } from "./peer-jobs.ts";
import { looseFileSchema, rowName, StateFileReport, type LooseFile } from "./state-files.ts";

const log = getLogger("receiver");

/** `queue_status` as upstream sends it: `running` is a boolean (a compile is executing). */
export function queueStatusFrame(status: QueueStatus): Record<string, unknown> {
  return { type: "queue_status", idle: status.idle, running: status.running > 0, queue_depth: status.queue_depth };
}

export const PAIRING_WINDOW_MS = 300_000;
/** Bundles and build caches of peers are deleted after a day without use. */
export const REMOTE_BUILDS_TTL_MS = 24 * 60 * 60 * 1000;
const CLEANUP_INTERVAL_MS = 60 * 60 * 1000;
/** Pending pairing requests kept at most (oldest dropped first). */
export const MAX_PENDING = 16;
/**
 * A `pair_status` long poll waits at most this long, then the connection is
 * closed without an answer (as when a handshake read times out); offloaders
 * simply ask again.
 */
export const PAIR_STATUS_MAX_WAIT_MS = PAIRING_WINDOW_MS;
/** Long polls waiting on one pending request at most; a newer one hangs up the oldest. */
export const MAX_STATUS_WAITERS_PER_REQUEST = 4;

const storedPeerSchema = z.object({
  dashboard_id: z.string().max(64),
  pin_sha256: pinSchema,
  public_key: z.string().max(64),
  label: z.string().max(128),
  friendly_name: z.string().max(128).default(""),
  peer_ip: z.string().max(64).default(""),
  paired_at: z.string(),
});
export type StoredPeer = z.infer<typeof storedPeerSchema>;



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
   * window's key is armed a pair request pairs only with it (see `#pairWithKey`).
   */
  pairingKey?: PairingKeyWindow;
  timings?: Partial<ReceiverTimings>;
  now?: () => number;
}

interface PendingPeer {
  dashboard_id: string;
  pin_sha256: string;
  public_key: string;
  label: string;
  friendly_name: string;
  peer_ip: string;
  requested_at: number;
}

interface Session extends JobSession {
  readonly peer: StoredPeer;
  lastPong: number;
  nonce: number;
  heartbeat: NodeJS.Timeout | undefined;
}

export class Receiver {
  readonly #deps: ReceiverDeps;
  readonly #timings: ReceiverTimings;
  readonly #now: () => number;
  readonly #store: JsonStore<LooseFile>;
  readonly #jobs: PeerJobs;
  /** What could not be read of receiver.json at start-up. */
  readonly problems: RemoteBuildProblem[] = [];
  #enabled = false;
  #versionPolicy: VersionPolicy = "any";
  #ccache = false;
  readonly #approved = new Map<string, StoredPeer>();
  readonly #pending = new Map<string, PendingPeer>();
  readonly #sessions = new Map<string, Session>();
  readonly #windows = new Map<string, number>();
  #windowTimer: NodeJS.Timeout | undefined;
  #identity: Identity | undefined;
  #server: http.Server | undefined;
  #wss: WebSocketServer | undefined;
  #port: number | null = null;
  #cleanupTimer: NodeJS.Timeout | undefined;
  readonly #unsubscribe: Unsubscribe[] = [];
  /** Long polls waiting on a dashboard_id's status: wake-up, and how to end that poll's connection. */
  readonly #statusWaiters = new Map<string, Map<() => void, () => void>>();

  constructor(deps: ReceiverDeps) {
    this.#deps = deps;
    this.#timings = {
      pairingWindowMs: PAIRING_WINDOW_MS,
      heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS,
      heartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS,
      stepTimeoutMs: 10_000,
      remoteBuildsTtlMs: REMOTE_BUILDS_TTL_MS,
      pairStatusMaxWaitMs: PAIR_STATUS_MAX_WAIT_MS,
      ...deps.timings,
    };
    this.#now = deps.now ?? Date.now;
    this.#store = new JsonStore({ file: deps.paths.receiverFile, schema: looseFileSchema, mode: 0o600, debounceMs: 50 });
    this.#jobs = new PeerJobs({ queue: deps.queue, paths: deps.paths, sessionsOf: (pin) => this.#sessionsOf(pin), serve: (target) => this.serve(target) });
  }

  async start(): Promise<void> {
    await this.#load();
    // ESPHome wraps compiles with a ccache it finds on PATH (host, ESP-IDF and PlatformIO builds alike).
    this.#ccache = (await resolveExecutable("ccache")) !== null;
    if (this.#ccache) log.info("ccache is on PATH: ESPHome caches compiled objects between builds");
    this.#identity = await this.#deps.identity.load();
    const { bus } = this.#deps;
    this.#unsubscribe.push(
      bus.on("queue_status_changed", (status) => {
        for (const session of this.#sessions.values()) session.channel.send(queueStatusFrame(status));
      }),
      bus.on("job_queued", ({ job }) => { this.#jobs.jobStateChanged(job, "queued"); }),
      bus.on("job_started", ({ job }) => { this.#jobs.jobStateChanged(job, "running"); }),
      bus.on("job_completed", ({ job }) => { this.#jobs.jobStateChanged(job, "completed"); }),
      bus.on("job_failed", ({ job }) => { this.#jobs.jobStateChanged(job, "failed"); }),
      bus.on("job_cancelled", ({ job }) => { this.#jobs.jobStateChanged(job, "cancelled"); }),
      bus.on("job_output", ({ job_id, line }) => { this.#jobs.jobOutput(job_id, line); }),
    );
    if (this.#enabled) await this.#bind();
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
      for (const peer of peers) this.#approved.set(peer.dashboard_id, peer);
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
    this.#closeWindowNow();
    await this.#unbind("server_shutting_down");
    await this.#store.flush();
  }

  /** The bound peer-link port, or null while the receiver is off. */
  get port(): number | null {
    return this.#port;
  }

  get enabled(): boolean {
    return this.#enabled;
  }

  /** Turns the receiver on or off now: binds or unbinds the listener. */
  async setEnabled(enabled: boolean): Promise<void> {
    if (enabled === this.#enabled) return;
    this.#enabled = enabled;
    this.#save();
    if (enabled) await this.#bind();
    else await this.#unbind("server_shutting_down");
    this.#deps.bus.emit("remote_build_receiver_changed", { enabled, peer_link_port: this.#port });
  }

  /** Identity changed (rotation): rebuild the listener so new handshakes use the new key. */
  async identityChanged(): Promise<void> {
    this.#identity = await this.#deps.identity.load();
    if (this.#enabled) {
      await this.#unbind("server_shutting_down");
      await this.#bind();
    }
  }

  settings(): ReceiverSettings {
    const expires = this.#windowExpiresIn();
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
    const rows: PeerSummary[] = [];
    for (const p of this.#pending.values()) {
      rows.push({ dashboard_id: p.dashboard_id, pin_sha256: p.pin_sha256, label: p.label, status: "pending", peer_ip: p.peer_ip, connected: false });
    }
    for (const p of this.#approved.values()) {
      rows.push({ dashboard_id: p.dashboard_id, pin_sha256: p.pin_sha256, label: p.label, status: "approved", peer_ip: p.peer_ip, connected: this.#sessions.has(p.dashboard_id) });
    }
    return rows;
  }

  // ---- pairing window (per panel client) ----

  /** Opens (or extends) or closes the pairing window for one client. */
  setPairingWindow(clientId: string, open: boolean): { open: boolean; expires_in_seconds: number | null } {
    if (open) {
      if (!this.#enabled) throw new BuilderError(ErrorCode.Unavailable, "Turn the build server on before opening the pairing window");
      this.#windows.set(clientId, this.#now() + this.#timings.pairingWindowMs);
    } else {
      this.#windows.delete(clientId);
    }
    this.#windowChanged();
    const expires = this.#windowExpiresIn();
    return { open: expires !== null, expires_in_seconds: expires };
  }

  /** A panel client went away: its window share ends. */
  clientGone(clientId: string): void {
    if (this.#windows.delete(clientId)) this.#windowChanged();
  }

  #windowExpiresIn(): number | null {
    const now = this.#now();
    let latest = 0;
    for (const deadline of this.#windows.values()) latest = Math.max(latest, deadline);
    return latest > now ? Math.ceil((latest - now) / 1000) : null;
  }

  #windowChanged(): void {
    const now = this.#now();
    for (const [id, deadline] of this.#windows) if (deadline <= now) this.#windows.delete(id);
    if (this.#windowTimer !== undefined) clearTimeout(this.#windowTimer);
    this.#windowTimer = undefined;
    const expires = this.#windowExpiresIn();
    if (expires === null) {
      this.#clearPending();
    } else {
      let next = Infinity;
      for (const deadline of this.#windows.values()) next = Math.min(next, deadline);
      this.#windowTimer = setTimeout(() => { this.#windowChanged(); }, Math.max(0, next - now) + 5);
      this.#windowTimer.unref();
    }
    this.#deps.bus.emit("remote_build_pairing_window_changed", { open: expires !== null, expires_in_seconds: expires });
  }

  #closeWindowNow(): void {
    this.#windows.clear();
    if (this.#windowTimer !== undefined) clearTimeout(this.#windowTimer);
    this.#windowTimer = undefined;
    this.#clearPending();
  }

  #clearPending(): void {
    for (const id of [...this.#pending.keys()]) {
      this.#pending.delete(id);
      this.#statusChanged(id, "removed");
    }
  }

  #statusChanged(dashboardId: string, status: "approved" | "removed"): void {
    this.#deps.bus.emit("remote_build_pair_status_changed", { dashboard_id: dashboardId, status });
    const waiters = this.#statusWaiters.get(dashboardId);
    if (waiters !== undefined) for (const wake of [...waiters.keys()]) wake();
  }

  // ---- approve / remove ----

  approve(dashboardId: string): PeerSummary {
    const pending = this.#pending.get(dashboardId);
    if (pending === undefined) throw notFound(`No pending pairing request from ${dashboardId}`);
    this.#pending.delete(dashboardId);
    const peer = this.#storedPeer(pending);
    this.#approved.set(dashboardId, peer);
    this.#save();
    this.#statusChanged(dashboardId, "approved");
    return { dashboard_id: peer.dashboard_id, pin_sha256: peer.pin_sha256, label: peer.label, status: "approved", peer_ip: peer.peer_ip, connected: false };
  }

  #storedPeer(pending: PendingPeer): StoredPeer {
    return {
      dashboard_id: pending.dashboard_id,
      pin_sha256: pending.pin_sha256,
      public_key: pending.public_key,
      label: pending.label,
      friendly_name: pending.friendly_name,
      peer_ip: pending.peer_ip,
      paired_at: new Date(this.#now()).toISOString(),
    };
  }

  /** Rejects a pending request or removes an approved peer (its session ends). */
  remove(dashboardId: string): void {
    const wasPending = this.#pending.delete(dashboardId);
    const wasApproved = this.#approved.delete(dashboardId);
    if (!wasPending && !wasApproved) throw notFound(`No peer ${dashboardId}`);
    if (wasApproved) this.#save();
    this.#sessions.get(dashboardId)?.channel.terminate("revoked");
    this.#statusChanged(dashboardId, "removed");
  }

  #fileData(): LooseFile {
    return { enabled: this.#enabled, version_policy: this.#versionPolicy, peers: [...this.#approved.values()] };
  }

  #save(): void {
    this.#store.scheduleSave(() => this.#fileData());
  }

  /** Writes pending state now (approvals must be on disk before a peer is told). */
  flush(): Promise<void> {
    return this.#store.flush();
  }

  // ---- listener ----

  async #bind(): Promise<void> {
    if (this.#server !== undefined) return;
    const wss = new WebSocketServer({ noServer: true, maxPayload: CONTROL_FRAME_MAX_BYTES, perMessageDeflate: false });
    const server = http.createServer((_req, res) => {
      res.writeHead(404, { "Content-Type": "text/plain" }).end("This is an ESPHome builder's peer-link port.\n");
    });
    server.on("upgrade", (req, socket, head) => {
      const pathname = new URL(req.url ?? "/", "http://x").pathname;
      if (pathname !== PEER_LINK_PATH) {
        socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        void this.#handshake(ws, req);
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.#deps.port, this.#deps.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.#server = server;
    this.#wss = wss;
    this.#port = (server.address() as AddressInfo).port;
    log.info(`build server listening on ${this.#deps.host}:${this.#port}`);
  }

  async #unbind(reason: string): Promise<void> {
    for (const session of [...this.#sessions.values()]) session.channel.terminate(reason);
    this.#sessions.clear();
    const server = this.#server;
    const wss = this.#wss;
    this.#server = undefined;
    this.#wss = undefined;
    this.#port = null;
    if (wss !== undefined) {
      for (const client of wss.clients) client.terminate();
      wss.close();
    }
    if (server !== undefined) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => { resolve(); }));
    }
  }

  async #handshake(ws: WebSocket, req: http.IncomingMessage): Promise<void> {
    const identity = this.#identity;
    if (identity === undefined) {
      ws.terminate();
      return;
    }
    let accepted;
    try {
      accepted = await accept(ws, req, { staticPrivateKey: identity.privateKey, stepTimeoutMs: this.#timings.stepTimeoutMs });
    } catch (err) {
      log.debug(`handshake from ${req.socket.remoteAddress ?? "?"} failed: ${errorMessage(err)}`);
      ws.terminate();
      return;
    }
    const esphomeVersion = this.#deps.esphomeVersion() ?? "";
    const additions = {
      friendly_name: this.#deps.label(),
      ha_addon: this.#deps.haAddon ?? false,
      reset_build_env_supported: true,
      auto_provision_supported: this.autoProvisionSupported,
      // Ours only (others ignore it): lets a sending builder skip this build server when its policy would refuse the job.
      version_policy: this.#versionPolicy,
      // Newer upstream: a headless build server's previews say it pairs only with its printed key.
      ...(accepted.intent === "preview" && this.#deps.pairingKey !== undefined ? { requires_pairing_key: true } : {}),
    };
    // Upstream's key order: intent_response, esphome_version, reason; then the additions.
    const reply = ({ intent_response, ...rest }: Record<string, unknown>): SecureChannel =>
      accepted.respond({ intent_response, esphome_version: esphomeVersion, ...rest, ...additions });
    const done = (response: Record<string, unknown>): void => { reply(response).close("done"); };
    const ip = accepted.remoteAddress.replace(/^::ffff:/, "");
    switch (accepted.intent) {
      case "preview":
        done({ intent_response: "ok" });
        return;
      case "pair_request": {
        const parsed = pairRequestSchema.safeParse(accepted.payload);
        if (!parsed.success) {
          done({ intent_response: "rejected", reason: "bad_dashboard_id" });
          return;
        }
        const response = await this.#pairRequest(parsed.data, accepted.remotePin, accepted.remoteStaticKey, ip);
        if (response === null) accepted.hangUp("the pairing could not be stored");
        else done(response);
        return;
      }
      case "pair_status": {
        const parsed = dashboardIdPayloadSchema.safeParse(accepted.payload);
        if (!parsed.success) {
          done({ intent_response: "rejected", reason: "bad_dashboard_id" });
          return;
        }
        const response = await this.#pairStatus(parsed.data.dashboard_id, accepted.remotePin, ws);
        if (ws.readyState !== ws.OPEN) return;
        if (response === null) accepted.hangUp("pair_status time limit");
        else done(response);
        return;
      }
      case "peer_link": {
        const parsed = dashboardIdPayloadSchema.safeParse(accepted.payload);
        if (!parsed.success) {
          done({ intent_response: "rejected", reason: "bad_dashboard_id" });
          return;
        }
        const id = parsed.data.dashboard_id;
        const peer = this.#approved.get(id);
        if (peer === undefined) {
          done(this.#pending.has(id) ? { intent_response: "pending", reason: "pending_not_approved" } : { intent_response: "rejected", reason: "no_approved_peer" });
          return;
        }
        if (peer.pin_sha256 !== accepted.remotePin) {
          done({ intent_response: "rejected", reason: "pin_mismatch" });
          return;
        }
        if (ip !== "" && peer.peer_ip !== ip) {
          peer.peer_ip = ip;
          this.#save();
        }
        this.#openSession(peer, reply({ intent_response: "ok" }));
        return;
      }
      default:
        done({ intent_response: "rejected", reason: "bad_intent" });
    }
  }

  async #pairRequest(req: z.infer<typeof pairRequestSchema>, pin: string, key: Uint8Array, ip: string): Promise<Record<string, unknown> | null> {
    const approved = this.#approved.get(req.dashboard_id);
    if (approved !== undefined) {
      return approved.pin_sha256 === pin ? { intent_response: "approved" } : { intent_response: "rejected", reason: "pin_mismatch" };
    }
    const request: PendingPeer = {
      dashboard_id: req.dashboard_id,
      pin_sha256: pin,
      public_key: Buffer.from(key).toString("base64"),
      label: req.label || req.friendly_name || "unnamed builder",
      friendly_name: req.friendly_name,
      peer_ip: ip,
      requested_at: this.#now(),
    };
    // --remote-build-only: while its key is armed, that key is the only way in (no pending rows).
    const gate = this.#deps.pairingKey;
    if (gate?.armed === true) return this.#pairWithKey(gate, request, req.pairing_key);
    if (this.#windowExpiresIn() === null) return { intent_response: "no_pairing_window" };
    const existing = this.#pending.get(req.dashboard_id);
    if (existing !== undefined && existing.pin_sha256 !== pin) return { intent_response: "rejected", reason: "pin_mismatch" };
    if (existing === undefined && this.#pending.size >= MAX_PENDING) {
      const oldest = [...this.#pending.values()].sort((a, b) => a.requested_at - b.requested_at)[0];
      if (oldest !== undefined) {
        this.#pending.delete(oldest.dashboard_id);
        this.#statusChanged(oldest.dashboard_id, "removed");
      }
    }
    const pending = request;
    this.#pending.set(req.dashboard_id, pending);
    this.#deps.bus.emit("remote_build_pair_request_received", {
      dashboard_id: pending.dashboard_id,
      pin_sha256: pending.pin_sha256,
      label: pending.label,
      peer_ip: pending.peer_ip,
    });
    return { intent_response: "pending" };
  }

  /**
   * The pairing-key path (PairingKeyWindow): the right key from an allowed
   * source approves at once, written to disk before the answer says
   * `approved`, and closes the window. Anything else gets the answer a closed
   * window gets. A write that fails answers nothing (null: hang up) and
   * leaves the key armed.
   */
  async #pairWithKey(gate: PairingKeyWindow, request: PendingPeer, presented: string | undefined): Promise<Record<string, unknown> | null> {
    const claim = gate.claim(presented, request.peer_ip);
    if (!claim.ok) {
      log.warning(`refused a pair request from ${request.peer_ip || "?"} (${request.label}): ${claim.refusal}`);
      return { intent_response: "no_pairing_window" };
    }
    const peer = this.#storedPeer(request);
    this.#approved.set(peer.dashboard_id, peer);
    try {
      await this.#store.saveNow(() => this.#fileData());
    } catch (err) {
      this.#approved.delete(peer.dashboard_id);
      gate.release();
      log.error(`the pairing of ${request.label} could not be stored (${errorMessage(err)}); the key stays valid`);
      return null;
    }
    gate.confirm(peer.dashboard_id);
    log.info(`paired with ${peer.label} (${peer.peer_ip}, pin ${peer.pin_sha256}) by the pairing key; the key is used up`);
    this.#statusChanged(peer.dashboard_id, "approved");
    return { intent_response: "approved" };
  }

  /**
   * Answers at once unless the request is pending; then waits until it is
   * approved or removed, or the connection closes, or the time limit passes
   * (null: hang up without an answer). At most
   * `MAX_STATUS_WAITERS_PER_REQUEST` polls wait on one request: a newer one
   * ends the oldest.
   */
  async #pairStatus(dashboardId: string, pin: string, ws: WebSocket): Promise<Record<string, unknown> | null> {
    const deadline = this.#now() + this.#timings.pairStatusMaxWaitMs;
    for (;;) {
      const approved = this.#approved.get(dashboardId);
      if (approved !== undefined) {
        return approved.pin_sha256 === pin ? { intent_response: "approved" } : { intent_response: "rejected", reason: "pin_mismatch" };
      }
      const pending = this.#pending.get(dashboardId);
      if (pending === undefined) return { intent_response: "rejected", reason: "no_approved_peer" };
      if (pending.pin_sha256 !== pin) return { intent_response: "rejected", reason: "pin_mismatch" };
      const left = deadline - this.#now();
      if (left <= 0) return null;
      const timedOut = await new Promise<boolean>((resolve) => {
        const waiters = this.#statusWaiters.get(dashboardId) ?? new Map<() => void, () => void>();
        this.#statusWaiters.set(dashboardId, waiters);
        const finish = (expired: boolean): void => {
          clearTimeout(timer);
          waiters.delete(wake);
          if (waiters.size === 0) this.#statusWaiters.delete(dashboardId);
          ws.off("close", wake);
          resolve(expired);
        };
        const wake = (): void => { finish(false); };
        const timer = setTimeout(() => { finish(true); }, left);
        waiters.set(wake, () => { hangUp(ws, "a newer pair_status poll"); });
        ws.once("close", wake);
        if (waiters.size > MAX_STATUS_WAITERS_PER_REQUEST) {
          const [oldestWake, endOldest] = waiters.entries().next().value as [() => void, () => void];
          endOldest();
          oldestWake();
        }
      });
      if (ws.readyState !== ws.OPEN) return { intent_response: "rejected" };
      if (timedOut) return null;
    }
  }

  // ---- sessions ----

  #openSession(peer: StoredPeer, channel: SecureChannel): void {
    const previous = this.#sessions.get(peer.dashboard_id);
    const session: Session = {
      peer,
      channel,
      ...newJobSession(),
      lastPong: this.#now(),
      nonce: 0,
      heartbeat: undefined,
    };
    this.#sessions.set(peer.dashboard_id, session);
    previous?.channel.terminate("superseded");
    channel.onMessage((msg) => { this.#onMessage(session, msg); });
    channel.onClose((reason) => {
      if (session.heartbeat !== undefined) clearInterval(session.heartbeat);
      if (this.#sessions.get(peer.dashboard_id) === session) {
        this.#sessions.delete(peer.dashboard_id);
        this.#deps.bus.emit("remote_build_peer_session_changed", { dashboard_id: peer.dashboard_id, connected: false, reason });
      }
    });
    session.heartbeat = setInterval(() => {
      if (this.#now() - session.lastPong > this.#timings.heartbeatTimeoutMs) {
        channel.terminate("heartbeat_timeout");
        return;
      }
      if (!channel.send({ type: "ping", nonce: ++session.nonce })) channel.close("transport_error", "ping could not be sent");
    }, this.#timings.heartbeatIntervalMs);
    session.heartbeat.unref();
    channel.send(queueStatusFrame(this.#deps.queue.status()));
    this.#deps.bus.emit("remote_build_peer_session_changed", { dashboard_id: peer.dashboard_id, connected: true, reason: "" });
  }

  #onMessage(session: Session, raw: Record<string, unknown>): void {
    const parsed = parseMessage(receiverInbound, raw);
    if (parsed.kind === "unknown") {
      log.debug(`ignoring unknown message type ${JSON.stringify(parsed.type.slice(0, 40))}`);
      return;
    }
    if (parsed.kind === "malformed") {
      // Upstream's parse policy (WIRE-FACTS §8): a bad cancel_job is dropped; a bad submit_job or
      // chunk is refused (invalid_header / invalid_chunk) and, like a bad download_artifacts, ends the session.
      if (parsed.type === "cancel_job") {
        log.info(`dropped a malformed cancel_job from ${session.peer.label}: ${parsed.error.slice(0, 200)}`);
        return;
      }
      if (parsed.type === "reset_build_env") {
        const id = typeof raw.job_id === "string" ? raw.job_id.slice(0, 64) : "";
        session.channel.send({ type: "reset_build_env_ack", job_id: id, accepted: false, reason: "invalid_frame" });
      }
      const refusal = parsed.type === "submit_job" ? "invalid_header" : parsed.type === "submit_job_chunk" ? "invalid_chunk" : null;
      if (refusal !== null && typeof raw.job_id === "string" && raw.job_id.length <= 64) {
        session.channel.send({ type: "submit_job_ack", job_id: raw.job_id, accepted: false, reason: refusal });
      }
      if (parsed.type === "submit_job_chunk") session.submit = null;
      session.channel.terminate("malformed_frame", `${parsed.type}: ${parsed.error}`);
      return;
    }
    const { channel } = session;
    switch (parsed.type) {
      case "ping":
        channel.send({ type: "pong", nonce: (parsed.message as ReceiverInbound["ping"]).nonce });
        return;
      case "pong":
        session.lastPong = this.#now();
        return;
      case "terminate":
        channel.peerTerminated((parsed.message as ReceiverInbound["terminate"]).reason);
        return;
      case "submit_job":
        this.#jobs.submitHeader(session, parsed.message as ReceiverInbound["submit_job"]);
        return;
      case "submit_job_chunk":
        this.#jobs.submitChunk(session, parsed.message as ReceiverInbound["submit_job_chunk"]);
        return;
      case "cancel_job":
        this.#jobs.cancel(session, (parsed.message as ReceiverInbound["cancel_job"]).job_id);
        return;
      case "download_artifacts": {
        const m = parsed.message as ReceiverInbound["download_artifacts"];
        void this.#jobs.download(session, m.job_id, m.files === undefined ? undefined : new Set(m.files));
        return;
      }
      case "reset_build_env":
        void this.#jobs.resetBuildEnv(session, (parsed.message as ReceiverInbound["reset_build_env"]).job_id);
        return;
    }
  }

  /** The open sessions of one peer (one per dashboard_id it is approved under). */
  #sessionsOf(peerPin: string): Session[] {
    return [...this.#sessions.values()].filter((s) => s.peer.pin_sha256 === peerPin);
  }
}
