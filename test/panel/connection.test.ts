import { describe, expect, it } from "vitest";
import { BuilderApi } from "../../panel/src/data/api.ts";
import { ApiError, Connection, websocketUrl, type SocketLike, type Timers } from "../../panel/src/data/connection.ts";
import type { SubscribedEvent } from "../../panel/src/data/types.ts";
import { initialState, job } from "./fixtures.ts";

interface SentFrame {
  command: string;
  message_id: string;
  args?: Record<string, unknown>;
}

class FakeSocket implements SocketLike {
  readyState = 0;
  readonly sent: SentFrame[] = [];
  closed = false;
  onopen: ((ev: Event) => unknown) | null = null;
  onclose: ((ev: CloseEvent) => unknown) | null = null;
  onmessage: ((ev: MessageEvent) => unknown) | null = null;
  onerror: ((ev: Event) => unknown) | null = null;
  readonly url: string;

  constructor(url: string) {
    this.url = url;
  }

  send(data: string): void {
    this.sent.push(JSON.parse(data) as SentFrame);
  }

  close(): void {
    this.closed = true;
  }

  open(): void {
    this.readyState = 1;
    this.onopen?.(new Event("open"));
  }

  receive(frame: object): void {
    this.onmessage?.({ data: JSON.stringify(frame) } as MessageEvent);
  }

  drop(): void {
    this.readyState = 3;
    this.onclose?.({ code: 1006 } as CloseEvent);
  }

  last(): SentFrame {
    const frame = this.sent[this.sent.length - 1];
    if (frame === undefined) throw new Error("nothing sent");
    return frame;
  }
}

/** Timers run by hand: `advance(ms)` fires what is due. */
class ManualTimers implements Timers {
  now = 0;
  #next = 1;
  readonly #timers = new Map<number, { at: number; fn: () => void }>();
  readonly delays: number[] = [];

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#next++;
    this.#timers.set(id, { at: this.now + ms, fn });
    this.delays.push(ms);
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  advance(ms: number): void {
    this.now += ms;
    for (const [id, t] of [...this.#timers].sort((a, b) => a[1].at - b[1].at)) {
      if (t.at <= this.now) {
        this.#timers.delete(id);
        t.fn();
      }
    }
  }
}

function setup() {
  const sockets: FakeSocket[] = [];
  const timers = new ManualTimers();
  const connection = new Connection({
    url: "ws://127.0.0.1:1/ws",
    createSocket: (url) => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    timers,
    initialDelayMs: 500,
    maxDelayMs: 4000,
  });
  const socket = (i = sockets.length - 1): FakeSocket => {
    const s = sockets[i];
    if (s === undefined) throw new Error("no socket");
    return s;
  };
  return { connection, sockets, timers, socket, api: new BuilderApi(connection) };
}

const flush = (): Promise<void> => new Promise((r) => setTimeout(r, 0));

describe("websocketUrl", () => {
  it("is /ws relative to the page, with ws or wss", () => {
    expect(websocketUrl("http://127.0.0.1:6052/")).toBe("ws://127.0.0.1:6052/ws");
    expect(websocketUrl("https://ha.local/api/hassio_ingress/abc123/")).toBe("wss://ha.local/api/hassio_ingress/abc123/ws");
    expect(websocketUrl("http://ha.local:8123/api/hassio_ingress/abc/index.html?theme=dark#jobs")).toBe(
      "ws://ha.local:8123/api/hassio_ingress/abc/ws",
    );
  });
});

describe("Connection", () => {
  it("queues a request until the socket opens, then matches the reply by message_id", async () => {
    const { connection, socket, api } = setup();
    const statuses: string[] = [];
    connection.onStatus((s) => statuses.push(s));
    connection.start();
    const reply = api.install("kitchen.yaml", { port: "/dev/ttyUSB0" });
    await flush();
    expect(socket().sent).toEqual([]);
    socket().open();
    await flush();
    const frame = socket().last();
    expect(frame).toMatchObject({ command: "firmware/install", args: { configuration: "kitchen.yaml", port: "/dev/ttyUSB0" } });
    socket().receive({ message_id: "other", result: null });
    socket().receive({ message_id: frame.message_id, result: job({ job_id: "aaaaaaaaaaaa" }) });
    await expect(reply).resolves.toMatchObject({ job_id: "aaaaaaaaaaaa" });
    expect(statuses).toEqual(["connecting", "open"]);
  });

  it("sends force_local only when asked and leaves out an empty port", async () => {
    const { connection, socket, api } = setup();
    connection.start();
    socket().open();
    void api.install("kitchen.yaml", { port: "", forceLocal: true });
    await flush();
    expect(socket().last().args).toEqual({ configuration: "kitchen.yaml", force_local: true });
    void api.install("kitchen.yaml");
    await flush();
    expect(socket().last().args).toEqual({ configuration: "kitchen.yaml" });
    void api.clearHistory();
    await flush();
    expect(socket().last()).not.toHaveProperty("args");
  });

  it("rejects with ApiError carrying the error code and details", async () => {
    const { connection, socket, api } = setup();
    connection.start();
    socket().open();
    const reply = api.cancel("0123456789ab");
    await flush();
    socket().receive({ message_id: socket().last().message_id, error_code: "invalid_args", details: "job already finished" });
    const err = await reply.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ code: "invalid_args", message: "job already finished" });
  });

  it("fails requests in flight when the socket drops, reconnects with doubling backoff and resets on success", async () => {
    const { connection, socket, sockets, timers, api } = setup();
    connection.start();
    socket().open();
    const reply = api.serialPorts();
    await flush();
    socket().drop();
    await expect(reply).rejects.toMatchObject({ code: "connection_lost" });
    expect(connection.status).toBe("reconnecting");
    timers.advance(500);
    expect(sockets).toHaveLength(2);
    socket().drop();
    timers.advance(999);
    expect(sockets).toHaveLength(2);
    timers.advance(1);
    expect(sockets).toHaveLength(3);
    socket().drop();
    timers.advance(2000);
    socket().drop();
    timers.advance(4000);
    socket().drop();
    timers.advance(4000);
    expect(timers.delays).toEqual([500, 1000, 2000, 4000, 4000]);
    socket().open();
    expect(connection.status).toBe("open");
    socket().drop();
    expect(timers.delays[timers.delays.length - 1]).toBe(500);
  });

  it("re-subscribes subscribe_events after a reconnect and re-seeds from the new snapshot", () => {
    const { connection, socket, timers, api } = setup();
    const seen: string[] = [];
    api.subscribeEvents({
      onInitialState: (s) => seen.push(`initial:${s.jobs.length}`),
      onEvent: (e: SubscribedEvent) => seen.push(e.event),
    });
    connection.start();
    socket().open();
    const first = socket().last();
    expect(first.command).toBe("subscribe_events");
    // The store keeps no output: the per-line events are not asked for.
    expect(first.args).toEqual({ job_output: false });
    socket().receive({ message_id: first.message_id, event: "initial_state", data: initialState() });
    socket().receive({ message_id: first.message_id, event: "job_queued", data: { job: job() } });
    socket().drop();
    timers.advance(500);
    socket().open();
    const second = socket().last();
    expect(second.command).toBe("subscribe_events");
    expect(second.message_id).not.toBe(first.message_id);
    // Late frames of the old subscription are ignored.
    socket().receive({ message_id: first.message_id, event: "job_removed", data: { job_id: "0123456789ab" } });
    socket().receive({ message_id: second.message_id, event: "initial_state", data: initialState({ jobs: [job()] }) });
    expect(seen).toEqual(["initial:0", "job_queued", "initial:1"]);
  });

  it("follows a job: history, live lines, progress, one result; replays after a reconnect", () => {
    const { connection, socket, timers, api } = setup();
    connection.start();
    socket().open();
    const log: string[] = [];
    const results: string[] = [];
    api.followJob("0123456789ab", {
      onReset: () => log.push("<reset>"),
      onOutput: (line) => log.push(line),
      onProgress: (p) => log.push(`${p}%`),
      onResult: (r) => results.push(r.status),
    });
    const sub = socket().last();
    expect(sub).toMatchObject({ command: "firmware/follow_job", args: { job_id: "0123456789ab", batch: true } });
    socket().receive({ message_id: sub.message_id, event: "output", data: { line: "a\n" } });
    socket().drop();
    timers.advance(500);
    socket().open();
    const again = socket().last();
    expect(again.command).toBe("firmware/follow_job");
    socket().receive({ message_id: again.message_id, event: "output_batch", data: { lines: ["a\n", "b\n"] } });
    socket().receive({ message_id: again.message_id, event: "progress", data: { progress: 20 } });
    socket().receive({ message_id: again.message_id, event: "result", data: { status: "completed", exit_code: 0, error: null } });
    socket().receive({ message_id: again.message_id, event: "output", data: { line: "late\n" } });
    expect(log).toEqual(["a\n", "<reset>", "a\n", "b\n", "20%"]);
    expect(results).toEqual(["completed"]);
    // The finished stream is not sent again on the next reconnect.
    const count = socket().sent.length;
    socket().drop();
    timers.advance(500);
    socket().open();
    expect(socket().sent.length).toBe(0);
    expect(count).toBeGreaterThan(0);
  });

  it("cancelling a stream asks the builder to end it (unsubscribe); frames on the way are ignored, and it is not sent again", () => {
    const { connection, socket, timers, api } = setup();
    connection.start();
    socket().open();
    const log: string[] = [];
    const follow = api.followJob("0123456789ab", { onReset: () => undefined, onOutput: (line) => log.push(line), onResult: () => log.push("<result>") });
    const sub = socket().last();
    socket().receive({ message_id: sub.message_id, event: "output", data: { line: "a\n" } });
    follow.cancel();
    expect(socket().last()).toMatchObject({ command: "unsubscribe", args: { message_id: sub.message_id } });
    // Its answer, and frames sent before the builder saw it, change nothing.
    socket().receive({ message_id: socket().last().message_id, result: { ended: 1 } });
    socket().receive({ message_id: sub.message_id, event: "output", data: { line: "late\n" } });
    expect(log).toEqual(["a\n"]);
    // Cancelled twice: asked once.
    const count = socket().sent.length;
    follow.cancel();
    expect(socket().sent.length).toBe(count);
    socket().drop();
    timers.advance(500);
    socket().open();
    expect(socket().sent).toEqual([]);
  });

  it("a stream that ended by itself is forgotten without an unsubscribe; one cancelled while disconnected sends nothing", () => {
    const { connection, socket, timers, api } = setup();
    connection.start();
    socket().open();
    const follow = api.followJob("0123456789ab", { onReset: () => undefined, onOutput: () => undefined, onResult: () => undefined });
    const sub = socket().last();
    socket().receive({ message_id: sub.message_id, event: "result", data: { status: "completed", exit_code: 0, error: null } });
    const count = socket().sent.length;
    follow.cancel();
    expect(socket().sent.length).toBe(count);
    const logs = api.deviceLogs("kitchen.yaml", { onStarted: () => undefined, onLine: () => undefined, onEnded: () => undefined });
    socket().drop();
    logs.cancel();
    timers.advance(500);
    socket().open();
    // Nothing about the cancelled stream: not sent again, no unsubscribe for a connection that is gone.
    expect(socket().sent).toEqual([]);
  });

  it("stopping a device's logs ends its stream with unsubscribe (which stops esphome logs on the builder)", () => {
    const { connection, socket, api } = setup();
    connection.start();
    socket().open();
    const logs = api.deviceLogs("kitchen.yaml", { onStarted: () => undefined, onLine: () => undefined, onEnded: () => undefined });
    const sub = socket().last();
    expect(sub).toMatchObject({ command: "devices/logs", args: { configuration: "kitchen.yaml" } });
    logs.cancel();
    expect(socket().last()).toMatchObject({ command: "unsubscribe", args: { message_id: sub.message_id } });
    expect(socket().sent.filter((f) => f.command === "devices/logs_stop")).toEqual([]);
  });

  it("reports a refused stream and a closed connection", async () => {
    const { connection, socket, api } = setup();
    connection.start();
    socket().open();
    const errors: string[] = [];
    api.followJob("ffffffffffff", {
      onReset: () => undefined,
      onOutput: () => undefined,
      onResult: () => undefined,
      onError: (e) => errors.push(e.code),
    });
    socket().receive({ message_id: socket().last().message_id, error_code: "not_found", details: "Job not found" });
    expect(errors).toEqual(["not_found"]);
    connection.close();
    expect(socket().closed).toBe(true);
    await expect(api.serialPorts()).rejects.toMatchObject({ code: "connection_closed" });
  });

  it("gives up waiting for the socket after the open timeout", async () => {
    const { connection, timers, api } = setup();
    connection.start();
    const reply = api.serialPorts();
    timers.advance(15_000);
    await expect(reply).rejects.toMatchObject({ code: "not_connected" });
  });
});
