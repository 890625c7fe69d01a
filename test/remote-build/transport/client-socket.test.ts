/**
 * The peer link's client WebSocket: it talks to a real `ws` server (the
 * build server's side) both ways, keeps every message intact however the
 * bytes are sliced into reads, answers pings and closes as RFC 6455 asks, and
 * refuses every answer or frame a server must not send, with an error that
 * says what was wrong.
 */
import { once } from "node:events";
import { randomBytes } from "node:crypto";
import net from "node:net";
import { describe, expect, it, onTestFinished } from "vitest";
import { WebSocketServer, type WebSocket } from "ws";
import { PeerLinkClientSocket, acceptKeyFor } from "../../../src/remote-build/transport/client-socket.ts";
import { Inbox, SOCKET_STATE, isPeerLinkError } from "../../../src/remote-build/transport/socket-frames.ts";
import { rawWsServer, serverFrame, upgradeResponse, type RawPeer } from "../../helpers/raw-ws-server.ts";
import { waitFor } from "../../helpers/tmp.ts";

const MAX = 64 * 1024;

function client(port: number, over: Partial<{ maxPayload: number; timeoutMs: number; host: string; closeGraceMs: number }> = {}): PeerLinkClientSocket {
  const socket = new PeerLinkClientSocket({
    host: over.host ?? "127.0.0.1",
    port,
    path: "/remote-build/peer-link",
    maxPayload: over.maxPayload ?? MAX,
    timeoutMs: over.timeoutMs ?? 5_000,
    ...(over.closeGraceMs === undefined ? {} : { closeGraceMs: over.closeGraceMs }),
  });
  onTestFinished(() => { socket.terminate(); });
  return socket;
}

/** Messages as the listener saw them, copied (the socket may reuse the bytes after the call). */
function collect(socket: PeerLinkClientSocket): { data: Buffer; binary: boolean }[] {
  const seen: { data: Buffer; binary: boolean }[] = [];
  socket.on("message", (data, binary) => { seen.push({ data: Buffer.from(data), binary }); });
  return seen;
}

function errors(socket: PeerLinkClientSocket): string[] {
  const seen: string[] = [];
  socket.on("error", (err) => { seen.push(err.message); });
  return seen;
}

/** A client socket opened on a byte-level server, and the server's side of it. */
async function openOnRaw(opts: { keepOpen?: boolean; closeGraceMs?: number } = {}): Promise<{ socket: PeerLinkClientSocket; peer: RawPeer }> {
  const { port, connected } = await rawWsServer("ok", { keepOpen: opts.keepOpen ?? false });
  const socket = client(port, opts.closeGraceMs === undefined ? {} : { closeGraceMs: opts.closeGraceMs });
  await socket.open();
  return { socket, peer: await connected };
}

async function wsServer(): Promise<{ port: number; connection: Promise<{ ws: WebSocket; path: string; host: string }> }> {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false, maxPayload: MAX });
  onTestFinished(() => new Promise<void>((r) => { for (const c of wss.clients) c.terminate(); wss.close(() => { r(); }); }));
  await once(wss, "listening");
  const connection = new Promise<{ ws: WebSocket; path: string; host: string }>((resolve) => {
    wss.once("connection", (ws, req) => { resolve({ ws, path: req.url ?? "", host: req.headers.host ?? "" }); });
  });
  return { port: (wss.address() as net.AddressInfo).port, connection };
}

async function expectOpenRefused(socket: PeerLinkClientSocket, code: string, text: RegExp): Promise<void> {
  const err = await socket.open().then(() => null, (e: unknown) => e);
  expect(isPeerLinkError(err) ? err.code : err).toBe(code);
  expect((err as Error).message).toMatch(text);
  await waitFor(() => socket.readyState === SOCKET_STATE.CLOSED);
}

describe("PeerLinkClientSocket with a ws server", () => {
  it("upgrades on the peer-link path with the port in Host, then carries binary messages both ways", async () => {
    const { port, connection } = await wsServer();
    const socket = client(port);
    const seen = collect(socket);
    await socket.open();
    expect(socket.readyState).toBe(SOCKET_STATE.OPEN);
    const { ws, path, host } = await connection;
    expect(path).toBe("/remote-build/peer-link");
    expect(host).toBe(`127.0.0.1:${port}`);

    const fromServer: Buffer[] = [];
    ws.on("message", (d: Buffer) => { fromServer.push(d); });
    // Sizes that take each of the three length encodings, from both sides.
    const sizes = [0, 1, 125, 126, 65_535, MAX];
    const ours = sizes.map((n) => randomBytes(n));
    const theirs = sizes.map((n) => randomBytes(n));
    const written: (Error | undefined)[] = [];
    for (const m of ours) socket.send(m, (err) => { written.push(err); });
    for (const m of theirs) ws.send(m);
    await waitFor(() => fromServer.length === sizes.length && seen.length === sizes.length);
    expect(fromServer.map((b) => b.toString("hex"))).toEqual(ours.map((b) => b.toString("hex")));
    expect(seen.map((m) => m.data.toString("hex"))).toEqual(theirs.map((b) => b.toString("hex")));
    expect(seen.every((m) => m.binary)).toBe(true);
    await waitFor(() => written.length === sizes.length);
    expect(written.every((e) => e === undefined)).toBe(true);
  });

  it("keeps 2,000 messages of up to 60 KiB intact and in order while reads cut through them", async () => {
    const { port, connection } = await wsServer();
    const socket = client(port);
    const digests: string[] = [];
    socket.on("message", (data) => { digests.push(`${data.subarray(0, 8).toString("hex")}:${data.length}`); });
    await socket.open();
    const { ws } = await connection;
    const sent: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const m = randomBytes(40_000 + ((i * 7919) % 21_000));
      sent.push(`${m.subarray(0, 8).toString("hex")}:${m.length}`);
      ws.send(m);
    }
    await waitFor(() => digests.length === 2000, 20_000);
    expect(digests).toEqual(sent);
  });

  it("reassembles a fragmented message and delivers a text message as not binary", async () => {
    const { port, connection } = await wsServer();
    const socket = client(port);
    const seen = collect(socket);
    await socket.open();
    const { ws } = await connection;
    ws.send(Buffer.from("part one,"), { fin: false, binary: true });
    ws.send(Buffer.from("part two,"), { fin: false, binary: true });
    ws.send(Buffer.from("end"), { fin: true, binary: true });
    ws.send("a text frame");
    await waitFor(() => seen.length === 2);
    expect(seen[0]).toEqual({ data: Buffer.from("part one,part two,end"), binary: true });
    expect(seen[1]).toEqual({ data: Buffer.from("a text frame"), binary: false });
  });

  it("refuses to open twice with the peer link's error shape, and keeps the first connection", async () => {
    const { port } = await wsServer();
    const socket = client(port);
    await socket.open();
    const err = await socket.open().then(() => null, (e: unknown) => e);
    expect(isPeerLinkError(err) ? err.code : err).toBe("transport_error");
    expect(socket.readyState).toBe(SOCKET_STATE.OPEN);
  });

  it("answers a ping with a pong carrying the same bytes", async () => {
    const { port, connection } = await wsServer();
    const socket = client(port);
    await socket.open();
    const { ws } = await connection;
    const pong = once(ws, "pong");
    ws.ping(Buffer.from("are you there"));
    const [data] = (await pong) as [Buffer];
    expect(data.toString()).toBe("are you there");
  });

  it("closes with the code and reason it was given; the server sees them and the socket ends", async () => {
    const { port, connection } = await wsServer();
    const socket = client(port);
    await socket.open();
    const { ws } = await connection;
    const closedByServer = once(ws, "close");
    const closed = once(socket, "close");
    socket.close(1000, "client_stopped");
    expect(socket.readyState).toBe(SOCKET_STATE.CLOSING);
    const [code, reason] = (await closedByServer) as [number, Buffer];
    expect(code).toBe(1000);
    expect(reason.toString()).toBe("client_stopped");
    await closed;
    expect(socket.readyState).toBe(SOCKET_STATE.CLOSED);
    // A send after the close is refused through its callback, not thrown.
    const err = await new Promise<Error | undefined>((r) => { socket.send(Buffer.from("late"), r); });
    expect(err?.message).toMatch(/not open/);
  });

  it("answers the server's close with the same code, and reports the close once", async () => {
    const { port, connection } = await wsServer();
    const socket = client(port);
    let closes = 0;
    socket.on("close", () => { closes++; });
    await socket.open();
    const { ws } = await connection;
    const serverSaw = once(ws, "close");
    ws.close(4001, "going away");
    const [code] = (await serverSaw) as [number];
    expect(code).toBe(4001);
    await waitFor(() => socket.readyState === SOCKET_STATE.CLOSED);
    await new Promise((r) => setTimeout(r, 20));
    expect(closes).toBe(1);
  });

  it("stops reading when paused: the server's messages wait in TCP until the socket is dropped", async () => {
    const { port, connection } = await wsServer();
    const socket = client(port);
    const seen = collect(socket);
    await socket.open();
    const { ws } = await connection;
    ws.send(Buffer.from("before"));
    await waitFor(() => seen.length === 1);
    socket.pause();
    ws.send(Buffer.from("after"));
    await new Promise((r) => setTimeout(r, 100));
    expect(seen.map((m) => m.data.toString())).toEqual(["before"]);
  });
});

describe("PeerLinkClientSocket with a server that does not end the connection", () => {
  function closeFrame(code: number): Buffer {
    const payload = Buffer.alloc(2);
    payload.writeUInt16BE(code, 0);
    return payload;
  }

  it("answers a server's close and drops the connection after the grace period when the server keeps it open", async () => {
    const { socket, peer } = await openOnRaw({ keepOpen: true, closeGraceMs: 100 });
    const closed = once(socket, "close");
    peer.send(8, closeFrame(1000));
    await waitFor(() => peer.frames.some((f) => f.opcode === 8));
    expect(peer.frames.find((f) => f.opcode === 8)!.payload.readUInt16BE(0)).toBe(1000);
    expect(socket.readyState).toBe(SOCKET_STATE.CLOSING);
    await closed;
    expect(socket.readyState).toBe(SOCKET_STATE.CLOSED);
  });

  it("drops the connection after the grace period when its own close goes unanswered", async () => {
    const { socket, peer } = await openOnRaw({ keepOpen: true, closeGraceMs: 100 });
    const closed = once(socket, "close");
    socket.close(1000, "bye");
    await waitFor(() => peer.frames.some((f) => f.opcode === 8));
    await closed;
    expect(socket.readyState).toBe(SOCKET_STATE.CLOSED);
  });

  it.each([[1005], [1006], [1015], [999], [2000], [5000]])("answers a close carrying %i, a code that may not be sent, with 1002", async (code) => {
    const { peer } = await openOnRaw({ closeGraceMs: 100 });
    peer.send(8, closeFrame(code));
    await waitFor(() => peer.frames.some((f) => f.opcode === 8));
    expect(peer.frames.find((f) => f.opcode === 8)!.payload.readUInt16BE(0)).toBe(1002);
  });

  it.each([[1001], [1011], [3000], [4999]])("echoes a close carrying %i", async (code) => {
    const { peer } = await openOnRaw({ closeGraceMs: 100 });
    peer.send(8, closeFrame(code));
    await waitFor(() => peer.frames.some((f) => f.opcode === 8));
    expect(peer.frames.find((f) => f.opcode === 8)!.payload.readUInt16BE(0)).toBe(code);
  });
});

describe("PeerLinkClientSocket refuses a bad upgrade", () => {
  it("names a refused connection as unreachable", async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => { r(); }));
    await expectOpenRefused(client(port), "unreachable", new RegExp(`cannot reach 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
  });

  it("times out when the server accepts but never answers the upgrade", async () => {
    const silent = net.createServer(() => undefined);
    const held: net.Socket[] = [];
    silent.on("connection", (s) => held.push(s));
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    onTestFinished(() => new Promise<void>((r) => { for (const s of held) s.destroy(); silent.close(() => { r(); }); }));
    const port = (silent.address() as net.AddressInfo).port;
    await expectOpenRefused(client(port, { timeoutMs: 150 }), "timeout", /no connection to 127\.0\.0\.1:\d+ within 150 ms/);
  });

  it.each([
    ["an HTTP error", () => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", /answered HTTP 404; is it an ESPHome builder's peer-link port\?/],
    ["something that is not HTTP", () => "SSH-2.0-OpenSSH_9.6\r\n\r\n", /answered with no HTTP response/],
    ["a wrong accept key", () => upgradeResponse("not-the-key"), /wrong Sec-WebSocket-Accept/],
    ["no accept key", () => "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", /wrong Sec-WebSocket-Accept/],
    ["no Upgrade header", (key: string) => `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKeyFor(key)}\r\n\r\n`, /without Upgrade: websocket/],
    ["no Connection: upgrade", (key: string) => `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: keep-alive\r\nSec-WebSocket-Accept: ${acceptKeyFor(key)}\r\n\r\n`, /without Connection: upgrade/],
    ["an extension nobody asked for", (key: string) => upgradeResponse(key).replace("\r\n\r\n", "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"), /extension that was not asked for/],
    ["a subprotocol nobody asked for", (key: string) => upgradeResponse(key).replace("\r\n\r\n", "\r\nSec-WebSocket-Protocol: chat\r\n\r\n"), /subprotocol that was not asked for/],
    ["a malformed header line", (key: string) => upgradeResponse(key).replace("\r\n\r\n", "\r\nno colon here\r\n\r\n"), /malformed header line/],
    ["an endless head", () => `HTTP/1.1 101 Switching Protocols\r\nX-Padding: ${"a".repeat(20_000)}`, /answered with no WebSocket upgrade/],
  ])("as unreachable when the server answers %s", async (_what, answer, text) => {
    const { port } = await rawWsServer(answer);
    await expectOpenRefused(client(port), "unreachable", text);
  });

  it("as unreachable when the server hangs up before answering", async () => {
    const rude = net.createServer((s) => { s.destroy(); });
    await new Promise<void>((r) => rude.listen(0, "127.0.0.1", r));
    onTestFinished(() => new Promise<void>((r) => rude.close(() => { r(); })));
    const port = (rude.address() as net.AddressInfo).port;
    await expectOpenRefused(client(port), "unreachable", /closed the connection before the WebSocket upgrade/);
  });

  it("accepts the header names in any case and the Connection token among others", async () => {
    const { port } = await rawWsServer((key) => `HTTP/1.1 101 Switching Protocols\r\nUPGRADE: WebSocket\r\nconnection: keep-alive, Upgrade\r\nsec-websocket-accept: ${acceptKeyFor(key)}\r\n\r\n`);
    await client(port).open();
  });
});

describe("PeerLinkClientSocket reads frames wherever the reads cut them", () => {
  it("delivers frames that came in the same read as the upgrade answer", async () => {
    const { port } = await rawWsServer((key) => Buffer.concat([Buffer.from(upgradeResponse(key), "latin1"), serverFrame(2, Buffer.from("early"))]));
    const socket = client(port);
    const seen = collect(socket);
    await socket.open();
    await waitFor(() => seen.length === 1);
    expect(seen[0]!.data.toString()).toBe("early");
  });

  it("delivers a frame sent one byte at a time, and the next one whole", async () => {
    const { port, connected } = await rawWsServer();
    const socket = client(port);
    const seen = collect(socket);
    await socket.open();
    const peer = await connected;
    peer.socket.setNoDelay(true);
    const payload = randomBytes(300);
    const frame = serverFrame(2, payload);
    for (const byte of frame) {
      peer.socket.write(Buffer.from([byte]));
      await new Promise((r) => setImmediate(r));
    }
    peer.send(2, Buffer.from("next"));
    await waitFor(() => seen.length === 2);
    expect(seen[0]!.data.equals(payload)).toBe(true);
    expect(seen[1]!.data.toString()).toBe("next");
  });

  it("masks every frame it sends with a fresh key", async () => {
    const { socket, peer } = await openOnRaw();
    const payload = Buffer.alloc(64, 0x41);
    socket.send(payload);
    socket.send(payload);
    await waitFor(() => peer.frames.length === 2);
    expect(peer.frames.every((f) => f.masked && f.fin && f.opcode === 2 && f.payload.equals(payload))).toBe(true);
  });
});

describe("PeerLinkClientSocket refuses frames a server must not send", () => {
  it.each([
    ["a masked frame", (p: RawPeer) => { p.send(2, Buffer.from("x"), { masked: true }); }, 1002, /masked frame from the server/],
    ["reserved bits", (p: RawPeer) => { p.send(2, Buffer.from("x"), { rsv: 4 }); }, 1002, /reserved bits set/],
    ["an unknown opcode", (p: RawPeer) => { p.send(3, Buffer.from("x")); }, 1002, /unknown opcode 3/],
    ["a fragmented ping", (p: RawPeer) => { p.send(9, Buffer.from("x"), { fin: false }); }, 1002, /fragmented or oversized control frame/],
    ["a ping over 125 bytes", (p: RawPeer) => { p.send(9, Buffer.alloc(126)); }, 1002, /fragmented or oversized control frame/],
    ["a continuation with nothing to continue", (p: RawPeer) => { p.send(0, Buffer.from("x")); }, 1002, /continuation frame with no message/],
    ["a new message inside a fragmented one", (p: RawPeer) => { p.send(2, Buffer.from("a"), { fin: false }); p.send(2, Buffer.from("b")); }, 1002, /new message inside a fragmented one/],
    ["a close frame of one byte", (p: RawPeer) => { p.send(8, Buffer.from([3])); }, 1002, /close frame of one byte/],
    ["a message over the limit", (p: RawPeer) => { p.send(2, Buffer.alloc(MAX + 1)); }, 1009, /message over 65536 bytes/],
    ["a length over 4 GiB", (p: RawPeer) => { p.socket.write(Buffer.from([0x82, 127, 0, 0, 0, 1, 0, 0, 0, 0])); }, 1009, /frame longer than 4 GiB/],
    ["fragments adding up to over the limit", (p: RawPeer) => { p.send(2, Buffer.alloc(MAX - 10), { fin: false }); p.send(0, Buffer.alloc(11)); }, 1009, /message over 65536 bytes/],
  ])("%s: an error event, a close frame with the matching code, nothing delivered", async (_what, misbehave, code, text) => {
    const { port, connected } = await rawWsServer();
    const socket = client(port);
    const seen = collect(socket);
    const errs = errors(socket);
    await socket.open();
    const peer = await connected;
    misbehave(peer);
    await waitFor(() => errs.length === 1);
    expect(errs[0]).toMatch(text);
    await waitFor(() => peer.frames.some((f) => f.opcode === 8));
    const close = peer.frames.find((f) => f.opcode === 8)!;
    expect(close.payload.readUInt16BE(0)).toBe(code);
    expect(seen).toEqual([]);
    // Nothing more is read once the protocol is broken.
    peer.send(2, Buffer.from("after"));
    await new Promise((r) => setTimeout(r, 50));
    expect(seen).toEqual([]);
  });
});

describe("Inbox over a socket that reuses its read buffer", () => {
  it("keeps a frame queued before anyone asked intact when later reads reuse the bytes", async () => {
    const { port, connected } = await rawWsServer();
    const socket = client(port);
    const inbox = new Inbox(socket);
    await socket.open();
    const peer = await connected;
    peer.send(2, Buffer.from("first frame"));
    // The first frame is read and queued; the second read lands where it lay.
    await new Promise((r) => setTimeout(r, 50));
    peer.send(2, Buffer.from("second!!!!!"));
    await new Promise((r) => setTimeout(r, 50));
    expect((await inbox.next(1000, "one")).data.toString()).toBe("first frame");
    expect((await inbox.next(1000, "two")).data.toString()).toBe("second!!!!!");
  });
});
