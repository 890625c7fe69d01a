/**
 * A fleet of simulated devices for bench/device-state.ts, in its own process so
 * the builder's CPU time is its own: N native-API responders on the loopback
 * (test/fixtures/native-api-device.ts). Prints `{"ports": [...]}` once they
 * listen, then serves until killed.
 */
import { NativeApiDevice } from "../test/fixtures/native-api-device.ts";

const N = Number(process.argv[2] ?? 300);
const devices: NativeApiDevice[] = [];
for (let i = 0; i < N; i++) {
  const d = new NativeApiDevice({
    info: { name: `device${i}`, esphomeVersion: i % 3 === 0 ? "2026.9.2" : "2026.11.0", compilationTime: "2026-12-01 10:00:00 +0000" },
  });
  await d.start();
  devices.push(d);
}
process.stdout.write(JSON.stringify({ ports: devices.map((d) => d.port) }) + "\n");
process.on("SIGTERM", () => {
  void Promise.all(devices.map((d) => d.stop())).then(() => process.exit(0));
});
