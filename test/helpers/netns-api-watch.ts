/**
 * A panel-API client for a builder inside a network namespace (the test
 * process cannot reach namespace addresses):
 * `ip netns exec <ns> node netns-api-watch.ts <host> <port>` subscribes to
 * events and prints every frame it receives as a JSON line on stdout.
 */
import WebSocket from "ws";

const [host, port] = process.argv.slice(2);
const ws = new WebSocket(`ws://${host}:${port}/ws`);
ws.on("open", () => { ws.send(JSON.stringify({ message_id: 1, command: "subscribe_events", args: { job_output: false } })); });
ws.on("message", (data: Buffer) => { process.stdout.write(data.toString("utf8") + "\n"); });
ws.on("error", (err) => { process.stderr.write(`${err.message}\n`); process.exit(1); });
ws.on("close", () => process.exit(0));
