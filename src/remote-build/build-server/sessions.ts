/**
 * The build server's open sessions with approved offloaders: one per
 * dashboard_id (a newer one supersedes), a heartbeat each, and every inbound
 * frame checked and dispatched to `PeerJobs`.
 */
import type { QueueStatus } from "../../domain/job.ts";
import type { EventBus } from "../../events.ts";
import { getLogger } from "../../logger.ts";
import type { SecureChannel } from "../transport/channel.ts";
import { parseMessage, receiverInbound, type BuildServerOutbound, type ReceiverInbound } from "../transport/messages.ts";
import type { StoredPeer } from "./pairing.ts";
import { newJobSession, type JobSession, type PeerJobs } from "./peer-jobs.ts";

const log = getLogger("receiver");

/** `queue_status` as upstream sends it: `running` is a boolean (a compile is executing). */
export function queueStatusFrame(status: QueueStatus): BuildServerOutbound & { type: "queue_status" } {
  return { type: "queue_status", idle: status.idle, running: status.running > 0, queue_depth: status.queue_depth };
}

export interface Session extends JobSession {
  readonly peer: StoredPeer;
  lastPong: number;
  nonce: number;
  heartbeat: NodeJS.Timeout | undefined;
}

export interface SessionsDeps {
  bus: EventBus;
  now: () => number;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  /** The compile lane now (sent when a session opens). */
  queueStatus: () => QueueStatus;
  /** Where job frames go; set once the receiver has built it. */
  jobs: () => PeerJobs;
}

export class PeerSessions {
  readonly #deps: SessionsDeps;
  readonly #sessions = new Map<string, Session>();

  constructor(deps: SessionsDeps) {
    this.#deps = deps;
  }

  has(dashboardId: string): boolean {
    return this.#sessions.has(dashboardId);
  }

  /** Ends the session of one dashboard_id, if open. */
  terminate(dashboardId: string, reason: string): void {
    this.#sessions.get(dashboardId)?.channel.terminate(reason);
  }

  /** Ends every session (the listener is going away). */
  terminateAll(reason: string): void {
    for (const session of [...this.#sessions.values()]) session.channel.terminate(reason);
    this.#sessions.clear();
  }

  /** Sends a frame to every open session. */
  broadcast(frame: BuildServerOutbound): void {
    for (const session of this.#sessions.values()) session.channel.send(frame);
  }

  /** The open sessions of one peer (one per dashboard_id it is approved under). */
  sessionsOf(peerPin: string): Session[] {
    return [...this.#sessions.values()].filter((s) => s.peer.pin_sha256 === peerPin);
  }

  open(peer: StoredPeer, channel: SecureChannel<BuildServerOutbound>): void {
    const previous = this.#sessions.get(peer.dashboard_id);
    const session: Session = {
      peer,
      channel,
      ...newJobSession(),
      lastPong: this.#deps.now(),
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
      if (this.#deps.now() - session.lastPong > this.#deps.heartbeatTimeoutMs) {
        channel.terminate("heartbeat_timeout");
        return;
      }
      if (!channel.send({ type: "ping", nonce: ++session.nonce })) channel.close("transport_error", "ping could not be sent");
    }, this.#deps.heartbeatIntervalMs);
    session.heartbeat.unref();
    channel.send(queueStatusFrame(this.#deps.queueStatus()));
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
    const jobs = this.#deps.jobs();
    switch (parsed.type) {
      case "ping":
        channel.send({ type: "pong", nonce: (parsed.message as ReceiverInbound["ping"]).nonce });
        return;
      case "pong":
        session.lastPong = this.#deps.now();
        return;
      case "terminate":
        channel.peerTerminated((parsed.message as ReceiverInbound["terminate"]).reason);
        return;
      case "submit_job":
        jobs.submitHeader(session, parsed.message as ReceiverInbound["submit_job"]);
        return;
      case "submit_job_chunk":
        jobs.submitChunk(session, parsed.message as ReceiverInbound["submit_job_chunk"]);
        return;
      case "cancel_job":
        jobs.cancel(session, (parsed.message as ReceiverInbound["cancel_job"]).job_id);
        return;
      case "download_artifacts": {
        const m = parsed.message as ReceiverInbound["download_artifacts"];
        void jobs.download(session, m.job_id, m.files === undefined ? undefined : new Set(m.files));
        return;
      }
      case "reset_build_env":
        void jobs.resetBuildEnv(session, (parsed.message as ReceiverInbound["reset_build_env"]).job_id);
        return;
    }
  }
}
