/**
 * A WebSocket server written at the byte level for tests of the peer link's
 * client socket: it answers the upgrade (or answers wrongly, on purpose),
 * then lets the test write any frame, well-formed or not, in any slicing, and
 * reads the client's masked frames back. Loopback only; closed when the test
 * finishes.
 */
import net from "node:net";
import { onTestFinished } from "vitest";
import { acceptKeyFor } from "../../src/remote-build/transport/client-socket.ts";

export interface ClientFrame {
  fin: boolean;
  opcode: number;
  /** The client set the mask bit (a client must). */
  masked: boolean;
  /** The payload, unmasked. */
  payload: Buffer;
}

export interface RawPeer {
  socket: net.Socket;
  /** The request head the client sent. */
  request: string;
  /** Frames the client has sent so far, in order. */
  frames: ClientFrame[];
  /** Writes a server frame (unmasked unless asked otherwise). */
  send(opcode: number, payload: Uint8Array, opts?: { fin?: boolean; rsv?: number; masked?: boolean }): void;
}

/** What the server answers the upgrade with: the right answer, or a function of the request key. */
export type UpgradeAnswer = "ok" | ((key: string) => string | Buffer);

export function serverFrame(opcode: number, payload: Uint8Array, opts: { fin?: boolean; rsv?: number; masked?: boolean } = {}): Buffer {
  const length = payload.length;
  const header = length < 126 ? 2 : length < 0x10000 ? 4 : 10;
  const mask = opts.masked === true ? 4 : 0;
  const out = Buffer.alloc(header + mask + length);
  out[0] = ((opts.fin ?? true) ? 0x80 : 0) | ((opts.rsv ?? 0) << 4) | opcode;
  const maskBit = opts.masked === true ? 0x80 : 0;
  if (header === 2) out[1] = maskBit | length;
  else if (header === 4) {
    out[1] = maskBit | 126;
    out.writeUInt16BE(length, 2);
  } else {
    out[1] = maskBit | 127;
    out.writeUInt32BE(0, 2);
    out.writeUInt32BE(length, 6);
  }
  // A masked server frame uses the zero key: the bytes stay readable, only the bit matters.
  Buffer.from(payload).copy(out, header + mask);
  return out;
}

export function upgradeResponse(key: string): string {
  return `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKeyFor(key)}\r\n\r\n`;
}

/** Reads the client's frames from `buf`, unmasking them; returns the bytes consumed. */
function readClientFrames(buf: Buffer, out: ClientFrame[]): number {
  let at = 0;
  for (;;) {
    if (buf.length - at < 2) return at;
    const b0 = buf[at]!;
    const b1 = buf[at + 1]!;
    let length = b1 & 0x7f;
    let header = 2;
    if (length === 126) {
      if (buf.length - at < 4) return at;
      length = buf.readUInt16BE(at + 2);
      header = 4;
    } else if (length === 127) {
      if (buf.length - at < 10) return at;
      length = buf.readUInt32BE(at + 6);
      header = 10;
    }
    const masked = (b1 & 0x80) !== 0;
    const maskBytes = masked ? 4 : 0;
    if (buf.length - at < header + maskBytes + length) return at;
    const mask = buf.subarray(at + header, at + header + maskBytes);
    const payload = Buffer.from(buf.subarray(at + header + maskBytes, at + header + maskBytes + length));
    if (masked) for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ mask[i & 3]!;
    out.push({ fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, masked, payload });
    at += header + maskBytes + length;
  }
}

/**
 * Starts the server; `connected` resolves with the first client once its
 * upgrade was answered. `keepOpen`: the server does not end its side when the
 * client ends its own (a server that never closes the connection).
 */
export async function rawWsServer(answer: UpgradeAnswer = "ok", opts: { keepOpen?: boolean } = {}): Promise<{ port: number; connected: Promise<RawPeer> }> {
  let resolvePeer: (p: RawPeer) => void = () => undefined;
  const connected = new Promise<RawPeer>((r) => { resolvePeer = r; });
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: opts.keepOpen === true }, (socket) => {
    sockets.add(socket);
    let pending = Buffer.alloc(0);
    let peer: RawPeer | null = null;
    socket.on("error", () => undefined);
    socket.on("data", (d: Buffer) => {
      pending = Buffer.concat([pending, d]);
      if (peer === null) {
        const end = pending.indexOf("\r\n\r\n");
        if (end < 0) return;
        const request = pending.toString("latin1", 0, end);
        pending = pending.subarray(end + 4);
        const key = /sec-websocket-key: *(\S+)/i.exec(request)?.[1] ?? "";
        socket.write(answer === "ok" ? upgradeResponse(key) : answer(key));
        const frames: ClientFrame[] = [];
        peer = {
          socket,
          request,
          frames,
          send: (opcode, payload, opts) => { socket.write(serverFrame(opcode, payload, opts)); },
        };
        resolvePeer(peer);
      }
      pending = pending.subarray(readClientFrames(pending, peer.frames));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  onTestFinished(() => new Promise<void>((r) => {
    for (const s of sockets) s.destroy();
    server.close(() => { r(); });
  }));
  return { port: (server.address() as net.AddressInfo).port, connected };
}
