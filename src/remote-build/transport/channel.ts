/**
 * An established peer-link session: a WebSocket carrying one Noise transport
 * message per binary frame, each an encrypted JSON object (the handshake that
 * makes one is in handshake.ts).
 */
import { getLogger } from "../../logger.ts";
import { pinSha256 } from "./fingerprint.ts";
import { APP_FRAME_MAX_BYTES, type PeerLinkFrame } from "./messages.ts";
import { releaseNow, type CipherState } from "./noise-primitives.ts";
import { SOCKET_STATE, decodeJsonObject, encodeJson, peerLinkError, type FrameSocket, type Inbox } from "./socket-frames.ts";

const log = getLogger("peer-link");

/** A sender waits (`drained`) while more than this is queued on the socket… */
export const DRAIN_HIGH_WATER_BYTES = 2 * 1024 * 1024;
/** …and goes on once it is down to this. */
export const DRAIN_LOW_WATER_BYTES = 512 * 1024;
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
  readonly #ws: FrameSocket;
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

  constructor(ws: FrameSocket, inbox: Inbox, ciphers: { send: CipherState; receive: CipherState }, remoteStaticKey: Uint8Array, remoteAddress: string) {
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
   * take a frame only when the general way would do exactly the same with it,
   * and must not keep it: a frame it took is freed when it returns.
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
    if (this.#closed || this.#ws.readyState !== SOCKET_STATE.OPEN) return false;
    try {
      const frame = this.#send.encrypt(json);
      const size = frame.length;
      // Counted before the send: ws always calls back later, never from inside send().
      this.#queued += size;
      try {
        this.#ws.send(frame, (err) => {
          // Written: the frame's memory goes back at once (after an error the socket may still hold it).
          if (!(err instanceof Error)) releaseNow(frame);
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
      let plain: Buffer;
      try {
        plain = this.#receive.decrypt(data);
      } catch {
        throw peerLinkError("malformed_frame", "frame did not decrypt");
      }
      if (this.#onMessage !== null && this.#onRawFrame !== null && this.#onRawFrame(plain)) {
        releaseNow(plain);
        return;
      }
      message = decodeJsonObject(plain);
    } catch (err) {
      this.terminate("malformed_frame", (err as Error).message);
      return;
    }
    if (this.#onMessage === null) this.#early.push(message);
    else this.#onMessage(message);
  }
}
