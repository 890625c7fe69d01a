/**
 * The peer link's socket, below the encryption: what a WebSocket must offer
 * the peer link (`FrameSocket`), the peer link's transport error codes, JSON
 * objects as frame payloads, the frames of one WebSocket read in order with
 * the pre-answer bounds (`Inbox`), and hanging up. `handshake.ts` reads the
 * handshake messages from an `Inbox`; a `SecureChannel` (channel.ts) takes it
 * over once the intent is answered.
 */
import { codedErrors, type BuilderError } from "../../errors.ts";
import { getLogger } from "../../logger.ts";
import { CONTROL_FRAME_MAX_BYTES } from "./messages.ts";

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

/** A peer-link transport failure: a `BuilderError` with one of `PEER_LINK_ERROR_CODES`. */
export type PeerLinkError = BuilderError<PeerLinkErrorCode>;
export const { error: peerLinkError, is: isPeerLinkError } = codedErrors(PEER_LINK_ERROR_CODES);

/** WebSocket ready states (the numbers of the WHATWG API, which `ws` uses too). */
export const SOCKET_STATE = { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 } as const;

/**
 * What the peer link needs of a WebSocket: the build server's side is a `ws`
 * socket (its HTTP server upgrades it), the offloader's is a
 * `PeerLinkClientSocket` (client-socket.ts). A message's `data` may be a view
 * into the socket's read buffer, valid only until the listener returns: a
 * listener that keeps it must copy it.
 */
export interface FrameSocket {
  readonly readyState: number;
  send(data: Uint8Array, cb?: (err?: Error) => void): void;
  close(code: number, reason: string): void;
  terminate(): void;
  pause(): void;
  on(event: "message", listener: (data: Buffer, binary: boolean) => void): unknown;
  on(event: "close", listener: () => void): unknown;
  on(event: "error", listener: (err: Error) => void): unknown;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

export function encodeJson(value: unknown): Uint8Array {
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
export function decodeJsonObjectOr(bytes: Uint8Array, fallback: Record<string, unknown>): Record<string, unknown> {
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
export function hangUp(ws: FrameSocket, reason: string): void {
  if (ws.readyState === SOCKET_STATE.CLOSED) return;
  if (ws.readyState === SOCKET_STATE.OPEN) ws.close(1000, reason.slice(0, 100));
  ws.pause();
  setTimeout(() => { ws.terminate(); }, HANG_UP_GRACE_MS).unref();
}

/**
 * Frames of one socket, read in order: frames that arrive before anyone waits
 * are kept (within the pre-answer bounds); `next` waits at most `ms`. A peer
 * that sends more than the bounds allow is cut off through `onOverflow`, and
 * everything it sends after that is dropped unread.
 */
export class Inbox {
  readonly #frames: { data: Buffer; binary: boolean }[] = [];
  #queuedBytes = 0;
  #waiter: ((f: { data: Buffer; binary: boolean } | null) => void) | null = null;
  #closed = false;
  #overflowed = false;
  #onOverflow: () => void;
  #onFrame: ((data: Buffer, binary: boolean) => void) | null = null;

  constructor(ws: FrameSocket) {
    this.#onOverflow = () => { hangUp(ws, "malformed_frame"); };
    ws.on("message", (data: Buffer, binary: boolean) => {
      if (this.#onFrame !== null) {
        this.#onFrame(data, binary);
        return;
      }
      // Read later: a copy, since the socket may reuse the bytes once this returns.
      const buf = Buffer.from(data);
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

  /**
   * From now on, frames go straight to `handler` (after the queued ones); the
   * pre-answer bounds no longer apply. The handler must be done with a frame's
   * bytes when it returns (see `FrameSocket`).
   */
  handOff(handler: (data: Buffer, binary: boolean) => void): void {
    for (const f of this.#frames.splice(0)) handler(f.data, f.binary);
    this.#queuedBytes = 0;
    this.#onFrame = handler;
  }
}

export function requireBinary(frame: { data: Buffer; binary: boolean }, max: number, step: string): Buffer {
  if (!frame.binary) throw peerLinkError("malformed_frame", `${step} was not a binary frame`);
  if (frame.data.length > max) throw peerLinkError("malformed_frame", `${step} is ${frame.data.length} bytes (limit ${max})`);
  return frame.data;
}
