/**
 * The initiator's end of a peer-link WebSocket (RFC 6455, client side only,
 * no extensions, no subprotocol), written for the peer link's big transfers:
 * the socket reads into one buffer of ours that is reused for the life of the
 * connection, frames are parsed where they lie and a message is handed to its
 * listener as a view into that buffer. A download of 64 MiB arrives as about
 * 2,000 frames of ~44 KiB; read the usual way (a fresh 64 KiB buffer per
 * socket read, a reassembled copy of each frame that spans two reads) it
 * leaves ~175 MB of short-lived buffers for the garbage collector, which then
 * paces the download (docs/ARCHITECTURE.md, "Why the peer link reads its own
 * frames"; docs/PERFORMANCE.md). The responder's side stays `ws`.
 *
 * Life: `new` stores the options; `open()` connects, upgrades and resolves
 * once frames flow (listeners attached before it see every frame);
 * `close()` runs the closing handshake; `terminate()` drops the connection.
 */
import { createHash, randomFillSync } from "node:crypto";
import { EventEmitter } from "node:events";
import net from "node:net";
import { releaseNow } from "./noise-primitives.ts";
import { SOCKET_STATE, peerLinkError, type FrameSocket } from "./socket-frames.ts";

const ACCEPT_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/** A response head longer than this is not a WebSocket upgrade. */
const MAX_RESPONSE_HEAD_BYTES = 16 * 1024;
/** Every socket read gets at least this much room in the read buffer. */
const MIN_READ_BYTES = 64 * 1024;
/** How long the peer gets to answer our close frame before the connection is dropped. */
const CLOSE_GRACE_MS = 5_000;

const OP = { CONTINUATION: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;
/** Close codes we send on a protocol error (RFC 6455 §7.4.1). */
const CLOSE_PROTOCOL_ERROR = 1002;
const CLOSE_TOO_BIG = 1009;

export interface ClientSocketOptions {
  host: string;
  port: number;
  /** The request path, e.g. `/remote-build/peer-link`. */
  path: string;
  /** The largest message accepted (after reassembly); a bigger one closes the socket with 1009. */
  maxPayload: number;
  /** Connect and upgrade must be done within this. */
  timeoutMs: number;
  /** How long a peer gets to end the connection once the close frames are exchanged (default 5 s). */
  closeGraceMs?: number;
}

interface ClientSocketEvents {
  message: [data: Buffer, binary: boolean];
  close: [];
  error: [err: Error];
}

/** Close codes a close frame may carry (RFC 6455 §7.4): the rest are reserved or only for reporting. */
export function isWireCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

/** A host as the Host header and messages write it (IPv6 in brackets). */
export function formatHost(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

/** What the responder must answer in Sec-WebSocket-Accept for `key`. */
export function acceptKeyFor(key: string): string {
  return createHash("sha1").update(key + ACCEPT_GUID).digest("base64");
}

type Phase = "upgrade" | "frames" | "done";

export class PeerLinkClientSocket extends EventEmitter<ClientSocketEvents> implements FrameSocket {
  readonly #opts: ClientSocketOptions;
  #socket: net.Socket | null = null;
  #state: number = SOCKET_STATE.CONNECTING;
  #phase: Phase = "upgrade";
  /** The read buffer: unread bytes are `#buf[#start, #end)`. */
  readonly #buf: Buffer;
  #start = 0;
  #end = 0;
  #key = "";
  #opened: { resolve: () => void; reject: (err: Error) => void } | null = null;
  /** A fragmented message being reassembled: its parts (copies) and whether it is binary. */
  #parts: Buffer[] | null = null;
  #partsBytes = 0;
  #partsBinary = false;
  #closeSent = false;
  readonly #mask = Buffer.alloc(4);

  constructor(opts: ClientSocketOptions) {
    super();
    this.#opts = opts;
    // Room for one whole frame of the largest size plus a full read behind it.
    this.#buf = Buffer.allocUnsafe(Math.max(256 * 1024, opts.maxPayload + 14 + MIN_READ_BYTES));
  }

  get readyState(): number {
    return this.#state;
  }

  /**
   * Connects and upgrades. Rejects with a peer-link error: `timeout` when it
   * takes longer than `timeoutMs`, `unreachable` when the connection fails or
   * the answer is not a WebSocket upgrade.
   */
  open(): Promise<void> {
    if (this.#socket !== null) return Promise.reject(peerLinkError("transport_error", "open() was called twice on one peer-link socket"));
    const { host, port, timeoutMs } = this.#opts;
    const where = `${host}:${port}`;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#failOpen(peerLinkError("timeout", `no connection to ${where} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#opened = {
        resolve: () => { clearTimeout(timer); resolve(); },
        reject: (err) => { clearTimeout(timer); reject(err); },
      };
      const socket = net.connect({
        host,
        port,
        noDelay: true,
        onread: { buffer: () => this.#readTarget(), callback: (n: number) => { this.#onRead(n); return true; } },
      });
      this.#socket = socket;
      socket.once("connect", () => { this.#sendUpgrade(socket); });
      socket.on("error", (err) => {
        if (this.#opened !== null) this.#failOpen(peerLinkError("unreachable", `cannot reach ${where}: ${err.message}`));
        else this.emit("error", err);
      });
      socket.on("close", () => {
        if (this.#opened !== null) this.#failOpen(peerLinkError("unreachable", `${where} closed the connection before the WebSocket upgrade`));
        this.#phase = "done";
        const wasClosed = this.#state === SOCKET_STATE.CLOSED;
        this.#state = SOCKET_STATE.CLOSED;
        if (!wasClosed) this.emit("close");
      });
    });
  }

  /** Sends one binary message; `cb` runs once it is written (with an error when it could not be). */
  send(data: Uint8Array, cb?: (err?: Error) => void): void {
    if (this.#state !== SOCKET_STATE.OPEN || this.#socket === null) {
      if (cb !== undefined) process.nextTick(cb, new Error("the WebSocket is not open"));
      return;
    }
    this.#writeFrame(OP.BINARY, data, cb);
  }

  /** Starts the closing handshake (code and a reason of at most 123 bytes); the socket closes when the peer answers, or after a grace period. */
  close(code: number, reason: string): void {
    if (this.#state === SOCKET_STATE.CONNECTING) {
      this.terminate();
      return;
    }
    if (this.#state !== SOCKET_STATE.OPEN) return;
    this.#state = SOCKET_STATE.CLOSING;
    this.#sendClose(code, reason);
    this.#dropAfterGrace();
  }

  /** Drops the connection at once. */
  terminate(): void {
    if (this.#socket === null) {
      this.#state = SOCKET_STATE.CLOSED;
      return;
    }
    if (this.#state !== SOCKET_STATE.CLOSED) this.#state = SOCKET_STATE.CLOSING;
    this.#socket.destroy();
  }

  /** Stops reading: the peer meets TCP back-pressure. */
  pause(): void {
    this.#socket?.pause();
  }

  #failOpen(err: Error): void {
    const opened = this.#opened;
    if (opened === null) return;
    this.#opened = null;
    this.#phase = "done";
    this.#socket?.destroy();
    opened.reject(err);
  }

  #sendUpgrade(socket: net.Socket): void {
    const nonce = Buffer.alloc(16);
    randomFillSync(nonce);
    this.#key = nonce.toString("base64");
    socket.write(
      `GET ${this.#opts.path} HTTP/1.1\r\n` +
        `Host: ${formatHost(this.#opts.host)}:${this.#opts.port}\r\n` +
        "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Key: ${this.#key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
  }

  /** Where the next socket read goes: behind the unread bytes, moved to the front when room runs short. */
  #readTarget(): Buffer {
    if (this.#start === this.#end) {
      this.#start = 0;
      this.#end = 0;
    } else if (this.#buf.length - this.#end < MIN_READ_BYTES) {
      this.#buf.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    return this.#buf.subarray(this.#end);
  }

  #onRead(n: number): void {
    this.#end += n;
    if (this.#phase === "upgrade") this.#readUpgrade();
    if (this.#phase === "frames") this.#readFrames();
  }

  #readUpgrade(): void {
    const where = `${this.#opts.host}:${this.#opts.port}`;
    const headEnd = this.#buf.subarray(this.#start, this.#end).indexOf("\r\n\r\n");
    if (headEnd < 0) {
      if (this.#end - this.#start > MAX_RESPONSE_HEAD_BYTES) this.#failOpen(peerLinkError("unreachable", `${where} answered with no WebSocket upgrade`));
      return;
    }
    const head = this.#buf.toString("latin1", this.#start, this.#start + headEnd);
    this.#start += headEnd + 4;
    const problem = this.#checkUpgrade(head);
    if (problem !== null) {
      this.#failOpen(peerLinkError("unreachable", `${where} ${problem}`));
      return;
    }
    this.#phase = "frames";
    this.#state = SOCKET_STATE.OPEN;
    const opened = this.#opened;
    this.#opened = null;
    opened?.resolve();
  }

  /** Null when `head` is the upgrade we asked for; otherwise what is wrong with it. */
  #checkUpgrade(head: string): string | null {
    const [statusLine = "", ...lines] = head.split("\r\n");
    const status = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(statusLine);
    if (status === null) return "answered with no HTTP response; is it an ESPHome builder's peer-link port?";
    if (status[1] !== "101") return `answered HTTP ${status[1]}; is it an ESPHome builder's peer-link port?`;
    const headers = new Map<string, string>();
    for (const line of lines) {
      const colon = line.indexOf(":");
      if (colon <= 0) return "answered a malformed header line";
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    if (headers.get("upgrade")?.toLowerCase() !== "websocket") return "answered 101 without Upgrade: websocket";
    if (!(headers.get("connection") ?? "").toLowerCase().split(",").some((t) => t.trim() === "upgrade")) return "answered 101 without Connection: upgrade";
    if (headers.get("sec-websocket-accept") !== acceptKeyFor(this.#key)) return "answered 101 with a wrong Sec-WebSocket-Accept";
    if (headers.has("sec-websocket-extensions")) return "answered 101 with an extension that was not asked for";
    if (headers.has("sec-websocket-protocol")) return "answered 101 with a subprotocol that was not asked for";
    return null;
  }

  /** Hands every whole frame in the buffer to its handler; a partial one waits for the next read. */
  #readFrames(): void {
    const buf = this.#buf;
    while (this.#phase === "frames") {
      const at = this.#start;
      const available = this.#end - at;
      if (available < 2) return;
      const b0 = buf.readUInt8(at);
      const b1 = buf.readUInt8(at + 1);
      const fin = (b0 & 0x80) !== 0;
      const opcode = b0 & 0x0f;
      if ((b0 & 0x70) !== 0) {
        this.#protocolError(CLOSE_PROTOCOL_ERROR, "a frame with reserved bits set (no extension was agreed)");
        return;
      }
      if ((b1 & 0x80) !== 0) {
        this.#protocolError(CLOSE_PROTOCOL_ERROR, "a masked frame from the server");
        return;
      }
      let header = 2;
      let length = b1 & 0x7f;
      if (length === 126) {
        if (available < 4) return;
        length = buf.readUInt16BE(at + 2);
        header = 4;
      } else if (length === 127) {
        if (available < 10) return;
        if (buf.readUInt32BE(at + 2) !== 0) {
        this.#protocolError(CLOSE_TOO_BIG, "a frame longer than 4 GiB");
        return;
      }
        length = buf.readUInt32BE(at + 6);
        header = 10;
      }
      const control = opcode >= 0x8;
      if (control && (!fin || length > 125)) {
        this.#protocolError(CLOSE_PROTOCOL_ERROR, "a fragmented or oversized control frame");
        return;
      }
      if (!control && this.#partsBytes + length > this.#opts.maxPayload) {
        {
        this.#protocolError(CLOSE_TOO_BIG, `a message over ${this.#opts.maxPayload} bytes`);
        return;
      }
      }
      if (available < header + length) return;
      const payload = buf.subarray(at + header, at + header + length);
      this.#start = at + header + length;
      this.#frame(opcode, fin, payload);
    }
  }

  #frame(opcode: number, fin: boolean, payload: Buffer): void {
    switch (opcode) {
      case OP.TEXT:
      case OP.BINARY:
        if (this.#parts !== null) {
        this.#protocolError(CLOSE_PROTOCOL_ERROR, "a new message inside a fragmented one");
        return;
      }
        if (fin) {
          this.#deliver(payload, opcode === OP.BINARY);
          return;
        }
        this.#parts = [Buffer.from(payload)];
        this.#partsBytes = payload.length;
        this.#partsBinary = opcode === OP.BINARY;
        return;
      case OP.CONTINUATION: {
        if (this.#parts === null) {
        this.#protocolError(CLOSE_PROTOCOL_ERROR, "a continuation frame with no message to continue");
        return;
      }
        this.#parts.push(Buffer.from(payload));
        this.#partsBytes += payload.length;
        if (!fin) return;
        const whole = Buffer.concat(this.#parts, this.#partsBytes);
        this.#parts = null;
        this.#partsBytes = 0;
        this.#deliver(whole, this.#partsBinary);
        return;
      }
      case OP.PING:
        if (this.#state === SOCKET_STATE.OPEN) this.#writeFrame(OP.PONG, payload);
        return;
      case OP.PONG:
        return;
      case OP.CLOSE:
        this.#peerClosed(payload);
        return;
      default:
        this.#protocolError(CLOSE_PROTOCOL_ERROR, `a frame with the unknown opcode ${opcode}`);
    }
  }

  #deliver(data: Buffer, binary: boolean): void {
    // Frames that arrive after we started closing are not delivered (as a closing `ws` socket does not).
    if (this.#state !== SOCKET_STATE.OPEN) return;
    this.emit("message", data, binary);
  }

  /** The peer's close frame: answered with the same code (when we have not sent ours), then the connection ends. */
  #peerClosed(payload: Buffer): void {
    this.#phase = "done";
    if (payload.length === 1) {
      this.#protocolError(CLOSE_PROTOCOL_ERROR, "a close frame of one byte");
      return;
    }
    const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1000;
    if (this.#state === SOCKET_STATE.OPEN) this.#state = SOCKET_STATE.CLOSING;
    // Answered with the same code, unless that code may not be sent: then the peer broke the protocol.
    if (!this.#closeSent) this.#sendClose(isWireCloseCode(code) ? code : CLOSE_PROTOCOL_ERROR, "");
    this.#socket?.end();
    // A peer that answers but never ends the connection does not hold us in CLOSING.
    this.#dropAfterGrace();
  }

  #dropAfterGrace(): void {
    setTimeout(() => { this.#socket?.destroy(); }, this.#opts.closeGraceMs ?? CLOSE_GRACE_MS).unref();
  }

  /** The peer broke the protocol: an error event, a close frame with `code`, and the connection ends. */
  #protocolError(code: number, what: string): void {
    this.#phase = "done";
    const wasOpen = this.#state === SOCKET_STATE.OPEN;
    this.#state = SOCKET_STATE.CLOSING;
    if (wasOpen) this.#sendClose(code, "");
    this.#socket?.end();
    this.#dropAfterGrace();
    this.emit("error", new Error(`the peer sent ${what}`));
  }

  #sendClose(code: number, reason: string): void {
    if (this.#closeSent) return;
    this.#closeSent = true;
    const text = Buffer.from(reason, "utf8").subarray(0, 123);
    const payload = Buffer.allocUnsafe(2 + text.length);
    payload.writeUInt16BE(code, 0);
    text.copy(payload, 2);
    this.#writeFrame(OP.CLOSE, payload);
  }

  /** Writes one frame, masked with a fresh random key as a client must (RFC 6455 §5.3). */
  #writeFrame(opcode: number, data: Uint8Array, cb?: (err?: Error) => void): void {
    const socket = this.#socket;
    if (socket === null || socket.destroyed) {
      if (cb !== undefined) process.nextTick(cb, new Error("the WebSocket is not open"));
      return;
    }
    const length = data.length;
    const header = length < 126 ? 2 : length < 0x10000 ? 4 : 10;
    const frame = Buffer.allocUnsafe(header + 4 + length);
    frame[0] = 0x80 | opcode;
    if (header === 2) {
      frame[1] = 0x80 | length;
    } else if (header === 4) {
      frame[1] = 0x80 | 126;
      frame.writeUInt16BE(length, 2);
    } else {
      frame[1] = 0x80 | 127;
      frame.writeUInt32BE(Math.floor(length / 0x1_0000_0000), 2);
      frame.writeUInt32BE(length >>> 0, 6);
    }
    const mask = this.#mask;
    randomFillSync(mask);
    mask.copy(frame, header);
    const body = header + 4;
    for (let i = 0; i < length; i++) frame[body + i] = (data[i] ?? 0) ^ (mask[i & 3] ?? 0);
    socket.write(frame, (err) => {
      // Written: the masked copy's memory goes back at once (after an error the socket may still hold it).
      if (!(err instanceof Error)) releaseNow(frame);
      cb?.(err ?? undefined);
    });
  }
}
