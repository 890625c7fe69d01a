/**
 * Responsiveness under load: pings a builder's `/ping` on a fixed beat while a
 * test floods it, and reports how long each answer took. The pinger runs on a
 * worker thread of its own, so the test's flood (on the main thread) never
 * delays the pings' own callbacks; a builder process (not one in the test's
 * process) is needed for a meaningful number.
 */
import { Worker } from "node:worker_threads";

export interface PingReport {
  /** Round-trip times in milliseconds, in order. */
  times: number[];
  /** Pings that got no 200 answer. */
  failures: number;
  max: number;
  /** The 95th percentile. */
  p95: number;
}

const PINGER = `
const http = require("node:http");
const { parentPort, workerData } = require("node:worker_threads");
let running = true;
const times = [];
let failures = 0;
parentPort.on("message", () => { running = false; });
function once() {
  return new Promise((resolve) => {
    const req = http.get({ host: "127.0.0.1", port: workerData.port, path: "/ping", headers: workerData.headers, agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode === 200));
    });
    req.on("error", () => resolve(false));
  });
}
(async () => {
  while (running) {
    const started = performance.now();
    const ok = await once();
    const took = performance.now() - started;
    if (ok) times.push(took); else failures++;
    const rest = workerData.intervalMs - took;
    if (rest > 0) await new Promise((r) => setTimeout(r, rest));
  }
  parentPort.postMessage({ times, failures });
})();
`;

/** Starts pinging every `intervalMs`; `stop()` ends it and reports. */
export function pingWhile(port: number, opts: { intervalMs?: number; headers?: Record<string, string> } = {}): { stop: () => Promise<PingReport> } {
  const worker = new Worker(PINGER, { eval: true, workerData: { port, intervalMs: opts.intervalMs ?? 25, headers: opts.headers ?? {} } });
  const result = new Promise<{ times: number[]; failures: number }>((resolve, reject) => {
    worker.once("message", (m: { times: number[]; failures: number }) => { resolve(m); });
    worker.once("error", reject);
  });
  return {
    stop: async () => {
      worker.postMessage("stop");
      const { times, failures } = await result;
      await worker.terminate();
      const sorted = [...times].sort((a, b) => a - b);
      return {
        times,
        failures,
        max: sorted.at(-1) ?? Number.NaN,
        p95: sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.95))] ?? Number.NaN,
      };
    },
  };
}
