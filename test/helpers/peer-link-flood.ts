/**
 * A hostile offloader in its own process (so the test process that measures
 * the builder is not the one busy masking frames):
 * `node peer-link-flood.ts '<json config>'`.
 *
 * Config: `{ port, dashboardId, keyHex, durationMs, connections, maxBytes }`.
 * Each of `connections` loops opens a `pair_status` long poll with the given
 * key and dashboard_id (a pending request), then, without waiting for any
 * answer, sends 60 KiB binary frames as fast as its socket takes them, until
 * the builder closes the connection; then it opens the next one. It stops
 * after `durationMs` or once `maxBytes` were handed to its sockets, and
 * prints one JSON line: `{ sent, connections, replies }`, where `replies`
 * counts the first decrypted frame of each connection by its
 * `intent_response` or `type`/`reason` (`"none"` when nothing came back).
 */
import WebSocket from "ws";
import { NoiseHandshake } from "../../src/remote-build/transport/noise.ts";

interface FloodConfig {
  port: number;
  dashboardId: string;
  keyHex: string;
  durationMs: number;
  connections: number;
  maxBytes: number;
}

const config = JSON.parse(process.argv[2] ?? "{}") as FloodConfig;
const key = Buffer.from(config.keyHex, "hex");
const until = Date.now() + config.durationMs;
const FRAME = Buffer.alloc(60 * 1024, 0x5a);
/** The flooder keeps at most this much queued in its own process. */
const OWN_BUFFER_BYTES = 4 * 1024 * 1024;

let sent = 0;
let opened = 0;
const replies: Record<string, number> = {};

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function oneConnection(): Promise<void> {
  const ws = new WebSocket(`ws://127.0.0.1:${config.port}/remote-build/peer-link`, { perMessageDeflate: false });
  const inbound: Buffer[] = [];
  let wake: (() => void) | null = null;
  ws.on("message", (d: Buffer) => { inbound.push(d); wake?.(); });
  const closed = new Promise<void>((resolve) => ws.on("close", () => { resolve(); wake?.(); }));
  ws.on("error", () => undefined);
  try {
    await new Promise((resolve, reject) => { ws.once("open", resolve); ws.once("error", reject); });
  } catch {
    return;
  }
  opened++;
  const read = async (): Promise<Buffer | null> => {
    while (inbound.length === 0 && ws.readyState === WebSocket.OPEN) await new Promise<void>((r) => { wake = r; });
    return inbound.shift() ?? null;
  };
  const hs = NoiseHandshake.initiator(key);
  ws.send(hs.writeMessage(Buffer.from(JSON.stringify({ intent: "pair_status" }))));
  const msg2 = await read();
  if (msg2 === null) return;
  hs.readMessage(msg2);
  ws.send(hs.writeMessage(Buffer.from(JSON.stringify({ dashboard_id: config.dashboardId }))));
  const { receive } = hs.split();
  while (ws.readyState === WebSocket.OPEN && Date.now() < until && sent < config.maxBytes) {
    if (ws.bufferedAmount > OWN_BUFFER_BYTES) {
      await pause(1);
      continue;
    }
    ws.send(FRAME);
    sent += FRAME.length;
  }
  if (ws.readyState === WebSocket.OPEN) ws.terminate();
  await closed;
  const first = inbound.shift();
  let what = "none";
  if (first !== undefined) {
    try {
      const reply = JSON.parse(Buffer.from(receive.decrypt(first)).toString("utf8")) as Record<string, unknown>;
      what = typeof reply.intent_response === "string" ? reply.intent_response : `${String(reply.type)}:${String(reply.reason)}`;
    } catch {
      what = "undecryptable";
    }
  }
  replies[what] = (replies[what] ?? 0) + 1;
}

async function loop(): Promise<void> {
  while (Date.now() < until && sent < config.maxBytes) await oneConnection();
}

await Promise.all(Array.from({ length: config.connections }, () => loop()));
process.stdout.write(JSON.stringify({ sent, connections: opened, replies }) + "\n");
