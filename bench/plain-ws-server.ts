/**
 * The plain-WebSocket limit for bench/peer-link.ts, in a process of its own:
 * `node bench/plain-ws-server.ts <bytes>` prints its port, then sends that
 * many random bytes in 32 KiB binary messages whenever a client says "go".
 */
import { randomBytes } from "node:crypto";
import { WebSocketServer } from "ws";

const size = Number(process.argv[2]);
const bytes = randomBytes(size);
const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false });
wss.on("listening", () => { process.stdout.write(`${(wss.address() as { port: number }).port}\n`); });
wss.on("connection", (ws) => {
  ws.on("message", () => {
    for (let off = 0; off < size; off += 32 * 1024) ws.send(bytes.subarray(off, off + 32 * 1024));
  });
});
process.on("SIGTERM", () => { wss.close(); process.exit(0); });
