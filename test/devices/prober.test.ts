/**
 * The prober's schedule, on a hand-moved clock, against real native-API
 * responders on the loopback (test/fixtures/native-api-device.ts) through the
 * real client (src/devices/native-probe.ts).
 */
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { apiKeyProblem, nativeApiProbe } from "../../src/devices/native-probe.ts";
import { Prober, detectionBoundMs, timingsFor, type ProbeFn, type ProbeOutcome, type ProbeTimings } from "../../src/devices/prober.ts";
import { NativeApiDevice } from "../fixtures/native-api-device.ts";
import { ManualClock } from "./clock.ts";

const INFO = { name: "sim", esphomeVersion: "2026.10.0", compilationTime: "2026-12-01 10:00:00 +0000" };
/** An `api: encryption: key` (32 random bytes, base64) and another one. */
const KEY = "px7tsbK3C7bpXHr2OevEV2ZMg/FrNBw2+O2pNPbedtA=";
const OTHER_KEY = "wHUTkrVFk8Dko45Lmoe+ENtv0Rhla2FHf360l08vkxE=";
const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function device(opts: Partial<ConstructorParameters<typeof NativeApiDevice>[0]> = {}): Promise<NativeApiDevice> {
  const d = new NativeApiDevice({ info: INFO, ...opts });
  await d.start();
  cleanup.push(() => d.stop());
  return d;
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => { resolve(); }));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => { resolve(); }));
  return port;
}

function setup(timings: Partial<ProbeTimings> = {}, probe: ProbeFn = nativeApiProbe({ connectTimeoutMs: 2000 })) {
  const clock = new ManualClock();
  const results: { key: string; outcome: ProbeOutcome; at: number }[] = [];
  let live = 0;
  let peak = 0;
  const counted: ProbeFn = async (target, signal) => {
    live++;
    peak = Math.max(peak, live);
    try {
      return await probe(target, signal);
    } finally {
      live--;
    }
  };
  const t: ProbeTimings = { ...timingsFor(60_000, 3), ...timings };
  const prober = new Prober({ probe: counted, timings: t, clock, onResult: (key, outcome) => results.push({ key, outcome, at: clock.now() }) });
  cleanup.push(() => { prober.stop(); });
  return { clock, prober, results, t, peak: () => peak };
}

/** Advances the clock, then waits for the probes that started to end (they do real I/O). */
async function step(s: ReturnType<typeof setup>, ms: number): Promise<void> {
  s.clock.advance(ms);
  await s.prober.settled();
}

describe("Prober", () => {
  it("spaces the first probes out and never runs more than `concurrency` at once", async () => {
    const d = await device();
    const s = setup({ startSpacingMs: 100 });
    for (let i = 0; i < 12; i++) s.prober.set({ key: `dev${i}`, host: "127.0.0.1", port: d.port, apiKey: null });
    s.prober.start();
    await s.prober.settled();
    expect(s.results.map((r) => r.key), "only the first is due at start").toEqual(["dev0"]);
    await step(s, 250);
    expect(s.results).toHaveLength(3);
    // Everything due at once: the cap holds.
    await step(s, 5_000);
    while (s.results.length < 12) await s.prober.settled();
    expect(s.results.every((r) => r.outcome.kind === "answer")).toBe(true);
    expect(s.peak()).toBeLessThanOrEqual(3);
    expect(s.peak()).toBe(3);
    expect(d.connections).toBe(12);
  });

  it("reads what the device runs from its device info", async () => {
    const d = await device({ info: { ...INFO, projectName: "acme.lamp", projectVersion: "1.2.3" } });
    const s = setup();
    s.prober.set({ key: "lamp", host: "127.0.0.1", port: d.port, apiKey: null });
    s.prober.start();
    await s.prober.settled();
    expect(s.results[0]?.outcome).toEqual({
      kind: "answer",
      answer: { name: "sim", esphomeVersion: "2026.10.0", compilationTime: "2026-12-01 10:00:00 +0000", projectName: "acme.lamp", projectVersion: "1.2.3" },
    });
  });

  it("probes an online device every interval; misses are retried, then back off up to the interval; the first answer resets", async () => {
    const d = await device();
    const s = setup();
    s.prober.set({ key: "a", host: "127.0.0.1", port: d.port, apiKey: null });
    s.prober.start();
    await s.prober.settled();
    await step(s, s.t.intervalMs - 1);
    expect(s.results).toHaveLength(1);
    await step(s, 1);
    expect(s.results).toHaveLength(2);

    await d.stop();
    const kinds = (): string[] => s.results.slice(2).map((r) => (r.outcome.kind === "unreachable" ? `miss${r.outcome.misses}` : r.outcome.kind));
    await step(s, s.t.intervalMs);
    expect(kinds()).toEqual(["miss1"]);
    await step(s, s.t.retryMs);
    await step(s, s.t.retryMs);
    expect(kinds()).toEqual(["miss1", "miss2", "miss3"]);
    // Offline: back-off doubles from 2 x retry, capped at the interval.
    const gaps: number[] = [];
    for (let i = 0; i < 5; i++) {
      const before = s.results.length;
      let waited = 0;
      while (s.results.length === before) {
        await step(s, 1000);
        waited += 1000;
      }
      gaps.push(waited);
    }
    expect(gaps).toEqual([20_000, 40_000, 60_000, 60_000, 60_000].map((g) => Math.ceil(g / 1000) * 1000));

    // Back on the same port: the next probe answers and the interval is the online one again.
    const again = new NativeApiDevice({ info: INFO, port: d.port });
    await again.start();
    cleanup.push(() => again.stop());
    await step(s, s.t.maxBackoffMs);
    expect(s.results.at(-1)?.outcome.kind).toBe("answer");
    const n = s.results.length;
    await step(s, s.t.intervalMs - 1);
    expect(s.results).toHaveLength(n);
  });

  it("hurry probes now; an urgent device (an install waits for it) is retried at the retry rate while offline", async () => {
    const port = await closedPort();
    const s = setup();
    s.prober.set({ key: "sleepy", host: "127.0.0.1", port, apiKey: null });
    s.prober.start();
    await s.prober.settled();
    await step(s, s.t.retryMs);
    await step(s, s.t.retryMs);
    expect(s.results).toHaveLength(3);
    s.prober.setUrgent("sleepy", true);
    for (let i = 0; i < 4; i++) await step(s, s.t.retryMs);
    expect(s.results).toHaveLength(7);
    s.prober.setUrgent("sleepy", false);
    s.prober.hurry("sleepy");
    await s.prober.settled();
    expect(s.results).toHaveLength(8);
  });

  it("a device that accepts and never answers is a miss at the timeout, on the injected clock", async () => {
    const open = new Set<net.Socket>();
    const silent = net.createServer((socket) => {
      open.add(socket);
      // Reading, so the client's FIN is seen.
      socket.resume();
      socket.on("close", () => open.delete(socket));
      socket.on("error", () => undefined);
    });
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", () => { resolve(); }));
    cleanup.push(() => new Promise<void>((resolve) => {
      for (const socket of open) socket.destroy();
      silent.close(() => { resolve(); });
    }));
    const port = (silent.address() as net.AddressInfo).port;
    const s = setup({ timeoutMs: 3_000 }, nativeApiProbe({ connectTimeoutMs: 60_000 }));
    s.prober.set({ key: "mute", host: "127.0.0.1", port, apiKey: null });
    s.prober.start();
    await new Promise((r) => setTimeout(r, 100));
    expect(s.results).toHaveLength(0);
    expect(s.prober.inFlight).toBe(1);
    s.clock.advance(3_000);
    await s.prober.settled();
    expect(s.results[0]?.outcome).toMatchObject({ kind: "unreachable", error: "no answer within 3000 ms", misses: 1 });
    // The aborted probe let go of its connection: no socket piles up per timeout.
    const deadline = Date.now() + 5_000;
    while (open.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(open.size).toBe(0);
  });

  it("a device that wants an encryption key answered: not a miss, and the error says what to do", async () => {
    const d = await device({ encryptionKey: KEY });
    const s = setup();
    s.prober.set({ key: "secure", host: "127.0.0.1", port: d.port, apiKey: null });
    s.prober.start();
    await s.prober.settled();
    expect(s.results[0]?.outcome).toEqual({ kind: "answered_error", error: expect.stringContaining("api: encryption: key") as unknown });
  });

  it("a device with encryption, probed with its key: an encrypted session reads what it runs", async () => {
    const d = await device({ encryptionKey: KEY, info: { ...INFO, projectName: "acme.safe", projectVersion: "2.0" } });
    const s = setup();
    s.prober.set({ key: "secure", host: "127.0.0.1", port: d.port, apiKey: KEY });
    s.prober.start();
    await s.prober.settled();
    expect(s.results[0]?.outcome).toEqual({
      kind: "answer",
      answer: { name: "sim", esphomeVersion: "2026.10.0", compilationTime: "2026-12-01 10:00:00 +0000", projectName: "acme.safe", projectVersion: "2.0" },
    });
    expect(d.encryptedSessions).toBe(1);
    // The next probe is a fresh session with a fresh handshake.
    await step(s, s.t.intervalMs);
    expect(s.results[1]?.outcome.kind).toBe("answer");
    expect(d.encryptedSessions).toBe(2);
  });

  it("a device with encryption refuses another key: answered (not a miss), and the error names the refused key", async () => {
    const d = await device({ encryptionKey: KEY });
    const s = setup();
    s.prober.set({ key: "secure", host: "127.0.0.1", port: d.port, apiKey: OTHER_KEY });
    s.prober.start();
    await s.prober.settled();
    expect(s.results[0]?.outcome).toEqual({
      kind: "answered_error",
      error: "the device refused the YAML's API encryption key (Noise handshake failure: Handshake MAC failure.)",
    });
    expect(d.encryptedSessions).toBe(0);
    // Fails closed: no second, plaintext try.
    expect(d.connections).toBe(1);
    // Still answering, so still probed at the online interval, not retried as a miss.
    await step(s, s.t.retryMs);
    expect(s.results).toHaveLength(1);
    await step(s, s.t.intervalMs - s.t.retryMs);
    expect(s.results).toHaveLength(2);
  });

  it("a YAML key that is no key (not base64, not 32 bytes, all zeros) is named as the problem, not as a missing key; a plaintext device still answers", async () => {
    expect(apiKeyProblem(KEY)).toBeNull();
    expect(apiKeyProblem("not base64 at all!")).toBe("it is not base64");
    expect(apiKeyProblem("px7tsbK3C7bpXHr2OevEV2ZMg/FrNBw2+O2pNPbedtA")).toBe("it is not base64");
    expect(apiKeyProblem(Buffer.alloc(31, 7).toString("base64"))).toBe("it is 31 bytes, not 32");
    expect(apiKeyProblem(Buffer.alloc(32).toString("base64"))).toBe("the all-zeros key is reserved");
    const secure = await device({ encryptionKey: KEY });
    const plain = await device();
    const s = setup();
    s.prober.set({ key: "secure", host: "127.0.0.1", port: secure.port, apiKey: "px7tsbK3C7bpXHr2OevEV2ZMg/FrNBw2" });
    s.prober.set({ key: "plain", host: "127.0.0.1", port: plain.port, apiKey: "short" });
    s.prober.start();
    while (s.results.length < 2) await step(s, 100);
    const outcome = (key: string): ProbeOutcome | undefined => s.results.find((r) => r.key === key)?.outcome;
    expect(outcome("secure")).toEqual({
      kind: "answered_error",
      error: "the device wants an API encryption key and the YAML's is not one (it is 24 bytes, not 32): api: encryption: key must be 32 bytes in base64, e.g. from `openssl rand -base64 32`",
    });
    expect(outcome("plain")).toMatchObject({ kind: "answer", answer: { name: "sim" } });
  });

  it("a device without encryption, probed with a key (its YAML gained one since): the client falls back to plaintext and reads it", async () => {
    const d = await device();
    const s = setup();
    s.prober.set({ key: "plain", host: "127.0.0.1", port: d.port, apiKey: KEY });
    s.prober.start();
    await s.prober.settled();
    expect(s.results[0]?.outcome).toMatchObject({ kind: "answer", answer: { esphomeVersion: "2026.10.0" } });
    // One refused Noise hello, then the plaintext session.
    expect(d.connections).toBe(2);
    expect(d.encryptedSessions).toBe(0);
  });

  it("a re-targeted device drops the old probe's outcome; a removed one reports nothing", async () => {
    const d = await device();
    const s = setup();
    s.prober.set({ key: "x", host: "127.0.0.1", port: d.port, apiKey: null });
    s.prober.start();
    s.prober.set({ key: "x", host: "127.0.0.1", port: d.port, apiKey: KEY });
    await s.prober.settled();
    expect(s.results).toHaveLength(1);
    s.prober.delete("x");
    await step(s, s.t.intervalMs * 2);
    expect(s.results).toHaveLength(1);
  });

  it("a probe function that throws is a miss, not a crash", async () => {
    const s = setup({}, () => { throw new Error("boom"); });
    s.prober.set({ key: "x", host: "127.0.0.1", port: 1, apiKey: null });
    s.prober.start();
    await s.prober.settled();
    expect(s.results[0]?.outcome).toMatchObject({ kind: "unreachable", error: "boom" });
  });

  it("states its detection bounds from the timings", () => {
    const t = timingsFor(60_000, 8);
    expect(t).toMatchObject({ intervalMs: 60_000, retryMs: 10_000, maxBackoffMs: 60_000, timeoutMs: 5_000, offlineAfterMisses: 3 });
    expect(detectionBoundMs(t)).toEqual({ offlineMs: 60_000 + 2 * 10_000 + 3 * 5_000, onlineMs: 65_000 });
    expect(timingsFor(3_000, 8)).toMatchObject({ retryMs: 500, timeoutMs: 1_500, maxBackoffMs: 3_000 });
  });
});
