/**
 * The build-server role ("receiver"): the peer-link listener, pairing with
 * human approval, and compiling for approved offloaders on this builder's own
 * queue. The receiver only ever compiles; flashing is always the offloader's.
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
import type { PeerSummary, ReceiverSettings } from "../api/wire.ts";
import { BuilderError, ErrorCode, errorMessage, notFound } from "../errors.ts";
import type { EventBus, Unsubscribe } from "../events.ts";
import { validateConfigurationName } from "../esphome/configuration.ts";
import type { FirmwareJob } from "../firmware/job.ts";
import type { FirmwareQueue } from "../firmware/queue.ts";
import { getLogger } from "../logger.ts";
import { resolvePaths, type Paths } from "../paths.ts";
import { JsonStore } from "../store.ts";
import { packArtifacts } from "./artifacts.ts";
import { bundleDirFor, cleanupRemoteBuilds, extractBundle } from "./bundle.ts";
import { accept, type SecureChannel } from "./channel.ts";
import { OutputRelay } from "./output-relay.ts";
import { AssemblyError, BUNDLE_MAX_BYTES, ChunkAssembler, chunkCount, sendChunks } from "./chunks.ts";
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

const log = getLogger("receiver");

export const PAIRING_WINDOW_MS = 300_000;
/** Bundles and build caches of peers are deleted after a day without use. */
export const REMOTE_BUILDS_TTL_MS = 24 * 60 * 60 * 1000;
const CLEANUP_INTERVAL_MS = 60 * 60 * 1000;
/** Pending pairing requests kept at most (oldest dropped first). */
export const MAX_PENDING = 16;

const storedPeerSchema = z.object({
  dashboard_id: z.string().max(64),
  pin_sha256: z.string().regex(/^[0-9a-f]{64}$/),
  public_key: z.string().max(64),
  label: z.string().max(128),
  friendly_name: z.string().max(128).default(""),
  peer_ip: z.string().max(64).default(""),
  paired_at: z.string(),
});
export type StoredPeer = z.infer<typeof storedPeerSchema>;

const receiverFileSchema = z.object({
  enabled: z.boolean(),
  peers: z.array(storedPeerSchema),
});
type ReceiverFile = z.infer<typeof receiverFileSchema>;



export interface ReceiverTimings {
  pairingWindowMs: number;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  stepTimeoutMs: number;
  remoteBuildsTtlMs: number;
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

interface InflightSubmit {
  header: ReceiverInbound["submit_job"];
  assembler: ChunkAssembler;
}

interface Session {
  readonly peer: StoredPeer;
  readonly channel: SecureChannel;
  submit: InflightSubmit | null;
  downloading: boolean;
  lastPong: number;
  nonce: number;
  heartbeat: NodeJS.Timeout | undefined;
  /** Extractions run one at a time per peer. */
  extracting: Promise<void>;
  /** Offloader job ids whose bundle is still being extracted, and whether a cancel came for them. */
  readonly pendingJobs: Map<string, { cancelled: boolean }>;
}

export class Receiver {
  readonly #deps: ReceiverDeps;
  readonly #timings: ReceiverTimings;
  readonly #now: () => number;
  readonly #store: JsonStore<ReceiverFile>;
  #enabled = false;
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
  /** Output of peers' jobs, back to them with a bounded backlog. */
  readonly #output = new OutputRelay({
    target: (jobId) => {
      const job = this.#deps.queue.get(jobId);
      return job === undefined || job.remote_peer === "" ? null : { peer: job.remote_peer, remoteJobId: job.remote_job_id };
    },
    channel: (peer) => this.#sessions.get(peer)?.channel,
  });
  /** Long polls waiting on a dashboard_id's status. */
  readonly #statusWaiters = new Map<string, Set<() => void>>();

  constructor(deps: ReceiverDeps) {
    this.#deps = deps;
    this.#timings = {
      pairingWindowMs: PAIRING_WINDOW_MS,
      heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS,
      heartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS,
      stepTimeoutMs: 10_000,
      remoteBuildsTtlMs: REMOTE_BUILDS_TTL_MS,
      ...deps.timings,
    };
    this.#now = deps.now ?? Date.now;
    this.#store = new JsonStore({ file: deps.paths.receiverFile, schema: receiverFileSchema, mode: 0o600, debounceMs: 50 });
  }

  async start(): Promise<void> {
    const loaded = await this.#store.load();
    this.#enabled = loaded.kind === "ok" ? loaded.value.enabled : this.#deps.defaultEnabled;
    if (loaded.kind === "ok") for (const peer of loaded.value.peers) this.#approved.set(peer.dashboard_id, peer);
    this.#identity = await this.#deps.identity.load();
    const { bus } = this.#deps;
    this.#unsubscribe.push(
      bus.on("queue_status_changed", (status) => {
        for (const session of this.#sessions.values()) session.channel.send({ type: "queue_status", ...status });
      }),
      bus.on("job_started", ({ job }) => { this.#fanOut(job, "running"); }),
      bus.on("job_completed", ({ job }) => { this.#fanOut(job, "completed"); }),
      bus.on("job_failed", ({ job }) => { this.#fanOut(job, "failed"); }),
      bus.on("job_cancelled", ({ job }) => { this.#fanOut(job, "cancelled"); }),
      bus.on("job_output", ({ job_id, line }) => { this.#output.line(job_id, line); }),
    );
    if (this.#enabled) await this.#bind();
    await this.cleanup();
    this.#cleanupTimer = setInterval(() => { void this.cleanup(); }, CLEANUP_INTERVAL_MS);
    this.#cleanupTimer.unref();
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
    this.#output.clear();
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
      pairing_window_open: expires !== null,
      expires_in_seconds: expires,
      peers: this.peers(),
    };
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
    if (waiters !== undefined) for (const wake of [...waiters]) wake();
  }

  // ---- approve / remove ----

  approve(dashboardId: string): PeerSummary {
    const pending = this.#pending.get(dashboardId);
    if (pending === undefined) throw notFound(`No pending pairing request from ${dashboardId}`);
    this.#pending.delete(dashboardId);
    const peer: StoredPeer = {
      dashboard_id: pending.dashboard_id,
      pin_sha256: pending.pin_sha256,
      public_key: pending.public_key,
      label: pending.label,
      friendly_name: pending.friendly_name,
      peer_ip: pending.peer_ip,
      paired_at: new Date(this.#now()).toISOString(),
    };
    this.#approved.set(dashboardId, peer);
    this.#save();
    this.#statusChanged(dashboardId, "approved");
    return { dashboard_id: peer.dashboard_id, pin_sha256: peer.pin_sha256, label: peer.label, status: "approved", peer_ip: peer.peer_ip, connected: false };
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

  #save(): void {
    this.#store.scheduleSave(() => ({ enabled: this.#enabled, peers: [...this.#approved.values()] }));
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
    const base = { esphome_version: this.#deps.esphomeVersion() ?? "", friendly_name: this.#deps.label(), ha_addon: false };
    const reply = (response: Record<string, unknown>): SecureChannel => accepted.respond({ ...response, ...base });
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
        done(this.#pairRequest(parsed.data, accepted.remotePin, accepted.remoteStaticKey, ip));
        return;
      }
      case "pair_status": {
        const parsed = dashboardIdPayloadSchema.safeParse(accepted.payload);
        if (!parsed.success) {
          done({ intent_response: "rejected", reason: "bad_dashboard_id" });
          return;
        }
        const response = await this.#pairStatus(parsed.data.dashboard_id, accepted.remotePin, ws);
        if (ws.readyState === ws.OPEN) done(response);
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

  #pairRequest(req: z.infer<typeof pairRequestSchema>, pin: string, key: Uint8Array, ip: string): Record<string, unknown> {
    const approved = this.#approved.get(req.dashboard_id);
    if (approved !== undefined) {
      return approved.pin_sha256 === pin ? { intent_response: "approved" } : { intent_response: "rejected", reason: "pin_mismatch" };
    }
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
    const pending: PendingPeer = {
      dashboard_id: req.dashboard_id,
      pin_sha256: pin,
      public_key: Buffer.from(key).toString("base64"),
      label: req.label || req.friendly_name || "unnamed builder",
      friendly_name: req.friendly_name,
      peer_ip: ip,
      requested_at: this.#now(),
    };
    this.#pending.set(req.dashboard_id, pending);
    this.#deps.bus.emit("remote_build_pair_request_received", {
      dashboard_id: pending.dashboard_id,
      pin_sha256: pending.pin_sha256,
      label: pending.label,
      peer_ip: pending.peer_ip,
    });
    return { intent_response: "pending" };
  }

  /** Answers at once unless the request is pending; then waits until it is approved or removed. */
  async #pairStatus(dashboardId: string, pin: string, ws: WebSocket): Promise<Record<string, unknown>> {
    for (;;) {
      const approved = this.#approved.get(dashboardId);
      if (approved !== undefined) {
        return approved.pin_sha256 === pin ? { intent_response: "approved" } : { intent_response: "rejected", reason: "pin_mismatch" };
      }
      const pending = this.#pending.get(dashboardId);
      if (pending === undefined) return { intent_response: "rejected", reason: "no_approved_peer" };
      if (pending.pin_sha256 !== pin) return { intent_response: "rejected", reason: "pin_mismatch" };
      await new Promise<void>((resolve) => {
        const waiters = this.#statusWaiters.get(dashboardId) ?? new Set<() => void>();
        this.#statusWaiters.set(dashboardId, waiters);
        const wake = (): void => {
          waiters.delete(wake);
          if (waiters.size === 0) this.#statusWaiters.delete(dashboardId);
          ws.off("close", wake);
          resolve();
        };
        waiters.add(wake);
        ws.once("close", wake);
      });
      if (ws.readyState !== ws.OPEN) return { intent_response: "rejected" };
    }
  }

  // ---- sessions ----

  #openSession(peer: StoredPeer, channel: SecureChannel): void {
    const previous = this.#sessions.get(peer.dashboard_id);
    const session: Session = {
      peer,
      channel,
      submit: null,
      downloading: false,
      lastPong: this.#now(),
      nonce: 0,
      heartbeat: undefined,
      extracting: Promise.resolve(),
      pendingJobs: new Map(),
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
    channel.send({ type: "queue_status", ...this.#deps.queue.status() });
    this.#deps.bus.emit("remote_build_peer_session_changed", { dashboard_id: peer.dashboard_id, connected: true, reason: "" });
  }

  #onMessage(session: Session, raw: Record<string, unknown>): void {
    const parsed = parseMessage(receiverInbound, raw);
    if (parsed.kind === "unknown") {
      log.debug(`ignoring unknown message type ${JSON.stringify(parsed.type.slice(0, 40))}`);
      return;
    }
    if (parsed.kind === "malformed") {
      if (parsed.type === "submit_job" && typeof raw.job_id === "string" && raw.job_id.length <= 64) {
        session.channel.send({ type: "submit_job_ack", job_id: raw.job_id, accepted: false, reason: "invalid_header" });
      }
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
        this.#submitHeader(session, parsed.message as ReceiverInbound["submit_job"]);
        return;
      case "submit_job_chunk":
        this.#submitChunk(session, parsed.message as ReceiverInbound["submit_job_chunk"]);
        return;
      case "cancel_job":
        this.#cancel(session, (parsed.message as ReceiverInbound["cancel_job"]).job_id);
        return;
      case "download_artifacts": {
        const m = parsed.message as ReceiverInbound["download_artifacts"];
        void this.#download(session, m.job_id, m.files === undefined ? undefined : new Set(m.files));
        return;
      }
    }
  }

  #ack(session: Session, jobId: string, reason?: string): void {
    session.channel.send(reason === undefined ? { type: "submit_job_ack", job_id: jobId, accepted: true } : { type: "submit_job_ack", job_id: jobId, accepted: false, reason });
  }

  #submitHeader(session: Session, header: ReceiverInbound["submit_job"]): void {
    if (session.submit !== null || session.pendingJobs.has(header.job_id)) {
      this.#ack(session, header.job_id, "duplicate_submit");
      return;
    }
    if (header.target === "upload") {
      this.#ack(session, header.job_id, "upload_unsupported");
      return;
    }
    if (header.target !== "compile" && header.target !== "clean") {
      this.#ack(session, header.job_id, "invalid_header");
      return;
    }
    try {
      validateConfigurationName(header.configuration_filename);
    } catch {
      this.#ack(session, header.job_id, "invalid_header");
      return;
    }
    try {
      const assembler = new ChunkAssembler({
        totalBytes: header.total_bundle_bytes,
        numChunks: header.num_chunks,
        sha256Hex: header.bundle_sha256,
        maxBytes: BUNDLE_MAX_BYTES,
      });
      session.submit = { header, assembler };
    } catch (err) {
      this.#ack(session, header.job_id, err instanceof AssemblyError ? err.code : "invalid_header");
    }
  }

  #submitChunk(session: Session, chunk: ReceiverInbound["submit_job_chunk"]): void {
    const inflight = session.submit;
    if (inflight === null) {
      this.#ack(session, chunk.job_id, "no_inflight_submit");
      return;
    }
    if (inflight.header.job_id !== chunk.job_id) {
      this.#ack(session, chunk.job_id, "job_id_mismatch");
      return;
    }
    let bundle: Buffer | null;
    try {
      bundle = inflight.assembler.push(chunk);
    } catch (err) {
      session.submit = null;
      const code = err instanceof AssemblyError ? err.code : "invalid_header";
      this.#ack(session, chunk.job_id, code);
      if (code === "out_of_order" || code === "post_completion" || code === "chunk_count_mismatch") {
        session.channel.terminate("malformed_frame", `bundle chunk: ${code}`);
      }
      return;
    }
    if (bundle === null) return;
    session.submit = null;
    const { header } = inflight;
    this.#ack(session, header.job_id);
    const state = { cancelled: false };
    session.pendingJobs.set(header.job_id, state);
    session.extracting = session.extracting.then(() => this.#startRemoteJob(session, header, bundle, state));
  }

  async #startRemoteJob(session: Session, header: ReceiverInbound["submit_job"], bundle: Buffer, state: { cancelled: boolean }): Promise<void> {
    const fail = (message: string): void => {
      session.channel.send({ type: "job_state_changed", job_id: header.job_id, status: "failed", error_message: message });
    };
    try {
      const stem = header.configuration_filename.replace(/\.ya?ml$/i, "");
      const dir = bundleDirFor(this.#deps.paths.remoteBuildsDir, session.peer.dashboard_id, stem);
      const extracted = await extractBundle(bundle, dir);
      if (state.cancelled) {
        session.channel.send({ type: "job_state_changed", job_id: header.job_id, status: "cancelled", error_message: "cancelled before the build started" });
        return;
      }
      const configuration = path.relative(this.#deps.paths.remoteBuildsDir, path.join(dir, extracted.configuration)).split(path.sep).join("/");
      await this.#deps.queue.enqueue({
        configuration,
        job_type: header.target === "clean" ? "clean" : "compile",
        remote_peer: session.peer.dashboard_id,
        remote_job_id: header.job_id,
        remote_peer_label: session.peer.label,
      });
    } catch (err) {
      fail(`receiver could not process the bundle: ${errorMessage(err)}`);
    } finally {
      session.pendingJobs.delete(header.job_id);
    }
  }

  #findRemoteJob(dashboardId: string, remoteJobId: string): FirmwareJob | undefined {
    return this.#deps.queue.list().find((j) => j.remote_peer === dashboardId && j.remote_job_id === remoteJobId);
  }

  #cancel(session: Session, remoteJobId: string): void {
    const pending = session.pendingJobs.get(remoteJobId);
    if (pending !== undefined) {
      pending.cancelled = true;
      return;
    }
    if (session.submit?.header.job_id === remoteJobId) {
      session.submit = null;
      session.channel.send({ type: "job_state_changed", job_id: remoteJobId, status: "cancelled", error_message: "cancelled before the build started" });
      return;
    }
    const job = this.#findRemoteJob(session.peer.dashboard_id, remoteJobId);
    if (job === undefined || job.status === "completed" || job.status === "failed" || job.status === "cancelled") return;
    try {
      this.#deps.queue.cancel(job.job_id);
    } catch (err) {
      log.debug(`cancel of ${remoteJobId} ignored: ${errorMessage(err)}`);
    }
  }

  #fanOut(job: FirmwareJob, status: "running" | "completed" | "failed" | "cancelled"): void {
    if (status !== "running") this.#output.end(job.job_id);
    if (job.remote_peer === "") return;
    const session = this.#sessions.get(job.remote_peer);
    if (session === undefined) return;
    const error = status === "failed" || status === "cancelled" ? (job.error ?? "") : "";
    session.channel.send({ type: "job_state_changed", job_id: job.remote_job_id, status, error_message: error });
  }

  async #download(session: Session, remoteJobId: string, only: ReadonlySet<string> | undefined): Promise<void> {
    const end = (reason?: string): void => {
      session.channel.send(reason === undefined ? { type: "artifacts_end", job_id: remoteJobId, accepted: true } : { type: "artifacts_end", job_id: remoteJobId, accepted: false, reason });
    };
    if (session.downloading) {
      end("duplicate_download");
      return;
    }
    const job = this.#findRemoteJob(session.peer.dashboard_id, remoteJobId);
    if (job === undefined) {
      end("unknown_job");
      return;
    }
    if (job.status !== "completed" || job.job_type !== "compile") {
      end("job_not_completed");
      return;
    }
    session.downloading = true;
    try {
      const yaml = this.#deps.paths.jobYaml(job);
      const jobPaths = resolvePaths({ configDir: path.dirname(yaml), dataDir: this.#deps.paths.jobDataDir(job) });
      let packed;
      try {
        packed = await packArtifacts(jobPaths, path.basename(yaml), only === undefined ? {} : { only });
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        end(code === "build_dir_missing" ? "build_dir_missing" : "pack_failed");
        return;
      }
      session.channel.send({
        type: "artifacts_start",
        job_id: remoteJobId,
        total_bytes: packed.tarball.length,
        num_chunks: chunkCount(packed.tarball.length),
        artifacts_sha256: packed.sha256,
        firmware_offset: packed.firmwareOffset,
      });
      if (await sendChunks(session.channel, "artifacts_chunk", remoteJobId, packed.tarball)) end();
    } finally {
      session.downloading = false;
    }
  }
}
