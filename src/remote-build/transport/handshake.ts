/**
 * The peer link's transport: a WebSocket carrying one Noise message per binary
 * frame. `initiate` (offloader) and `accept` (receiver) run the XX handshake
 * with a timeout per step; afterwards a `SecureChannel` sends and receives
 * encrypted JSON objects.
 *
 * The initiator checks the responder's key against the pin it expects after
 * message 2 and before message 3, so nothing it says in message 3 ever reaches
 * an unverified responder.
 */
import type { IncomingMessage } from "node:http";
import type { WebSocket } from "ws";
import { pinSha256 } from "./fingerprint.ts";
import { SecureChannel } from "./channel.ts";
import { PeerLinkClientSocket } from "./client-socket.ts";
import {
  CONTROL_FRAME_MAX_BYTES,
  HANDSHAKE_STEP_MS,
  PEER_LINK_PATH,
  intentResponseSchema,
  msg1Schema,
  type IntentResponse,
} from "./messages.ts";
import { NoiseHandshake, type TransportCiphers } from "./noise.ts";
import { Inbox, SOCKET_STATE, decodeJsonObject, decodeJsonObjectOr, encodeJson, hangUp, isPeerLinkError, peerLinkError, requireBinary } from "./socket-frames.ts";

// ---- offloader side ----

export interface InitiateOptions {
  host: string;
  port: number;
  staticPrivateKey: Uint8Array;
  intent: string;
  /** msg3's JSON payload; null sends it empty, as upstream's offloader does for `preview`. */
  payload: Record<string, unknown> | null;
  /** When set, the responder's key must hash to this pin, checked before msg3. */
  expectedPin?: string | undefined;
  stepTimeoutMs?: number;
}

export interface Initiated {
  channel: SecureChannel;
  response: IntentResponse;
}

/** Opens a WebSocket to a receiver and runs the handshake for one intent. */
export async function initiate(opts: InitiateOptions): Promise<Initiated> {
  const stepMs = opts.stepTimeoutMs ?? HANDSHAKE_STEP_MS;
  // After the handshake the channel's own limit (APP_FRAME_MAX_BYTES, below this) applies.
  const ws = new PeerLinkClientSocket({ host: opts.host, port: opts.port, path: PEER_LINK_PATH, maxPayload: CONTROL_FRAME_MAX_BYTES, timeoutMs: stepMs });
  const inbox = new Inbox(ws);
  try {
    await ws.open();
    const hs = NoiseHandshake.initiator(opts.staticPrivateKey);
    ws.send(hs.writeMessage(encodeJson({ intent: opts.intent })));
    const msg2 = requireBinary(await inbox.next(stepMs, "handshake message 2"), CONTROL_FRAME_MAX_BYTES, "handshake message 2");
    try {
      hs.readMessage(msg2);
    } catch (err) {
      throw peerLinkError("malformed_frame", `handshake message 2 rejected: ${(err as Error).message}`);
    }
    const remote = hs.remoteStaticPublicKey;
    if (remote === null) throw peerLinkError("malformed_frame", "responder sent no static key");
    const observed = pinSha256(remote);
    if (opts.expectedPin !== undefined && observed !== opts.expectedPin) {
      throw peerLinkError("pin_mismatch", `the build server's key changed: expected pin ${opts.expectedPin}, got ${observed}`, { detail: observed });
    }
    ws.send(opts.payload === null ? hs.writeMessage() : hs.writeMessage(encodeJson(opts.payload)));
    const ciphers = hs.split();
    const frame = requireBinary(await inbox.next(stepMs, "the intent response"), CONTROL_FRAME_MAX_BYTES, "the intent response");
    let plain: Uint8Array;
    try {
      plain = ciphers.receive.decrypt(frame);
    } catch {
      throw peerLinkError("malformed_frame", "intent response did not decrypt");
    }
    const parsed = intentResponseSchema.safeParse(decodeJsonObject(plain));
    if (!parsed.success) throw peerLinkError("malformed_frame", "intent response is missing intent_response");
    const channel = new SecureChannel(ws, inbox, ciphers, remote, opts.host);
    return { channel, response: parsed.data };
  } catch (err) {
    ws.terminate();
    if (isPeerLinkError(err)) throw err;
    throw peerLinkError("transport_error", (err as Error).message);
  }
}

// ---- receiver side ----

export interface Accepted {
  /** msg1's intent; "" when msg1 named none (empty, not a JSON object, no string intent). */
  intent: string;
  /** msg3's decoded JSON object (`{}` when it was empty or not an object). */
  payload: Record<string, unknown>;
  remoteStaticKey: Uint8Array;
  remotePin: string;
  remoteAddress: string;
  /** Sends the intent response and returns the channel (close it unless the session goes on). */
  respond(response: Record<string, unknown>): SecureChannel;
  /** Ends the connection without an intent response (the peer may ask again). */
  hangUp(reason: string): void;
}

/**
 * Runs the responder side of the handshake on a freshly upgraded socket.
 * Until `respond`, a peer sending more than the pre-answer bounds is sent
 * `terminate {malformed_frame}` (once the transport keys exist) and cut off;
 * a waiting caller sees the socket close.
 */
export async function accept(ws: WebSocket, req: IncomingMessage, opts: { staticPrivateKey: Uint8Array; stepTimeoutMs?: number }): Promise<Accepted> {
  const stepMs = opts.stepTimeoutMs ?? HANDSHAKE_STEP_MS;
  const inbox = new Inbox(ws);
  let ciphers: TransportCiphers | null = null;
  inbox.onOverflow(() => {
    // The first transport frame we send is the intent response, so a terminate can still take its place.
    if (ciphers !== null && ws.readyState === SOCKET_STATE.OPEN) ws.send(ciphers.send.encrypt(encodeJson({ type: "terminate", reason: "malformed_frame" })));
    hangUp(ws, "malformed_frame");
  });
  const hs = NoiseHandshake.responder(opts.staticPrivateKey);
  const msg1 = requireBinary(await inbox.next(stepMs, "handshake message 1"), CONTROL_FRAME_MAX_BYTES, "handshake message 1");
  let first: Uint8Array;
  try {
    first = hs.readMessage(msg1);
  } catch (err) {
    throw peerLinkError("malformed_frame", `handshake message 1 rejected: ${(err as Error).message}`);
  }
  // Upstream's rule (WIRE-FACTS §2): an empty msg1, one that is not a JSON object or has no
  // string intent still completes the handshake and is answered `rejected/bad_intent`.
  const intent = msg1Schema.safeParse(decodeJsonObjectOr(first, {}));
  ws.send(hs.writeMessage());
  const msg3 = requireBinary(await inbox.next(stepMs, "handshake message 3"), CONTROL_FRAME_MAX_BYTES, "handshake message 3");
  let plain: Uint8Array;
  try {
    plain = hs.readMessage(msg3);
  } catch (err) {
    throw peerLinkError("malformed_frame", `handshake message 3 rejected: ${(err as Error).message}`);
  }
  // A msg3 that is empty or not a JSON object reads as `{}` (upstream's rule).
  const payload = decodeJsonObjectOr(plain, {});
  const remote = hs.remoteStaticPublicKey;
  if (remote === null) throw peerLinkError("malformed_frame", "initiator sent no static key");
  const split = hs.split();
  ciphers = split;
  const remoteAddress = req.socket.remoteAddress ?? "";
  return {
    intent: intent.success ? intent.data.intent : "",
    payload,
    remoteStaticKey: remote,
    remotePin: pinSha256(remote),
    remoteAddress,
    respond: (response) => {
      ws.send(split.send.encrypt(encodeJson(response)));
      return new SecureChannel(ws, inbox, split, remote, remoteAddress);
    },
    hangUp: (reason) => { hangUp(ws, reason); },
  };
}
