/**
 * The offloader's connection loops, one per pairing: a pending pairing
 * long-polls `pair_status` until the build server's user decides; an
 * approved one keeps a `peer_link` session open, reconnecting with backoff,
 * and stops for good after a reason that needs a new pairing.
 */
import type { OffloaderAlert } from "../../domain/remote-build.ts";
import { errorMessage } from "../../errors.ts";
import type { EventBus } from "../../events.ts";
import { getLogger } from "../../logger.ts";
import { Backoff } from "../transport/backoff.ts";
import { type SecureChannel } from "../transport/channel.ts";
import { initiate } from "../transport/handshake.ts";
import { isPeerLinkError } from "../transport/socket-frames.ts";
import type { Identity } from "../transport/identity.ts";
import { offloaderInbound, parseMessage, type IntentResponse, type OffloaderOutbound } from "../transport/messages.ts";
import type { PairingState } from "./pairings-store.ts";
import { PeerSession } from "./peer-session.ts";

const log = getLogger("offloader");

/** Reasons after which a session is not reopened: the pairing is dead until re-paired. */
const ORPHAN_REASONS = new Set(["superseded", "pin_mismatch", "no_approved_peer", "revoked"]);
/** A pending pairing whose build server could not be reached asks again after this long (the answer itself is a long poll). */
const PENDING_RETRY_MS = 2000;

export interface SessionLoopTimings {
  stepTimeoutMs: number;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  submitAckTimeoutMs: number;
}

export interface SessionLoopDeps {
  bus: EventBus;
  timings: SessionLoopTimings;
  label: () => string;
  /** Running as the Home Assistant add-on (`ha_addon` in what it tells build servers). */
  haAddon: boolean;
  /**
   * Connect-back: binds (if needed) this builder's own peer-link listener and
   * gives its port, announced in each `peer_link` msg3; null: not bound, not announced.
   */
  connectBackPort?: () => Promise<number | null>;
  /** This builder's key (throws while not started). */
  identity: () => Identity;
  /** The offloader stopped: every loop ends. */
  stopped: () => boolean;
  /** offloader.json must be written (a pairing was approved or its build server's versions changed). */
  save: () => void;
  /** A pairing's summary changed. */
  changed: (state: PairingState) => void;
  alert: (state: PairingState, kind: OffloaderAlert["kind"], observedPin: string | null, message: string) => void;
  /** The build server refused a pending pairing: it is gone. */
  refused: (state: PairingState, reason: string) => void;
}

export class SessionLoops {
  readonly #deps: SessionLoopDeps;

  constructor(deps: SessionLoopDeps) {
    this.#deps = deps;
  }

  /** Whether the pairing's loop should go on (read through a call: it changes while we await). */
  #alive(state: PairingState): boolean {
    return state.running && !this.#deps.stopped();
  }

  /** Waits `ms`, or less when the pairing is stopped meanwhile. */
  #sleep(state: PairingState, ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => { resolve(); }, ms);
      state.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Long-polls `pair_status` until the build server's user decides. */
  async pending(state: PairingState): Promise<void> {
    const identity = this.#deps.identity();
    const { timings } = this.#deps;
    while (this.#alive(state)) {
      try {
        const { channel, response } = await initiate({
          host: state.stored.receiver_hostname,
          port: state.stored.receiver_port,
          staticPrivateKey: identity.privateKey,
          intent: "pair_status",
          expectedPin: state.stored.pin_sha256,
          payload: { dashboard_id: identity.dashboard_id, friendly_name: this.#deps.label(), ha_addon: this.#deps.haAddon },
          stepTimeoutMs: timings.stepTimeoutMs,
        });
        // The answer to a pending request comes only when the build server's user acts.
        channel.close("done");
        if (!this.#alive(state)) return;
        if (response.intent_response === "approved") {
          state.status = "approved";
          this.#deps.save();
          this.#deps.changed(state);
          void this.session(state);
          return;
        }
        state.running = false;
        this.#deps.refused(state, response.reason ?? response.intent_response);
        return;
      } catch (err) {
        if (isPeerLinkError(err) && err.code === "timeout") continue;
        state.lastError = errorMessage(err);
        this.#deps.changed(state);
        await this.#sleep(state, PENDING_RETRY_MS);
      }
    }
  }

  /** Keeps a session with an approved pairing's build server open until the pairing stops. */
  async session(state: PairingState): Promise<void> {
    const { timings } = this.#deps;
    const backoff = new Backoff({ initialMs: timings.backoffInitialMs, maxMs: timings.backoffMaxMs });
    while (this.#alive(state)) {
      const identity = this.#deps.identity();
      let reason = "transport_error";
      try {
        const connectBackPort = (await this.#deps.connectBackPort?.()) ?? null;
        const { channel, response } = await initiate({
          host: state.stored.receiver_hostname,
          port: state.stored.receiver_port,
          staticPrivateKey: identity.privateKey,
          intent: "peer_link",
          expectedPin: state.stored.pin_sha256,
          payload: { dashboard_id: identity.dashboard_id, friendly_name: this.#deps.label(), ha_addon: this.#deps.haAddon, ...(connectBackPort === null ? {} : { connect_back_port: connectBackPort }) },
          stepTimeoutMs: timings.stepTimeoutMs,
        });
        if (response.intent_response !== "ok") {
          channel.close("done");
          reason = response.reason ?? response.intent_response;
          state.lastError = `the build server refused the session (${reason})`;
          if (reason === "no_approved_peer" || reason === "pin_mismatch") {
            this.#deps.alert(state, "peer_revoked", null, `${state.stored.label} no longer accepts this builder; pair again`);
          }
        } else if (!this.#alive(state)) {
          channel.terminate("client_stopped");
          return;
        } else {
          backoff.reset();
          reason = await this.#run(state, channel, response);
        }
      } catch (err) {
        if (isPeerLinkError(err) && err.code === "pin_mismatch") {
          reason = "pin_mismatch";
          this.#deps.alert(state, "pin_mismatch", err.detail, `${state.stored.label} now presents a different key. If its identity was rotated, pair again after comparing the new fingerprint; otherwise something else is answering at ${state.stored.receiver_hostname}:${state.stored.receiver_port}.`);
        }
        state.lastError = errorMessage(err);
      }
      if (reason === "revoked") this.#deps.alert(state, "peer_revoked", null, `${state.stored.label} removed this builder; pair again to build there`);
      this.#deps.changed(state);
      if (ORPHAN_REASONS.has(reason)) {
        log.warning(`session with ${state.stored.label} ended (${reason}); not reconnecting until paired again`);
        state.running = false;
        return;
      }
      if (!this.#alive(state)) return;
      await this.#sleep(state, backoff.next());
    }
  }

  /** Runs one open session until it ends; returns why it ended. */
  #run(state: PairingState, channel: SecureChannel<OffloaderOutbound>, response: IntentResponse): Promise<string> {
    const { bus, timings } = this.#deps;
    const pin = state.stored.pin_sha256;
    const session = new PeerSession(pin, channel, response, bus, timings.submitAckTimeoutMs);
    state.session = session;
    state.lastError = "";
    // What it says of its ESPHome now decides which builds may go there (the scheduler reads the stored pairing).
    const s = state.stored;
    const version = response.esphome_version === "" ? s.esphome_version : response.esphome_version;
    if (version !== s.esphome_version || response.auto_provision_supported !== s.auto_provision_supported || response.version_policy !== s.version_policy) {
      s.esphome_version = version;
      s.auto_provision_supported = response.auto_provision_supported;
      s.version_policy = response.version_policy;
      this.#deps.save();
    }
    let nonce = 0;
    const heartbeat = setInterval(() => {
      if (Date.now() - session.lastPong > timings.heartbeatTimeoutMs) {
        channel.terminate("heartbeat_timeout");
        return;
      }
      if (!channel.send({ type: "ping", nonce: ++nonce })) channel.close("transport_error", "ping could not be sent");
    }, timings.heartbeatIntervalMs);
    heartbeat.unref();
    return new Promise<string>((resolve) => {
      channel.onClose((reason, detail) => {
        clearInterval(heartbeat);
        state.session = null;
        session.closed(reason, detail);
        if (reason !== "client_stopped") state.lastError = detail === "" ? reason : `${reason}: ${detail}`;
        bus.emit("offloader_peer_link_closed", {
          pin_sha256: pin,
          receiver_hostname: state.stored.receiver_hostname,
          receiver_port: state.stored.receiver_port,
          reason,
          error_detail: detail,
        });
        resolve(reason);
      });
      channel.onRawFrame((plain) => session.takeChunkFrame(plain));
      channel.onMessage((raw) => {
        const parsed = parseMessage(offloaderInbound, raw);
        if (parsed.kind === "unknown") return;
        // Upstream's parse policy (WIRE-FACTS §8): a known frame with a bad shape is dropped, the session stays.
        if (parsed.kind === "malformed") {
          log.info(`dropped a malformed ${parsed.type} frame from ${state.stored.label}: ${parsed.error.slice(0, 200)}`);
          return;
        }
        session.handle(parsed.type, parsed.message);
        if (parsed.type === "queue_status") this.#deps.changed(state);
      });
      bus.emit("offloader_peer_link_opened", {
        pin_sha256: pin,
        receiver_hostname: state.stored.receiver_hostname,
        receiver_port: state.stored.receiver_port,
        esphome_version: response.esphome_version,
      });
      this.#deps.changed(state);
    });
  }
}
