/**
 * One builder's Discovery in its own process, for the network-namespace
 * test: `ip netns exec <ns> node netns-discovery-peer.ts '<json config>'`.
 *
 * Config: `{ interface, refreshIntervalMs?, advertise?: AdvertiseInfo }`.
 * Commands arrive as JSON lines on stdin:
 *   {"op":"advertise","info":{...}} | {"op":"update","txt":{...}} |
 *   {"op":"unadvertise"} | {"op":"stop"} (stops Discovery and exits)
 * and everything it sees goes out as JSON lines on stdout:
 *   {"event":"started"} | {"event":"added","host":{...}} |
 *   {"event":"removed","name":"..."} | {"event":"done","op":"...","error"?:"..."}
 * Logs go to stderr.
 *
 * Safety: it refuses to run unless it is inside a test namespace, i.e.
 * `interface` is a 10.213.0.0/16 address of this host and no other
 * non-loopback IPv4 address exists (the root namespace has a real NIC).
 */
import os from "node:os";
import readline from "node:readline";
import { type AdvertiseInfo, Discovery } from "../../src/remote-build/discovery/discovery.ts";
import type { DiscoveryTxt } from "../../src/remote-build/discovery/txt.ts";
import { setLogLevel } from "../../src/logger.ts";

interface PeerConfig {
  interface: string;
  refreshIntervalMs?: number;
  advertise?: AdvertiseInfo;
}

type Command = { op: "advertise"; info: AdvertiseInfo } | { op: "update"; txt: DiscoveryTxt } | { op: "unadvertise" } | { op: "stop" };

function out(line: object): void {
  process.stdout.write(JSON.stringify(line) + "\n");
}

const config = JSON.parse(process.argv[2] ?? "{}") as PeerConfig;

const ipv4 = Object.values(os.networkInterfaces())
  .flatMap((list) => list ?? [])
  .filter((a) => a.family === "IPv4" && !a.internal)
  .map((a) => a.address);
if (!config.interface.startsWith("10.213.") || !ipv4.includes(config.interface) || ipv4.some((a) => !a.startsWith("10.213."))) {
  process.stderr.write(`refusing to run outside a test namespace (IPv4 addresses here: ${ipv4.join(", ")})\n`);
  process.exit(2);
}

setLogLevel("debug");
const discovery = new Discovery({
  interface: config.interface,
  refreshIntervalMs: config.refreshIntervalMs ?? 2_000,
  onChange: (event) => {
    if (event.type === "added") out({ event: "added", host: event.host });
    else out({ event: "removed", name: event.name });
  },
});

async function run(cmd: Command): Promise<void> {
  switch (cmd.op) {
    case "advertise":
      await discovery.advertise(cmd.info);
      break;
    case "update":
      await discovery.updateTxt(cmd.txt);
      break;
    case "unadvertise":
      await discovery.unadvertise();
      break;
    case "stop":
      await discovery.stop();
      break;
  }
}

if (config.advertise !== undefined) await discovery.advertise(config.advertise);
await discovery.start();
out({ event: "started" });

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  if (line.trim() === "") continue;
  const cmd = JSON.parse(line) as Command;
  try {
    await run(cmd);
    out({ event: "done", op: cmd.op });
  } catch (err) {
    out({ event: "done", op: cmd.op, error: String(err) });
  }
  if (cmd.op === "stop") break;
}
await discovery.stop();
process.exit(0);
