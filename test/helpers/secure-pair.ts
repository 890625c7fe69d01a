/**
 * A real peer-link session on loopback for tests: a WebSocket listener that
 * accepts one handshake and answers the intent, and a client that initiates
 * it (optionally through a TCP proxy the test can stall or cut). Both ends are
 * real `SecureChannel`s; the listener is closed when the test finishes.
 */
import net from "node:net";
import { onTestFinished } from "vitest";
import { WebSocketServer } from "ws";
import type { SecureChannel } from "../../src/remote-build/transport/channel.ts";
import { accept, initiate } from "../../src/remote-build/transport/handshake.ts";
import type { IntentResponse } from "../../src/remote-build/transport/messages.ts";
import { generateStaticKey } from "../../src/remote-build/transport/noise-primitives.ts";
import { startProxy, type Proxy } from "./proxy.ts";

export interface SecurePair {
  client: SecureChannel;
  server: SecureChannel;
  /** What the listener answered the intent (as the client read it). */
  response: IntentResponse;
  proxy: Proxy | null;
}

export async function secureChannelPair(opts: { viaProxy: true; answer?: Record<string, unknown> }): Promise<SecurePair & { proxy: Proxy }>;
export async function secureChannelPair(opts?: { viaProxy?: false; answer?: Record<string, unknown> }): Promise<SecurePair>;
export async function secureChannelPair(opts: { viaProxy?: boolean; answer?: Record<string, unknown> } = {}): Promise<SecurePair> {
  const serverKey = generateStaticKey();
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false });
  onTestFinished(() => new Promise<void>((r) => { for (const c of wss.clients) c.terminate(); wss.close(() => { r(); }); }));
  await new Promise((r) => wss.once("listening", r));
  const server = new Promise<SecureChannel>((resolve, reject) => {
    wss.once("connection", (ws, req) => {
      accept(ws, req, { staticPrivateKey: serverKey }).then((a) => { resolve(a.respond({ intent_response: "ok", ...opts.answer })); }, reject);
    });
  });
  const port = (wss.address() as { port: number }).port;
  const proxy = opts.viaProxy === true ? await startProxy(port) : null;
  const { channel, response } = await initiate({ host: "127.0.0.1", port: proxy?.port ?? port, staticPrivateKey: generateStaticKey(), intent: "peer_link", payload: {} });
  return { client: channel, server: await server, response, proxy };
}

/** A TCP port on loopback that was free a moment ago (for a process that binds it itself). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((r) => server.close(() => { r(); }));
  return port;
}
