/**
 * A panel-API client in its own process that calls `ping` every 20 ms and
 * times each round trip, so the measurement is not delayed by whatever the
 * test process itself is busy with (a flood, say).
 *
 * Usage: node ws-pinger.ts <port>, with PINGER_AUTHORIZATION (an
 * Authorization header) for a builder with a password. Prints `ready` once
 * connected; on SIGTERM (or its stdin closing) prints the round trips in ms as
 * one JSON array and exits. test/helpers/ping.ts runs it.
 */
import WebSocket from "ws";

const port = Number(process.argv[2]);
const authorization = process.env.PINGER_AUTHORIZATION;
const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, authorization === undefined ? {} : { headers: { authorization } });
const rtts: number[] = [];
let running = true;
let next = 0;

function finish(): void {
  running = false;
  process.stdout.write(`${JSON.stringify(rtts)}\n`, () => { process.exit(0); });
}

function ping(): void {
  if (!running) return;
  const id = next++;
  const started = performance.now();
  const onMessage = (data: Buffer): void => {
    const frame = JSON.parse(data.toString("utf8")) as { message_id?: unknown };
    if (frame.message_id !== id) return;
    ws.off("message", onMessage);
    rtts.push(performance.now() - started);
    setTimeout(ping, 20);
  };
  ws.on("message", onMessage);
  ws.send(JSON.stringify({ command: "ping", message_id: id }));
}

ws.once("open", () => {
  process.stdout.write("ready\n");
  ping();
});
ws.once("error", (err) => {
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
});
process.once("SIGTERM", finish);
process.stdin.on("end", finish).resume();
