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
import { codedErrors, type BuilderError } from "../../errors.ts";
import type { IncomingMessage } from "node:http";
import WebSocket from "ws";
import { getLogger } from "../../logger.ts";
import { pinSha256 } from "./fingerprint.ts";
import {
  APP_FRAME_MAX_BYTES,
  CONTROL_FRAME_MAX_BYTES,
  HANDSHAKE_STEP_MS,
  intentResponseSchema,
  msg1Schema,
  type IntentResponse,
} from "./messages.ts";
import type { PeerLinkFrame } from "./messages.ts";
import { NoiseHandshake, type CipherState, type TransportCiphers } from "./noise.ts";

const log = getLogger("peer-link");

export const PEER_LINK_ERROR_CODES = [
  "timeout",
  "unreachable",
  "transport_error",
  "pin_mismatch",
  "malformed_frame",
  "closed",
] as const;
export type PeerLinkErrorCode = (typeof PEER_LINK_ERROR_CODES)[number];

/** A PeerLinkError failure: a \`BuilderError\` with one of \`PEER_LINK_ERROR_CODES\`. */
export type PeerLinkError = BuilderError<PeerLinkErrorCode>;
export const { error: peerLinkError, is: isPeerLinkError } = codedErrors(PEER_LINK_ERROR_CODES);

/** A sender waits (`drained`) while more than this is queued on the socket… */
export const DRAIN_HIGH_WATER_BYTES = 2 * 1024 * 1024;
/** …and goes on once it is down to this. */
export const DRAIN_LOW_WATER_BYTES = 512 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

function encodeJson(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

/** Decodes a JSON object; anything else (bad UTF-8, bad JSON, an array) is malformed. */
export function decodeJsonObject(bytes: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch {
    throw peerLinkError("malformed_frame", "frame is not JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw peerLinkError("malformed_frame", "frame is not a JSON object");
  }
  return value as Record<string, unknown>;
}

/** Decodes a JSON object, or gives `fallback` for anything else (empty, bad UTF-8, bad JSON, not an object). */
function decodeJsonObjectOr(bytes: Uint8Array, fallback: Record<string, unknown>): Record<string, unknown> {
  try {
    return decodeJsonObject(bytes);
  } catch {
    return fallback;
  }
}

/**
 * Before the intent is answered a peer has nothing to say beyond its
 * handshake messages (each read as it arrives). Frames it sends anyway wait
 * unread, at most this many…
 */
export const PRE_ANSWER_MAX_FRAMES = 4;
/** …holding at most this many bytes together; more ends the connection as `malformed_frame`. */
export const PRE_ANSWER_MAX_BYTES = CONTROL_FRAME_MAX_BYTES;
/** After a hang-up, how long the peer gets to answer the close before the socket is destroyed. */
const HANG_UP_GRACE_MS = 1000;

/**
 * Ends a socket from our side: a close frame, then nothing more is read (a
 * flooding peer meets TCP back-pressure, not our CPU), and the socket is
 * destroyed if the peer does not answer the close in time.
 */
export function hangUp(ws: WebSocket, reason: string): void {
  if (ws.readyState === WebSocket.CLOSED) return;
  if (ws.readyState === WebSocket.OPEN) ws.close(1000, reason.slice(0, 100));
  ws.pause();
  setTimeout(() => { ws.terminate(); }, HANG_UP_GRACE_MS).unref();
}

/**
 * Frames of one socket, read in order: frames that arrive before anyone waits
 * are kept (within the pre-answer bounds); `next` waits at most `ms`. A peer
 * that sends more than the bounds allow is cut off through `onOverflow`, and
 * everything it sends after that is dropped unread.
 */
class Inbox {
  readonly #frames: { data: Buffer; binary: boolean }[] = [];
  #queuedBytes = 0;
  #waiter: ((f: { data: Buffer; binary: boolean } | null) => void) | null = null;
  #closed = false;
  #overflowed = false;
  #onOverflow: () => void;
  #onFrame: ((data: Buffer, binary: boolean) => void) | null = null;

  constructor(ws: WebSocket) {
    this.#onOverflow = () => { hangUp(ws, "malformed_frame"); };
    ws.on("message", (data: WebSocket.RawData, binary: boolean) => {
      const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      if (this.#onFrame !== null) {
        this.#onFrame(buf, binary);
        return;
      }
      const frame = { data: buf, binary };
      if (this.#waiter !== null) {
        const w = this.#waiter;
        this.#waiter = null;
        w(frame);
        return;
      }
      if (this.#overflowed) return;
      if (this.#frames.length >= PRE_ANSWER_MAX_FRAMES || this.#queuedBytes + buf.length > PRE_ANSWER_MAX_BYTES) {
        this.#overflowed = true;
        this.#frames.length = 0;
        this.#queuedBytes = 0;
        log.debug(`peer-link peer sent more than ${PRE_ANSWER_MAX_FRAMES} frames or ${PRE_ANSWER_MAX_BYTES} bytes before its intent was answered; cut off`);
        this.#onOverflow();
        return;
      }
      this.#frames.push(frame);
      this.#queuedBytes += buf.length;
    });
    ws.on("close", () => {
      this.#closed = true;
      const w = this.#waiter;
      this.#waiter = null;
      w?.(null);
    });
    // A protocol error (oversize frame, bad opcode) closes the socket; an
    // unhandled 'error' event would take the whole process down.
    ws.on("error", (err) => {
      log.debug(`peer-link socket error: ${err.message}`);
      ws.terminate();
    });
  }

  /** Replaces what happens when the peer overruns the pre-answer bounds (default: hang up). */
  onOverflow(handler: () => void): void {
    this.#onOverflow = handler;
  }

  next(ms: number, step: string): Promise<{ data: Buffer; binary: boolean }> {
    if (this.#overflowed) return Promise.reject(peerLinkError("malformed_frame", `too much data before ${step}`));
    const ready = this.#frames.shift();
    if (ready !== undefined) {
      this.#queuedBytes -= ready.data.length;
      return Promise.resolve(ready);
    }
    if (this.#closed) return Promise.reject(peerLinkError("closed", `connection closed before ${step}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiter = null;
        reject(peerLinkError("timeout", `timed out after ${ms} ms waiting for ${step}`));
      }, ms);
      this.#waiter = (frame) => {
        clearTimeout(timer);
        if (frame === null) reject(peerLinkError("closed", `connection closed before ${step}`));
        else resolve(frame);
      };
    });
  }

  /** From now on, frames go straight to `handler` (after the queued ones); the pre-answer bounds no longer apply. */
  handOff(handler: (data: Buffer, binary: boolean) => void): void {
    for (const f of this.#frames.splice(0)) handler(f.data, f.binary);
    this.#queuedBytes = 0;
    this.#onFrame = handler;
  }
}

function requireBinary(frame: { data: Buffer; binary: boolean }, max: number, step: string): Buffer {
  if (!frame.binary) throw peerLinkError("malformed_frame", `${step} was not a binary frame`);
  if (frame.data.length > max) throw peerLinkError("malformed_frame", `${step} is ${frame.data.length} bytes (limit ${max})`);
  return frame.data;
}

export type ChannelCloseHandler = (reason: string, detail: string) => void;

/**
 * An established, encrypted session over one WebSocket. Sends are synchronous
 * (Noise nonces advance in send order); inbound frames over 60 KiB, not
 * binary, undecryptable or not a JSON object end the channel as
 * `malformed_frame`. `Out` is what this side may send (a role's outbound
 * union from messages.ts; either direction's frames by default).
 */
export class SecureChannel<Out extends { type: string } = PeerLinkFrame> {
  readonly remoteStaticKey: Uint8Array;
  readonly remotePin: string;
  readonly remoteAddress: string;
  readonly #ws: WebSocket;
  readonly #send: CipherState;
  readonly #receive: CipherState;
  #onMessage: ((msg: Record<string, unknown>) => void) | null = null;
  #onRawFrame: ((plain: Buffer) => boolean) | null = null;
  readonly #closeHandlers: ChannelCloseHandler[] = [];
  #closed = false;
  #queued = 0;
  readonly #drainWaiters: (() => void)[] = [];
  #closeReason = "peer_hung_up";
  #closeDetail = "";

  constructor(ws: WebSocket, inbox: Inbox, ciphers: { send: CipherState; receive: CipherState }, remoteStaticKey: Uint8Array, remoteAddress: string) {
    this.#ws = ws;
    this.#send = ciphers.send;
    this.#receive = ciphers.receive;
    this.remoteStaticKey = remoteStaticKey;
    this.remotePin = pinSha256(remoteStaticKey);
    this.remoteAddress = remoteAddress;
    ws.on("close", () => {
      this.#finish();
    });
    ws.on("error", (err) => {
      this.#closeReason = "transport_error";
      this.#closeDetail = err.message;
    });
    inbox.handOff((data, binary) => {
      this.#receiveFrame(data, binary);
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Starts delivering decrypted messages (frames received before are delivered now). */
  onMessage(handler: (msg: Record<string, unknown>) => void): void {
    this.#onMessage = handler;
    for (const msg of this.#early.splice(0)) handler(msg);
  }

  readonly #early: Record<string, unknown>[] = [];

  /**
   * A fast way for frames of big transfers: once messages are delivered,
   * each decrypted frame goes to `hook` first, and only when it returns false
   * is it parsed as JSON and handed to the message handler. The hook must
   * take a frame only when the general way would do exactly the same with it.
   */
  onRawFrame(hook: (plain: Buffer) => boolean): void {
    this.#onRawFrame = hook;
  }

  onClose(handler: ChannelCloseHandler): void {
    if (this.#closed) handler(this.#closeReason, this.#closeDetail);
    else this.#closeHandlers.push(handler);
  }

  /** Encrypts and sends one message; false when the channel is closed or the send failed. */
  send(message: Out): boolean {
    return this.sendEncoded(encodeJson(message));
  }

  /**
   * Encrypts and sends one message already encoded as a JSON object's UTF-8
   * bytes (the chunk frames of big transfers are built without JSON.stringify).
   */
  sendEncoded(json: Uint8Array): boolean {
    if (this.#closed || this.#ws.readyState !== WebSocket.OPEN) return false;
    try {
      const frame = this.#send.encrypt(json);
      const size = frame.length;
      // Counted before the send: ws always calls back later, never from inside send().
      this.#queued += size;
      try {
        this.#ws.send(frame, () => {
          this.#queued -= size;
          if (this.#queued <= DRAIN_LOW_WATER_BYTES) this.#wakeDrainWaiters();
        });
      } catch (err) {
        this.#queued -= size;
        throw err;
      }
      return true;
    } catch (err) {
      log.debug(`send failed: ${String(err)}`);
      return false;
    }
  }

  /** Bytes handed to the socket and not yet written to the kernel. */
  get bufferedAmount(): number {
    return this.#queued;
  }

  /**
   * Resolves at once while at most `DRAIN_HIGH_WATER_BYTES` wait to be
   * written; otherwise once the socket has written them down to
   * `DRAIN_LOW_WATER_BYTES`, or the channel closes. Big transfers await it
   * before each chunk, so a sender holds a bounded amount in memory and goes
   * on the moment the socket has room, without polling.
   */
  drained(): Promise<void> {
    if (this.#closed || this.#queued <= DRAIN_HIGH_WATER_BYTES) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  #wakeDrainWaiters(): void {
    for (const wake of this.#drainWaiters.splice(0)) wake();
  }

  /** Sends `terminate {reason}` (when it can) and closes. */
  terminate(reason: string, detail = ""): void {
    if (this.#closed) return;
    this.sendEncoded(encodeJson({ type: "terminate", reason }));
    this.close(reason, detail);
  }

  /** Closes without a terminate frame; handlers get `reason`. */
  close(reason: string, detail = ""): void {
    if (this.#closed) return;
    this.#closeReason = reason;
    this.#closeDetail = detail;
    this.#ws.close(1000, reason.slice(0, 100));
    // Do not wait for the peer's close frame: the session is over for us now.
    setTimeout(() => { this.#ws.terminate(); }, 1000).unref();
    this.#finish();
  }

  /** Marks why the peer ended the session (from its `terminate`), before the socket closes. */
  peerTerminated(reason: string): void {
    this.close(reason, "closed by peer");
  }

  #finish(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#wakeDrainWaiters();
    for (const handler of this.#closeHandlers.splice(0)) {
      try {
        handler(this.#closeReason, this.#closeDetail);
      } catch (err) {
        log.error(`close handler threw: ${String(err)}`);
      }
    }
  }

  #receiveFrame(data: Buffer, binary: boolean): void {
    if (this.#closed) return;
    let message: Record<string, unknown>;
    try {
      if (!binary) throw peerLinkError("malformed_frame", "text frame on the peer link");
      if (data.length > APP_FRAME_MAX_BYTES) throw peerLinkError("malformed_frame", `frame of ${data.length} bytes (limit ${APP_FRAME_MAX_BYTES})`);
      let plain: Uint8Array;
      try {
        plain = this.#receive.decrypt(data);
      } catch {
        throw peerLinkError("malformed_frame", "frame did not decrypt");
      }
      if (this.#onMessage !== null && this.#onRawFrame !== null && this.#onRawFrame(Buffer.from(plain.buffer, plain.byteOffset, plain.byteLength))) return;
      message = decodeJsonObject(plain);
    } catch (err) {
      this.terminate("malformed_frame", (err as Error).message);
      return;
    }
    if (this.#onMessage === null) this.#early.push(message);
    else this.#onMessage(message);
  }
}

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

function formatHost(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

/** Opens a WebSocket to a receiver and runs the handshake for one intent. */
export async function initiate(opts: InitiateOptions): Promise<Initiated> {
  const stepMs = opts.stepTimeoutMs ?? HANDSHAKE_STEP_MS;
  const url = `ws://${formatHost(opts.host)}:${opts.port}/remote-build/peer-link`;
  const ws = new WebSocket(url, { maxPayload: CONTROL_FRAME_MAX_BYTES, handshakeTimeout: stepMs, perMessageDeflate: false });
  ws.binaryType = "nodebuffer";
  const inbox = new Inbox(ws);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { reject(peerLinkError("timeout", `no connection to ${opts.host}:${opts.port} within ${stepMs} ms`)); }, stepMs);
      ws.once("open", () => { clearTimeout(timer); resolve(); });
      ws.once("error", (err) => { clearTimeout(timer); reject(peerLinkError("unreachable", `cannot reach ${opts.host}:${opts.port}: ${err.message}`)); });
      ws.once("unexpected-response", (_req, res) => {
        clearTimeout(timer);
        reject(peerLinkError("unreachable", `${opts.host}:${opts.port} answered HTTP ${res.statusCode}; is it an ESPHome builder's peer-link port?`));
      });
    });
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
    if (ciphers !== null && ws.readyState === WebSocket.OPEN) ws.send(ciphers.send.encrypt(encodeJson({ type: "terminate", reason: "malformed_frame" })));
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
