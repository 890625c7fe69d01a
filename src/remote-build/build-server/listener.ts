/**
 * The build server's peer-link listener: binds the port, runs the Noise
 * handshake of each connection and answers its intent (`preview`,
 * `pair_request`, `pair_status`, `peer_link`) from the pairing book; a
 * `peer_link` of an approved peer becomes a session.
 *
 * Connect-back: intent `connect_back` goes to our offloader role's answer
 * (`answerConnectBack`), and while the build server is off the listener may
 * be bound for that alone (offloader-only mode: every other intent is
 * `rejected`/`bad_intent`).
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocketServer, type WebSocket } from "ws";
import type { VersionPolicy } from "../../domain/policy.ts";
import { errorMessage } from "../../errors.ts";
import { getLogger } from "../../logger.ts";
import { type SecureChannel } from "../transport/channel.ts";
import { accept } from "../transport/handshake.ts";
import type { Identity } from "../transport/identity.ts";
import { CONTROL_FRAME_MAX_BYTES, PEER_LINK_PATH, dashboardIdPayloadSchema, pairRequestSchema, peerLinkPayloadSchema } from "../transport/messages.ts";
import type { IntentAnswer, PairingBook } from "./pairing.ts";
import type { PeerSessions } from "./sessions.ts";

const log = getLogger("receiver");

export interface ListenerDeps {
  host: string;
  port: number;
  stepTimeoutMs: number;
  /** This builder's key now (undefined before start: connections are dropped). */
  identity: () => Identity | undefined;
  label: () => string;
  esphomeVersion: () => string | null;
  autoProvisionSupported: () => boolean;
  versionPolicy: () => VersionPolicy;
  /** Running as the Home Assistant add-on (`ha_addon` in every answer). */
  haAddon: boolean;
  /** `--remote-build-only`: previews say `requires_pairing_key` (newer upstream). */
  requiresPairingKey: boolean;
  pairing: PairingBook;
  sessions: PeerSessions;
  /** The build server is on; off, the listener is bound only for connect-back (offloader-only mode). */
  buildServerOn: () => boolean;
  /** Answers intent `connect_back` (our offloader role); without it the intent is `bad_intent`. */
  answerConnectBack?: (pin: string, remoteAddress: string, payload: Record<string, unknown>) => Promise<IntentAnswer>;
}

export class PeerLinkListener {
  readonly #deps: ListenerDeps;
  #server: http.Server | undefined;
  #wss: WebSocketServer | undefined;
  #port: number | null = null;
  /** A bind under way: concurrent callers (the build server switch, each connect-back session loop) share it. */
  #binding: Promise<void> | null = null;

  constructor(deps: ListenerDeps) {
    this.#deps = deps;
  }

  /** The bound port, or null while unbound. */
  get port(): number | null {
    return this.#port;
  }

  /** Binds the port once; concurrent callers share one attempt. */
  bind(): Promise<void> {
    if (this.#server !== undefined) return Promise.resolve();
    this.#binding ??= this.#listen().finally(() => { this.#binding = null; });
    return this.#binding;
  }

  async #listen(): Promise<void> {
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
    log.info(`${this.#deps.buildServerOn() ? "build server" : "peer-link listener (connect-back only)"} listening on ${this.#deps.host}:${this.#port}`);
  }

  /** Ends every session with `reason`, drops every connection and closes the port. */
  async unbind(reason: string): Promise<void> {
    await this.#binding?.catch(() => undefined);
    this.#deps.sessions.terminateAll(reason);
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
    const identity = this.#deps.identity();
    if (identity === undefined) {
      ws.terminate();
      return;
    }
    let accepted;
    try {
      accepted = await accept(ws, req, { staticPrivateKey: identity.privateKey, stepTimeoutMs: this.#deps.stepTimeoutMs });
    } catch (err) {
      log.debug(`handshake from ${req.socket.remoteAddress ?? "?"} failed: ${errorMessage(err)}`);
      ws.terminate();
      return;
    }
    const { pairing, sessions } = this.#deps;
    const esphomeVersion = this.#deps.esphomeVersion() ?? "";
    const additions = {
      friendly_name: this.#deps.label(),
      ha_addon: this.#deps.haAddon,
      reset_build_env_supported: true,
      auto_provision_supported: this.#deps.autoProvisionSupported(),
      // Ours only (others ignore it): lets a sending builder skip this build server when its policy would refuse the job.
      version_policy: this.#deps.versionPolicy(),
      // Newer upstream: a headless build server's previews say it pairs only with its printed key.
      ...(accepted.intent === "preview" && this.#deps.requiresPairingKey ? { requires_pairing_key: true } : {}),
    };
    // Upstream's key order: intent_response, esphome_version, reason; then the additions.
    const reply = ({ intent_response, ...rest }: IntentAnswer): SecureChannel =>
      accepted.respond({ intent_response, esphome_version: esphomeVersion, ...rest, ...additions });
    const done = (response: IntentAnswer): void => { reply(response).close("done"); };
    const ip = accepted.remoteAddress.replace(/^::ffff:/, "");
    if (accepted.intent === "connect_back" && this.#deps.answerConnectBack !== undefined) {
      const answer = await this.#deps.answerConnectBack(accepted.remotePin, accepted.remoteAddress, accepted.payload);
      if (ws.readyState === ws.OPEN) done(answer);
      return;
    }
    // Offloader-only mode (build server off, bound for connect-back): nothing else is served.
    if (!this.#deps.buildServerOn()) {
      done({ intent_response: "rejected", reason: "bad_intent" });
      return;
    }
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
        const response = await pairing.pairRequest(parsed.data, accepted.remotePin, accepted.remoteStaticKey, ip);
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
        const response = await pairing.pairStatus(parsed.data.dashboard_id, accepted.remotePin, ws);
        if (ws.readyState !== ws.OPEN) return;
        if (response === null) accepted.hangUp("pair_status time limit");
        else done(response);
        return;
      }
      case "peer_link": {
        const parsed = peerLinkPayloadSchema.safeParse(accepted.payload);
        if (!parsed.success) {
          done({ intent_response: "rejected", reason: "bad_dashboard_id" });
          return;
        }
        const id = parsed.data.dashboard_id;
        const peer = pairing.approved(id);
        if (peer === undefined) {
          done(pairing.isPending(id) ? { intent_response: "pending", reason: "pending_not_approved" } : { intent_response: "rejected", reason: "no_approved_peer" });
          return;
        }
        if (peer.pin_sha256 !== accepted.remotePin) {
          done({ intent_response: "rejected", reason: "pin_mismatch" });
          return;
        }
        pairing.seenAt(peer, ip);
        pairing.announcedConnectBackPort(peer, parsed.data.connect_back_port);
        sessions.open(peer, reply({ intent_response: "ok" }));
        return;
      }
      default:
        done({ intent_response: "rejected", reason: "bad_intent" });
    }
  }
}
