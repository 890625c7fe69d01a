/**
 * An ESPHome device's mDNS announcement, for the device-state namespace test:
 * `ip netns exec <ns> node netns-esphome-announcer.ts '<json>'` publishes
 * `_esphomelib._tcp` instance `name` on port 6053 with the TXT an ESPHome device
 * sends (`version`, `mac`, `platform`, `board`, `network`, and project fields when
 * given), prints `{"event":"published"}`, and on a `stop` line sends the goodbye
 * and exits (`{"event":"stopped"}`).
 *
 * Safety: it refuses to run unless it is inside a test namespace (its only
 * non-loopback IPv4 address is the given 10.213.0.0/16 one).
 */
import os from "node:os";
import readline from "node:readline";
import Bonjour from "bonjour-service";

interface Config {
  interface: string;
  name: string;
  txt: Record<string, string>;
}

const config = JSON.parse(process.argv[2] ?? "{}") as Config;
const ipv4 = Object.values(os.networkInterfaces())
  .flatMap((list) => list ?? [])
  .filter((a) => a.family === "IPv4" && !a.internal)
  .map((a) => a.address);
if (!config.interface.startsWith("10.213.") || !ipv4.includes(config.interface) || ipv4.some((a) => !a.startsWith("10.213."))) {
  process.stderr.write(`refusing to run outside a test namespace (IPv4 addresses here: ${ipv4.join(", ")})\n`);
  process.exit(2);
}

const bonjour = new Bonjour({ interface: config.interface, bind: "0.0.0.0" } as Partial<Bonjour.ServiceConfig>, (err: unknown) => {
  process.stderr.write(`mdns error: ${String(err)}\n`);
});
const service = bonjour.publish({ name: config.name, type: "esphomelib", protocol: "tcp", port: 6053, host: `${config.name}.local`, txt: config.txt, probe: false });
service.on("up", () => { process.stdout.write(JSON.stringify({ event: "published" }) + "\n"); });

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.trim() !== "stop") return;
  // bonjour-service types stop() as a bare Function: the goodbye, then the callback.
  const stop = service.stop as (callback: () => void) => void;
  stop.call(service, () => {
    bonjour.destroy(() => {
      process.stdout.write(JSON.stringify({ event: "stopped" }) + "\n");
      process.exit(0);
    });
  });
});
