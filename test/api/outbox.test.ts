/**
 * The Outbox against a real WebSocket pair on the loopback: a client that
 * stops reading, and what the server side knows and does about it.
 */
import type { AddressInfo } from "node:net";
import { describe, expect, it, onTestFinished } from "vitest";
import WebSocket, { WebSocketServer } from "ws";
import { Outbox, type OutboxLimits } from "../../src/api/outbox.ts";
import { waitFor } from "../helpers/tmp.ts";

const LIMITS: OutboxLimits = {
  dropBytes: 256 * 1024,
  dropFrames: 200,
  holdBytes: 128 * 1024,
  holdFrames: 100,
  closeBytes: 1024 * 1024,
  closeFrames: 1000,
};

/** A server socket and a client that reads nothing until `resume()`. */
async function pair(limits: OutboxLimits = LIMITS): Promise<{ outbox: Outbox; server: WebSocket; client: WebSocket; received: string[]; overflows: string[] }> {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, autoPong: false });
  await new Promise<void>((resolve) => wss.once("listening", resolve));
  const accepted = new Promise<WebSocket>((resolve) => wss.once("connection", resolve));
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
  const received: string[] = [];
  client.on("message", (data: Buffer) => received.push(data.toString("utf8")));
  await new Promise<void>((resolve) => client.once("open", () => { resolve(); }));
  client.pause();
  const server = await accepted;
  const overflows: string[] = [];
  const outbox = new Outbox(server, (detail) => overflows.push(detail), limits);
  onTestFinished(() => {
    client.terminate();
    wss.close();
  });
  return { outbox, server, client, received, overflows };
}

/** Fills the kernel's socket buffers so what follows stays in the process. */
function fillKernel(outbox: Outbox): void {
  const big = "k".repeat(60_000);
  for (let i = 0; i < 400 && outbox.unsent().bytes === 0; i++) outbox.send(big, "paced");
}

describe("Outbox", () => {
  it("knows exactly how many frames and bytes the client has not been sent yet, and forgets them once sent", async () => {
    const { outbox, client, received } = await pair({ ...LIMITS, closeBytes: 64 * 1024 * 1024, closeFrames: 100_000 });
    fillKernel(outbox);
    const before = outbox.unsent();
    expect(before.bytes).toBeGreaterThan(0);
    for (let i = 0; i < 50; i++) outbox.send(`{"n":${i}}`, "paced");
    const after = outbox.unsent();
    expect(after.frames).toBe(before.frames + 50);
    expect(after.bytes).toBe(before.bytes + 50 * (2 + 7) + 40 * 1); // 2-byte headers; ten payloads of 7 bytes, forty of 8
    client.resume();
    await waitFor(() => outbox.unsent().frames === 0, 10_000, "the backlog to drain");
    expect(outbox.unsent().bytes).toBe(0);
    await waitFor(() => received.at(-1) === '{"n":49}', 10_000, "the last frame");
  });

  it("skips droppable frames while backlogged, never paced ones", async () => {
    const { outbox } = await pair();
    fillKernel(outbox);
    for (let i = 0; i < LIMITS.dropFrames; i++) outbox.send("p", "paced");
    expect(outbox.backlogged()).toBe(true);
    const frames = outbox.unsent().frames;
    expect(outbox.send("d", "droppable")).toBe(false);
    expect(outbox.send("p", "paced")).toBe(true);
    expect(outbox.unsent().frames).toBe(frames + 1);
  });

  it("holds past holdFrames unread replies and events, but not for output", async () => {
    const { outbox, client } = await pair();
    fillKernel(outbox);
    for (let i = 0; i < LIMITS.holdFrames + 50; i++) outbox.send("p", "paced");
    expect(outbox.held()).toBe(false);
    for (let i = 0; i < LIMITS.holdFrames; i++) outbox.send(i % 2 === 0 ? "r" : "e", i % 2 === 0 ? "reply" : "event");
    expect(outbox.held()).toBe(false);
    outbox.pong(Buffer.from("ping"));
    expect(outbox.held()).toBe(true);
    client.resume();
    await waitFor(() => !outbox.held(), 10_000, "the hold to lift");
  });

  it("holds past holdBytes of unread replies", async () => {
    const { outbox } = await pair();
    fillKernel(outbox);
    outbox.send("r".repeat(LIMITS.holdBytes), "reply");
    expect(outbox.held()).toBe(true);
  });

  it("reports an overflow once past closeFrames, and sends nothing after it", async () => {
    const { outbox, overflows } = await pair();
    fillKernel(outbox);
    let sent = 0;
    while (outbox.send("e", "event")) sent++;
    expect(overflows).toHaveLength(1);
    expect(overflows[0]).toMatch(/^the client is not reading: \d+ frames \(\d+ bytes\) unsent$/);
    expect(outbox.unsent().frames).toBe(LIMITS.closeFrames + 1);
    expect(sent).toBeLessThanOrEqual(LIMITS.closeFrames + 1);
    outbox.pong(Buffer.from("x"));
    expect(outbox.unsent().frames).toBe(LIMITS.closeFrames + 1);
  });

  it("reports an overflow past closeBytes", async () => {
    const { outbox, overflows } = await pair();
    fillKernel(outbox);
    outbox.send("x".repeat(LIMITS.closeBytes), "paced");
    expect(overflows).toHaveLength(1);
    expect(outbox.send("y", "reply")).toBe(false);
  });

  it("sends nothing on a socket that is not open", async () => {
    const { outbox, server } = await pair();
    server.close();
    expect(outbox.send("late", "reply")).toBe(false);
    expect(outbox.unsent().frames).toBe(0);
  });
});
