/**
 * The build server's connect-back dialer: when a quiet approved peer is
 * dialled (fake clock), how retries back off, the dial itself against a real
 * listener (the pin is checked before msg3), and the timings variable.
 */
import { afterEach, beforeEach, describe, expect, it, onTestFinished, vi } from "vitest";
import { WebSocketServer } from "ws";
import {
  CONNECT_BACK_TIMINGS,
  ConnectBackDialer,
  afterDial,
  dialConnectBack,
  parseConnectBackTimings,
  retryDelay,
  skipReason,
  type ConnectBackPeer,
  type DialOutcome,
  type DialState,
} from "../../../src/remote-build/build-server/connect-back.ts";
import { accept, type Accepted } from "../../../src/remote-build/transport/handshake.ts";
import { pinSha256 } from "../../../src/remote-build/transport/fingerprint.ts";
import { generateStaticKey, publicKeyOf } from "../../../src/remote-build/transport/noise-primitives.ts";

const T = CONNECT_BACK_TIMINGS;
const PEER: ConnectBackPeer = { dashboard_id: "a".repeat(32), pin_sha256: "f".repeat(64), peer_ip: "192.0.2.7", connect_back_port: 6055, connected: false };
const fresh = (quietSince = 0): DialState => ({ quietSince, nextAttemptAt: 0, failures: 0, dialing: false });

describe("retryDelay", () => {
  it("starts at 300 s and doubles to the 3600 s cap", () => {
    const mid = (): number => 0.5; // no jitter
    expect([1, 2, 3, 4, 5, 9].map((n) => retryDelay(n, T, mid))).toEqual([300_000, 600_000, 1_200_000, 2_400_000, 3_600_000, 3_600_000]);
  });

  it("jitters by at most ±20 % and never passes the cap", () => {
    expect(retryDelay(1, T, () => 0)).toBe(240_000);
    expect(retryDelay(1, T, () => 1)).toBe(360_000);
    expect(retryDelay(3, T, () => 0)).toBe(960_000);
    expect(retryDelay(5, T, () => 0)).toBe(2_880_000);
    expect(retryDelay(5, T, () => 1)).toBe(3_600_000);
  });
});

describe("skipReason", () => {
  it("dials a peer with an endpoint after 300 s without a session", () => {
    expect(skipReason(PEER, fresh(0), 300_000, T)).toBeNull();
    expect(skipReason(PEER, fresh(0), 299_999, T)).toBe("not_quiet");
  });

  it.each([
    ["connected", { ...PEER, connected: true }, fresh()],
    ["no_endpoint", { ...PEER, connect_back_port: 0 }, fresh()],
    ["no_endpoint", { ...PEER, peer_ip: "" }, fresh()],
    ["dialing", PEER, { ...fresh(), dialing: true }],
    ["backing_off", PEER, { ...fresh(), nextAttemptAt: 10_000_000 }],
  ] as const)("skips: %s", (reason, peer, state) => {
    expect(skipReason(peer, state, 1_000_000, T)).toBe(reason);
  });
});

describe("afterDial", () => {
  const mid = (): number => 0.5;
  it("ok: failures reset, and a check again after the first backoff if no session follows", () => {
    expect(afterDial({ ...fresh(), failures: 3, dialing: true }, { kind: "ok" }, 1000, T, mid)).toEqual({ quietSince: 0, nextAttemptAt: 301_000, failures: 0, dialing: false });
  });
  it("rebind_in_progress: again after 30 s, failures unchanged", () => {
    expect(afterDial({ ...fresh(), failures: 2 }, { kind: "rejected", reason: "rebind_in_progress" }, 1000, T, mid)).toMatchObject({ nextAttemptAt: 31_000, failures: 2 });
  });
  it.each<DialOutcome>([
    { kind: "rejected", reason: "probe_failed" },
    { kind: "rejected", reason: "no_approved_peer" },
    { kind: "rejected", reason: "already_connected" },
    { kind: "failed", error: "unreachable" },
  ])("another refusal or a failure backs off: %j", (outcome) => {
    const one = afterDial(fresh(), outcome, 0, T, mid);
    expect(one).toMatchObject({ failures: 1, nextAttemptAt: 300_000 });
    expect(afterDial(one, outcome, 0, T, mid)).toMatchObject({ failures: 2, nextAttemptAt: 600_000 });
  });
});

describe("ConnectBackDialer with a fake clock", () => {
  beforeEach(() => { vi.useFakeTimers({ now: 0 }); });
  afterEach(() => { vi.useRealTimers(); });

  function dialer(opts: { peers: ConnectBackPeer[]; ownPort?: number | null; outcome?: DialOutcome | ((n: number) => DialOutcome) }) {
    const calls: { at: number; peer: string; ownPort: number; timeoutMs: number }[] = [];
    const ownPort = { value: opts.ownPort === undefined ? 6055 : opts.ownPort };
    const d = new ConnectBackDialer({
      peers: () => opts.peers,
      ownPort: () => ownPort.value,
      dial: (peer, port, timeoutMs) => {
        calls.push({ at: Date.now(), peer: peer.dashboard_id, ownPort: port, timeoutMs });
        const o = opts.outcome ?? { kind: "failed", error: "unreachable" };
        return Promise.resolve(typeof o === "function" ? o(calls.length) : o);
      },
      now: () => Date.now(),
      random: () => 0.5,
    });
    d.start();
    onTestFinished(() => { d.stop(); });
    return { d, calls, ownPort };
  }

  it("sweeps every 30 s and dials a peer once it has been quiet for 300 s, with a 30 s dial limit", async () => {
    const { calls } = dialer({ peers: [PEER] });
    await vi.advanceTimersByTimeAsync(270_000);
    expect(calls).toEqual([]);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(calls).toEqual([{ at: 300_000, peer: PEER.dashboard_id, ownPort: 6055, timeoutMs: 30_000 }]);
  });

  it("backs off after failures: 300 s, 600 s, 1200 s … (sweep granularity 30 s)", async () => {
    const { calls } = dialer({ peers: [PEER] });
    await vi.advanceTimersByTimeAsync(300_000 + 300_000 + 600_000 + 1_200_000);
    expect(calls.map((c) => c.at)).toEqual([300_000, 600_000, 1_200_000, 2_400_000]);
  });

  it("retries 30 s after rebind_in_progress", async () => {
    const { calls } = dialer({ peers: [PEER], outcome: (n) => (n === 1 ? { kind: "rejected", reason: "rebind_in_progress" } : { kind: "ok" }) });
    await vi.advanceTimersByTimeAsync(330_000);
    expect(calls.map((c) => c.at)).toEqual([300_000, 330_000]);
  });

  it("never dials a connected peer, and a peer seen connected is quiet only from its last sighting", async () => {
    const peer = { ...PEER, connected: true };
    const { calls } = dialer({ peers: [peer] });
    await vi.advanceTimersByTimeAsync(600_000);
    expect(calls).toEqual([]);
    peer.connected = false; // its session ended between the sweeps at 600 s and 630 s
    await vi.advanceTimersByTimeAsync(299_000);
    expect(calls).toEqual([]);
    await vi.advanceTimersByTimeAsync(31_000);
    expect(calls.map((c) => c.at)).toEqual([900_000]);
  });

  it("does not dial while it is no build server with a bound listener", async () => {
    const { calls, ownPort } = dialer({ peers: [PEER], ownPort: null });
    await vi.advanceTimersByTimeAsync(900_000);
    expect(calls).toEqual([]);
    ownPort.value = 7000;
    await vi.advanceTimersByTimeAsync(30_000);
    expect(calls).toEqual([{ at: 930_000, peer: PEER.dashboard_id, ownPort: 7000, timeoutMs: 30_000 }]);
  });

  it("does not dial a peer that never announced a port, and forgets removed peers", async () => {
    const peers = [{ ...PEER, connect_back_port: 0 }, { ...PEER, dashboard_id: "b".repeat(32) }];
    const { d, calls } = dialer({ peers });
    await vi.advanceTimersByTimeAsync(300_000);
    expect(calls.map((c) => c.peer)).toEqual(["b".repeat(32)]);
    peers.pop();
    await vi.advanceTimersByTimeAsync(30_000);
    expect(d.state("b".repeat(32))).toBeUndefined();
  });

  it("a dial that throws counts as failed", async () => {
    const d = new ConnectBackDialer({ peers: () => [PEER], ownPort: () => 1, dial: () => Promise.reject(new Error("boom")), now: () => Date.now(), random: () => 0.5 });
    vi.setSystemTime(300_000);
    await d.sweep();
    expect(d.state(PEER.dashboard_id)).toMatchObject({ failures: 1, dialing: false, nextAttemptAt: 600_000 });
  });
});

/** A real peer-link responder on loopback that records what it was told. */
async function responder(answer: (a: Accepted) => Record<string, unknown> | null) {
  const key = generateStaticKey();
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false });
  onTestFinished(() => new Promise<void>((r) => { for (const c of wss.clients) c.terminate(); wss.close(() => { r(); }); }));
  await new Promise((r) => wss.once("listening", r));
  const seen: { accepted?: Accepted; error?: string }[] = [];
  wss.on("connection", (ws, req) => {
    accept(ws, req, { staticPrivateKey: key, stepTimeoutMs: 2000 }).then(
      (a) => {
        seen.push({ accepted: a });
        const reply = answer(a);
        if (reply !== null) a.respond(reply).close("done");
      },
      (err: unknown) => { seen.push({ error: String(err) }); },
    );
  });
  return { port: (wss.address() as { port: number }).port, pin: pinSha256(publicKeyOf(key)), seen };
}

describe("dialConnectBack", () => {
  const ourKey = generateStaticKey();

  it("says intent connect_back and our port in msg3, and reads the answer", async () => {
    const r = await responder(() => ({ intent_response: "ok" }));
    expect(await dialConnectBack({ host: "127.0.0.1", port: r.port, pin: r.pin, ownPort: 6123, privateKey: ourKey, timeoutMs: 3000 })).toEqual({ kind: "ok" });
    expect(r.seen[0]?.accepted).toMatchObject({ intent: "connect_back", payload: { peer_link_port: 6123 }, remotePin: pinSha256(publicKeyOf(ourKey)) });
  });

  it("gives a refusal's reason", async () => {
    const r = await responder(() => ({ intent_response: "rejected", reason: "rebind_in_progress" }));
    expect(await dialConnectBack({ host: "127.0.0.1", port: r.port, pin: r.pin, ownPort: 1, privateKey: ourKey, timeoutMs: 3000 })).toEqual({ kind: "rejected", reason: "rebind_in_progress" });
  });

  it("aborts before msg3 when the key there is not the stored pin: nothing reaches it", async () => {
    const r = await responder(() => ({ intent_response: "ok" }));
    const outcome = await dialConnectBack({ host: "127.0.0.1", port: r.port, pin: "0".repeat(64), ownPort: 6123, privateKey: ourKey, timeoutMs: 3000 });
    expect(outcome).toMatchObject({ kind: "failed", error: expect.stringContaining("pin_mismatch") as unknown });
    await vi.waitFor(() => { expect(r.seen).toHaveLength(1); });
    expect(r.seen[0]?.accepted).toBeUndefined();
    expect(r.seen[0]?.error).toMatch(/message 3/);
  });

  it("gives up after its time limit when no answer comes", async () => {
    const r = await responder(() => null);
    const started = Date.now();
    const outcome = await dialConnectBack({ host: "127.0.0.1", port: r.port, pin: r.pin, ownPort: 1, privateKey: ourKey, timeoutMs: 300 });
    expect(outcome).toEqual({ kind: "failed", error: "no answer within 300 ms" });
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("fails when nothing listens", async () => {
    const r = await responder(() => null);
    const outcome = await dialConnectBack({ host: "127.0.0.1", port: 1, pin: r.pin, ownPort: 1, privateKey: ourKey, timeoutMs: 3000 });
    expect(outcome).toMatchObject({ kind: "failed", error: expect.stringContaining("unreachable") as unknown });
  });
});

describe("parseConnectBackTimings", () => {
  it("reads a JSON object of timings; unset or empty is none", () => {
    expect(parseConnectBackTimings(undefined)).toBeUndefined();
    expect(parseConnectBackTimings(" ")).toBeUndefined();
    expect(parseConnectBackTimings('{"quietAfterMs": 1500, "backoffJitter": 0}')).toEqual({ quietAfterMs: 1500, backoffJitter: 0 });
  });

  it.each([
    ["not json", /must be a JSON object/],
    ["[1]", /expected object/],
    ['{"quietAfterMs": 0}', /quietAfterMs/],
    ['{"quietAfterMs": 1.5}', /quietAfterMs/],
    ['{"backoffJitter": 2}', /backoffJitter/],
    ['{"sweepMs": 10}', /sweepMs/],
  ])("refuses %s with a clear error", (raw, message) => {
    expect(() => parseConnectBackTimings(raw)).toThrow(message);
  });
});
