/**
 * The build server's pairing book: the approved peers (kept in receiver.json
 * by the receiver), the pending requests (memory only, bounded), the pairing
 * window (one share per panel client) and the `pair_status` long polls
 * waiting on a pending request.
 *
 * Trust: a peer is identified by its Noise static key (its pin). A known
 * dashboard_id presenting a different key is refused, never re-keyed.
 *
 * A headless build server (`--remote-build-only`) has a second way in: while
 * its printed key is armed (pairing-key.ts), a pair request pairs only with
 * that key, approved at once without a pending row.
 */
import type { WebSocket } from "ws";
import { z } from "zod";
import type { PeerSummary } from "../../domain/remote-build.ts";
import { BuilderError, ErrorCode, errorMessage, notFound } from "../../errors.ts";
import type { EventBus } from "../../events.ts";
import { getLogger } from "../../logger.ts";
import { hangUp } from "../transport/socket-frames.ts";
import { pinSchema } from "../transport/fingerprint.ts";
import type { pairRequestSchema } from "../transport/messages.ts";
import type { PairingKeyWindow } from "./pairing-key.ts";

const log = getLogger("receiver");

export const PAIRING_WINDOW_MS = 300_000;
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

export const storedPeerSchema = z.object({
  dashboard_id: z.string().max(64),
  pin_sha256: pinSchema,
  public_key: z.string().max(64),
  label: z.string().max(128),
  friendly_name: z.string().max(128).default(""),
  peer_ip: z.string().max(64).default(""),
  paired_at: z.string(),
  /** Its own listener port, as its last `peer_link` said (0: never said); connect-back dials peer_ip there. */
  connect_back_port: z.number().int().min(0).max(65535).default(0),
});
export type StoredPeer = z.infer<typeof storedPeerSchema>;

interface PendingPeer {
  dashboard_id: string;
  pin_sha256: string;
  public_key: string;
  label: string;
  friendly_name: string;
  peer_ip: string;
  requested_at: number;
}

/** An intent answer (`intent_response`, maybe `reason`) before the receiver adds its fields. */
export type IntentAnswer = Record<string, unknown>;

export interface PairingDeps {
  bus: EventBus;
  now: () => number;
  pairingWindowMs: number;
  pairStatusMaxWaitMs: number;
  /** The approved peers changed: write them down. */
  save: () => void;
  /** Writes the approved peers now (a pairing by key is on disk before the peer is told). */
  saveNow: () => Promise<void>;
  /** Whether a peer has an open session (for the peer list). */
  connected: (dashboardId: string) => boolean;
  /** `--remote-build-only`: the printed key's window; while armed, the only way to pair. */
  pairingKey?: PairingKeyWindow;
}

export class PairingBook {
  readonly #deps: PairingDeps;
  readonly #approved = new Map<string, StoredPeer>();
  readonly #pending = new Map<string, PendingPeer>();
  readonly #windows = new Map<string, number>();
  #windowTimer: NodeJS.Timeout | undefined;
  /** Long polls waiting on a dashboard_id's status: wake-up, and how to end that poll's connection. */
  readonly #statusWaiters = new Map<string, Map<() => void, () => void>>();

  constructor(deps: PairingDeps) {
    this.#deps = deps;
  }

  /** The approved peers read from receiver.json at start-up. */
  load(peers: readonly StoredPeer[]): void {
    for (const peer of peers) this.#approved.set(peer.dashboard_id, peer);
  }

  /** The approved peers, as receiver.json keeps them. */
  approvedPeers(): StoredPeer[] {
    return [...this.#approved.values()];
  }

  approved(dashboardId: string): StoredPeer | undefined {
    return this.#approved.get(dashboardId);
  }

  isPending(dashboardId: string): boolean {
    return this.#pending.has(dashboardId);
  }

  peers(): PeerSummary[] {
    const rows: PeerSummary[] = [];
    for (const p of this.#pending.values()) {
      rows.push({ dashboard_id: p.dashboard_id, pin_sha256: p.pin_sha256, label: p.label, status: "pending", peer_ip: p.peer_ip, connected: false });
    }
    for (const p of this.#approved.values()) {
      rows.push({ dashboard_id: p.dashboard_id, pin_sha256: p.pin_sha256, label: p.label, status: "approved", peer_ip: p.peer_ip, connected: this.#deps.connected(p.dashboard_id) });
    }
    return rows;
  }

  // ---- pairing window (per panel client) ----

  /** Opens (or extends) or closes the pairing window for one client; it opens only while the build server is on. */
  setWindow(clientId: string, open: boolean, enabled: boolean): { open: boolean; expires_in_seconds: number | null } {
    if (open) {
      if (!enabled) throw new BuilderError(ErrorCode.Unavailable, "Turn the build server on before opening the pairing window");
      this.#windows.set(clientId, this.#deps.now() + this.#deps.pairingWindowMs);
    } else {
      this.#windows.delete(clientId);
    }
    this.#windowChanged();
    const expires = this.windowExpiresIn();
    return { open: expires !== null, expires_in_seconds: expires };
  }

  /** A panel client went away: its window share ends. */
  clientGone(clientId: string): void {
    if (this.#windows.delete(clientId)) this.#windowChanged();
  }

  windowExpiresIn(): number | null {
    const now = this.#deps.now();
    let latest = 0;
    for (const deadline of this.#windows.values()) latest = Math.max(latest, deadline);
    return latest > now ? Math.ceil((latest - now) / 1000) : null;
  }

  #windowChanged(): void {
    const now = this.#deps.now();
    for (const [id, deadline] of this.#windows) if (deadline <= now) this.#windows.delete(id);
    if (this.#windowTimer !== undefined) clearTimeout(this.#windowTimer);
    this.#windowTimer = undefined;
    const expires = this.windowExpiresIn();
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

  /** Closes the window at once (shutdown): pending requests are dropped. */
  closeWindowNow(): void {
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
    this.#deps.save();
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
      paired_at: new Date(this.#deps.now()).toISOString(),
      connect_back_port: 0,
    };
  }

  /**
   * Rejects a pending request or removes an approved peer; `beforeNotify`
   * runs between the removal and the status event (the receiver ends the
   * peer's session there).
   */
  remove(dashboardId: string, beforeNotify: () => void): void {
    const wasPending = this.#pending.delete(dashboardId);
    const wasApproved = this.#approved.delete(dashboardId);
    if (!wasPending && !wasApproved) throw notFound(`No peer ${dashboardId}`);
    if (wasApproved) this.#deps.save();
    beforeNotify();
    this.#statusChanged(dashboardId, "removed");
  }

  /** An approved peer connected from a new address: remember it. */
  seenAt(peer: StoredPeer, ip: string): void {
    if (ip !== "" && peer.peer_ip !== ip) {
      peer.peer_ip = ip;
      this.#deps.save();
    }
  }

  /** Connect-back: the listener port its `peer_link` announced; a missing or 0 port never overwrites the stored one. */
  announcedConnectBackPort(peer: StoredPeer, port: number): void {
    if (port !== 0 && peer.connect_back_port !== port) {
      peer.connect_back_port = port;
      this.#deps.save();
    }
  }

  // ---- the pair_request and pair_status intents ----

  /** The answer to a pair request; null: hang up without one (a pairing by key that could not be stored). */
  async pairRequest(req: z.infer<typeof pairRequestSchema>, pin: string, key: Uint8Array, ip: string): Promise<IntentAnswer | null> {
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
      requested_at: this.#deps.now(),
    };
    // --remote-build-only: while its key is armed, that key is the only way in (no pending rows).
    const gate = this.#deps.pairingKey;
    if (gate?.armed === true) return this.#pairWithKey(gate, request, req.pairing_key);
    if (this.windowExpiresIn() === null) return { intent_response: "no_pairing_window" };
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
  async #pairWithKey(gate: PairingKeyWindow, request: PendingPeer, presented: string | undefined): Promise<IntentAnswer | null> {
    const claim = gate.claim(presented, request.peer_ip);
    if (!claim.ok) {
      log.warning(`refused a pair request from ${request.peer_ip || "?"} (${request.label}): ${claim.refusal}`);
      return { intent_response: "no_pairing_window" };
    }
    const peer = this.#storedPeer(request);
    this.#approved.set(peer.dashboard_id, peer);
    try {
      await this.#deps.saveNow();
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
  async pairStatus(dashboardId: string, pin: string, ws: WebSocket): Promise<IntentAnswer | null> {
    const deadline = this.#deps.now() + this.#deps.pairStatusMaxWaitMs;
    for (;;) {
      const approved = this.#approved.get(dashboardId);
      if (approved !== undefined) {
        return approved.pin_sha256 === pin ? { intent_response: "approved" } : { intent_response: "rejected", reason: "pin_mismatch" };
      }
      const pending = this.#pending.get(dashboardId);
      if (pending === undefined) return { intent_response: "rejected", reason: "no_approved_peer" };
      if (pending.pin_sha256 !== pin) return { intent_response: "rejected", reason: "pin_mismatch" };
      const left = deadline - this.#deps.now();
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
}
