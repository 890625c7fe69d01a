/**
 * The panel API's per-connection bounds under attack, against a real builder
 * process: a flood of streams, a flood of requests whose replies are never
 * read, and a subscriber that stops reading. While each runs, a second client
 * must get `ping` answered within 100 ms, and the builder's resident memory
 * must stay within the bound docs/THREAT_MODEL.md states.
 */
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import WebSocket from "ws";
import { MAX_IN_FLIGHT, MAX_STREAMS_PER_CONNECTION } from "../../src/api/ws-api.ts";
import { CLOSE_NOT_READING, CLOSE_NOT_READING_REASON, OUTBOX_LIMITS } from "../../src/api/outbox.ts";
import { ApiClient, type Frame } from "../helpers/api-client.ts";
import { STAND_IN, configDir, spawnBuilder, startBuilder, type BuilderProcess } from "../helpers/builder.ts";
import { PING_BOUND_MS, describeRtts, expectResponsive, pinger } from "../helpers/ping.ts";
import { waitFor } from "../helpers/tmp.ts";

const MiB = 1024 * 1024;

async function builderProcess(dir?: string): Promise<BuilderProcess> {
  const config = dir ?? (await configDir());
  return spawnBuilder(["--config-dir", config, "--port", "0", "--peer-link-port", "0", "--peer-link-host", "127.0.0.1", "--esphome", STAND_IN, "--no-mdns", "--log-level", "warning"]);
}

async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN) * 1024;
}

/** Samples the process's RSS every 50 ms until stopped; `peak` is the highest seen. */
function rssSampler(pid: number): { stop: () => Promise<number> } {
  let peak = 0;
  const state = { running: true };
  const loop = (async () => {
    while (state.running) {
      peak = Math.max(peak, await rssBytes(pid));
      await sleep(50);
    }
  })();
  return {
    stop: async () => {
      state.running = false;
      await loop;
      return Math.max(peak, await rssBytes(pid));
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function openRaw(port: number): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    ws.once("open", () => { resolve(ws); });
    ws.once("error", reject);
  });
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once("close", (code, reason) => { resolve({ code, reason: reason.toString("utf8") }); }));
}

/** Sends `count` requests made by `make`, yielding to the event loop every 500 and waiting while the socket holds over 4 MiB. */
async function flood(ws: WebSocket, count: number, make: (i: number) => string, shouldStop: () => boolean = () => false): Promise<number> {
  let i = 0;
  while (i < count && !shouldStop()) {
    if (ws.bufferedAmount > 4 * MiB) {
      await sleep(5);
      continue;
    }
    for (const end = Math.min(count, i + 500); i < end; i++) ws.send(make(i));
    await new Promise((resolve) => setImmediate(resolve));
  }
  return i;
}

describe("a flood of streams on one connection", () => {
  it(`opens ${MAX_STREAMS_PER_CONNECTION} of 30,000 subscribe_events and refuses the rest with too_many_streams; the builder keeps answering pings (95 % under ${PING_BOUND_MS} ms), also while the socket closes`, { timeout: 120_000 }, async () => {
    const builder = await builderProcess();
    const pid = builder.child.pid!;
    const baseline = await rssBytes(pid);
    const rss = rssSampler(pid);
    const pings = await pinger(builder.port);

    const ws = await openRaw(builder.port);
    const byKind = { initial_state: 0, too_many_streams: 0, other: 0 };
    let replies = 0;
    ws.on("message", (data: Buffer) => {
      const frame = JSON.parse(data.toString("utf8")) as Frame;
      if (frame.event === "initial_state") byKind.initial_state++;
      else if (frame.error_code === "too_many_streams") byKind.too_many_streams++;
      else if (frame.event === undefined) byKind.other++;
      if (frame.event === undefined || frame.event === "initial_state") replies++;
    });
    let sentBytes = 0;
    await flood(ws, 30_000, (i) => {
      const text = JSON.stringify({ command: "subscribe_events", message_id: `subscription-${i}`, args: {} });
      sentBytes += text.length;
      return text;
    });
    await waitFor(() => replies === 30_000, 60_000, "an answer to every subscribe_events");
    const gone = closed(ws);
    ws.close();
    await gone;
    await sleep(500); // pings keep running while the builder forgets the connection

    const rtts = await pings.stop();
    const peak = await rss.stop();
    console.log(`30,000 subscribe_events (${(sentBytes / MiB).toFixed(1)} MiB): ${describeRtts(rtts)}; RSS +${((peak - baseline) / MiB).toFixed(1)} MiB`);
    expect(sentBytes).toBeGreaterThan(2 * MiB);
    expect(byKind).toEqual({ initial_state: MAX_STREAMS_PER_CONNECTION, too_many_streams: 30_000 - MAX_STREAMS_PER_CONNECTION, other: 0 });
    expectResponsive(rtts, 20);
    expect(peak - baseline).toBeLessThan(48 * MiB);
    // A new connection has its own streams.
    const fresh = await ApiClient.connect(builder.port);
    expect((await fresh.stream("subscribe_events").until((f) => f.event === "initial_state")).event).toBe("initial_state");
    fresh.close();
  });
});

describe("streams per connection (in process, to see the listeners)", () => {
  it("names the limit and the way out in the refusal", async () => {
    const { port } = await startBuilder();
    const client = await ApiClient.connect(port);
    for (let i = 0; i < MAX_STREAMS_PER_CONNECTION; i++) await client.stream("subscribe_events").until((f) => f.event === "initial_state");
    const refused = client.stream("subscribe_events");
    const frame = await client.waitFrame((f) => f.message_id === refused.id);
    expect(frame).toMatchObject({ error_code: "too_many_streams" });
    expect(frame.details).toBe(
      `This connection already has ${MAX_STREAMS_PER_CONNECTION} open streams, the most allowed; end one with unsubscribe {message_id}, wait for one to end (a follow_job stream ends with its job), or reconnect, which ends them all`,
    );
    expect(await client.call("ping")).toEqual({ pong: true }); // replies still work
    client.close();
  });

  it("counts only streams still open: ended and refused ones free their slot", async () => {
    const { builder, port } = await startBuilder({ esphome: "/nonexistent/esphome" });
    const client = await ApiClient.connect(port);
    const job = await client.call<{ job_id: string }>("firmware/compile", { configuration: "kitchen.yaml" });
    await client.stream("firmware/follow_job", { job_id: job.job_id }).until((f) => f.event === "result");
    for (let i = 0; i < MAX_STREAMS_PER_CONNECTION + 5; i++) {
      // A follow of a finished job ends at once; a follow of an unknown job never starts.
      await client.stream("firmware/follow_job", { job_id: job.job_id }).until((f) => f.event === "result");
      expect((await client.request("firmware/follow_job", { job_id: "0123456789ab" })).error_code).toBe("not_found");
    }
    const baseline = builder.bus.listenerCount("job_queued");
    for (let i = 0; i < MAX_STREAMS_PER_CONNECTION; i++) await client.stream("subscribe_events").until((f) => f.event === "initial_state");
    expect(builder.bus.listenerCount("job_queued")).toBe(baseline + MAX_STREAMS_PER_CONNECTION);
    client.close();
  });

  it("detaches every stream's listeners when the socket closes, even streams that share a message_id", async () => {
    const { builder, port } = await startBuilder();
    const baseline = builder.bus.listenerCount("job_queued");
    const ws = await openRaw(port);
    let initial = 0;
    ws.on("message", (data: Buffer) => { if ((JSON.parse(data.toString("utf8")) as Frame).event === "initial_state") initial++; });
    for (let i = 0; i < 5; i++) ws.send(JSON.stringify({ command: "subscribe_events", message_id: "same" }));
    await waitFor(() => initial === 5, 5000, "five initial states");
    expect(builder.bus.listenerCount("job_queued")).toBe(baseline + 5);
    ws.close();
    await waitFor(() => builder.bus.listenerCount("job_queued") === baseline, 5000, "the listeners to go");
  });
});

describe("unsubscribe", () => {
  it("ends a follow_job of a running job: its listeners go, nothing more is sent on it, and its slot is free", async () => {
    vi.stubEnv("ESPHOME_STANDIN_COMPILE_SECONDS", "30");
    vi.stubEnv("ESPHOME_STANDIN_FAIL", "");
    onTestFinished(() => { vi.unstubAllEnvs(); });
    const { builder, port } = await startBuilder();
    const client = await ApiClient.connect(port);
    const job = await client.call<{ job_id: string }>("firmware/compile", { configuration: "kitchen.yaml" });
    const baseline = builder.bus.listenerCount("job_output");
    const follows = Array.from({ length: MAX_STREAMS_PER_CONNECTION }, () => client.stream("firmware/follow_job", { job_id: job.job_id }));
    await waitFor(() => builder.bus.listenerCount("job_output") === baseline + MAX_STREAMS_PER_CONNECTION, 10_000, "every follow to start");
    // Full: one more is refused…
    expect((await client.request("firmware/follow_job", { job_id: job.job_id })).error_code).toBe("too_many_streams");
    // …until one is ended by its message_id.
    const first = follows[0]!;
    expect(await client.call("unsubscribe", { message_id: first.id })).toEqual({ ended: 1 });
    expect(builder.bus.listenerCount("job_output")).toBe(baseline + MAX_STREAMS_PER_CONNECTION - 1);
    const seen = first.frames.length;
    const next = client.stream("firmware/follow_job", { job_id: job.job_id });
    await waitFor(() => builder.bus.listenerCount("job_output") === baseline + MAX_STREAMS_PER_CONNECTION, 10_000, "the new follow to start");
    await client.call("firmware/cancel", { job_id: job.job_id });
    await next.until((f) => f.event === "result");
    // The ended stream saw nothing after its unsubscribe, not even the result.
    expect(first.frames.length).toBe(seen);
    // Ending it again: nothing is open under that id.
    const again = await client.request("unsubscribe", { message_id: first.id });
    expect(again).toMatchObject({ error_code: "not_found" });
    expect(again.details).toMatch(/No open stream with message_id/);
    client.close();
  });

  it("ends every stream opened under the same message_id, and refuses bad arguments without ending anything", async () => {
    const { builder, port } = await startBuilder();
    const baseline = builder.bus.listenerCount("job_queued");
    const ws = await openRaw(port);
    const frames: Frame[] = [];
    ws.on("message", (data: Buffer) => { frames.push(JSON.parse(data.toString("utf8")) as Frame); });
    for (let i = 0; i < 3; i++) ws.send(JSON.stringify({ command: "subscribe_events", message_id: 7 }));
    await waitFor(() => frames.filter((f) => f.event === "initial_state").length === 3, 5000, "three initial states");
    for (const [id, args] of [["a", {}], ["b", { message_id: 7, extra: 1 }], ["c", { message_id: { nested: true } }]] as const) {
      ws.send(JSON.stringify({ command: "unsubscribe", message_id: id, args }));
      await waitFor(() => frames.some((f) => f.message_id === id), 5000, `the answer to ${id}`);
      expect(frames.find((f) => f.message_id === id)).toMatchObject({ error_code: "invalid_args" });
    }
    expect(builder.bus.listenerCount("job_queued")).toBe(baseline + 3);
    ws.send(JSON.stringify({ command: "unsubscribe", message_id: "d", args: { message_id: 7 } }));
    await waitFor(() => frames.some((f) => f.message_id === "d"), 5000, "the unsubscribe's answer");
    expect(frames.find((f) => f.message_id === "d")).toMatchObject({ result: { ended: 3 } });
    expect(builder.bus.listenerCount("job_queued")).toBe(baseline);
    ws.close();
  });
});

describe("what a connection leaves for its close", () => {
  it("closes the pairing window a connection opened (200 times) when it closes, and not while another panel still wants it open", async () => {
    const { builder, port } = await startBuilder();
    const client = await ApiClient.connect(port);
    await client.call("remote_build/set_settings", { enabled: true });
    for (let i = 0; i < 200; i++) await client.call("remote_build/set_pairing_window", { open: true });
    expect(builder.remote.receiver.settings().pairing_window_open).toBe(true);
    const other = await ApiClient.connect(port);
    await other.call("remote_build/set_pairing_window", { open: true });
    client.close();
    // Still open: the other panel asked for it too.
    await sleep(200);
    expect(builder.remote.receiver.settings().pairing_window_open).toBe(true);
    other.close();
    await waitFor(() => !builder.remote.receiver.settings().pairing_window_open, 5000, "the window to close");
  });
});

describe("a client that sends requests and never reads the replies", () => {
  it(`stops reading it (memory bounded, pings answered, 95 % under ${PING_BOUND_MS} ms), then answers all 400,000 requests in order once it reads`, { timeout: 300_000 }, async () => {
    const builder = await builderProcess();
    const pid = builder.child.pid!;
    const baseline = await rssBytes(pid);
    const rss = rssSampler(pid);
    const pings = await pinger(builder.port);

    const ws = await openRaw(builder.port);
    ws.pause(); // reads nothing
    const replies: Frame[] = [];
    ws.on("message", (data: Buffer) => { replies.push(JSON.parse(data.toString("utf8")) as Frame); });
    const total = 400_000;
    const ping = (i: number): string => `{"command":"ping","message_id":${i}}`;
    // Sends until the builder stops reading: the client's own socket then stays full.
    let fullSince = Number.POSITIVE_INFINITY;
    const sent = await flood(ws, total, ping, () => {
      if (ws.bufferedAmount <= 4 * MiB) fullSince = Number.POSITIVE_INFINITY;
      else fullSince = Math.min(fullSince, performance.now());
      return performance.now() - fullSince > 2000;
    });
    const heldRtts = await pings.stop();
    const heldPeak = await rss.stop();
    console.log(`reply flood: the builder stopped reading after ~${sent - Math.round(ws.bufferedAmount / ping(total).length)} requests; ${describeRtts(heldRtts)}; RSS +${((heldPeak - baseline) / MiB).toFixed(1)} MiB`);
    expect(sent).toBeLessThan(total); // it did stop reading
    expectResponsive(heldRtts, 50);
    expect(heldPeak - baseline).toBeLessThan(48 * MiB);

    // Now the client reads: every request is answered, in order, none lost.
    const started = performance.now();
    ws.resume();
    await flood(ws, total - sent, (i) => ping(sent + i));
    await waitFor(() => replies.length === total, 240_000, "all 400,000 replies");
    console.log(`reply flood: 400,000 replies read in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    expect(replies.every((r, i) => r.message_id === i && (r.result as { pong: boolean }).pong)).toBe(true);
    expect(builder.child.exitCode).toBeNull();
    ws.close();
  });

  it(`answers a burst of pipelined requests, more than the ${MAX_IN_FLIGHT} that may run at once, all and in order`, async () => {
    const { port } = await startBuilder();
    const ws = await openRaw(port);
    const replies: Frame[] = [];
    ws.on("message", (data: Buffer) => { replies.push(JSON.parse(data.toString("utf8")) as Frame); });
    // One write carrying many requests: they arrive in one read, more than may run at once.
    const batch = Array.from({ length: MAX_IN_FLIGHT * 10 }, (_, i) => `{"command":"${i % 2 === 0 ? "ping" : "devices/list"}","message_id":${i}}`);
    for (const text of batch) ws.send(text);
    await waitFor(() => replies.length === batch.length, 10_000, "every reply");
    expect(replies.map((r) => r.message_id)).toEqual(batch.map((_, i) => i));
    ws.close();
  });
});

describe("a subscriber that stops reading", () => {
  it(`is closed with ${CLOSE_NOT_READING} once its unsent events pass the limit; pings answered (95 % under ${PING_BOUND_MS} ms), memory bounded`, { timeout: 180_000 }, async () => {
    const dir = await configDir();
    const builder = await builderProcess(dir);
    const pid = builder.child.pid!;
    const other = await ApiClient.connect(builder.port);
    await other.call("ping");

    const ws = await openRaw(builder.port);
    const initial = new Promise<void>((resolve) => ws.on("message", () => { resolve(); }));
    ws.send(JSON.stringify({ command: "subscribe_events", message_id: 1, args: { job_output: false } }));
    await initial;
    ws.pause(); // and never reads again
    const gone = closed(ws);
    const baseline = await rssBytes(pid);
    const rss = rssSampler(pid);
    const pings = await pinger(builder.port);

    // Each rewrite of a device is a `device_updated` event of ~32 KiB (its
    // comment) for the subscriber. The same 12 files again and again, a little
    // apart (the scanner waits 250 ms for quiet): the scanner keeps < 1 MiB,
    // and each of its rescans is short.
    const closing = (): boolean => builder.stderr.join("").includes("closing the panel connection from");
    let events = 0;
    for (let round = 0; !closing() && round < 200; round++) {
      const comment = String.fromCharCode(97 + (round % 26)).repeat(32 * 1024 - 1) + String(round);
      await Promise.all(
        Array.from({ length: 12 }, (_, k) => writeFile(path.join(dir, `flood-${k}.yaml`), `esphome:\n  name: flood-${k}\n  comment: ${comment}\nesp32:\n  board: esp32dev\n`)),
      );
      events += 12;
      await sleep(280);
    }
    const rtts = await pings.stop();
    const peak = await rss.stop();
    await waitFor(closing, 30_000, "the warning in the log");
    // The close frame waits behind what the client never read: it sees it once it reads.
    ws.resume();
    const result = await Promise.race([gone, sleep(30_000).then(() => undefined)]);
    console.log(`stalled subscriber: closed after ${events} device_updated events (~${((events * 32 * 1024) / MiB).toFixed(0)} MiB); ${describeRtts(rtts)}; RSS +${((peak - baseline) / MiB).toFixed(1)} MiB`);
    expect(result).toEqual({ code: CLOSE_NOT_READING, reason: CLOSE_NOT_READING_REASON });
    expectResponsive(rtts, 100);
    expect(peak - baseline).toBeLessThan(96 * MiB);
    const logged = /WARNING \[ws-api\] closing the panel connection from 127\.0\.0\.1 \(1008 not reading: too much unsent data\): the client is not reading: (\d+) frames \((\d+) bytes\) unsent/.exec(builder.stderr.join(""));
    expect(logged).not.toBeNull();
    // Closed as the limit was passed: by at most the one event that passed it.
    expect(Number(logged?.[2])).toBeGreaterThan(OUTBOX_LIMITS.closeBytes);
    expect(Number(logged?.[2])).toBeLessThan(OUTBOX_LIMITS.closeBytes + 40 * 1024);
    expect(await other.call("ping")).toEqual({ pong: true });
    other.close();
  });
});
