import { describe, expect, it } from "vitest";
import { MAX_MESSAGE_BYTES } from "../../src/api/ws-api.ts";
import { ApiClient } from "../helpers/api-client.ts";
import { startBuilder } from "../helpers/builder.ts";

async function connected() {
  const { builder, port, dir } = await startBuilder({ esphome: "/nonexistent/esphome" });
  const client = await ApiClient.connect(port);
  return { builder, port, dir, client };
}

describe("panel API: bad input gets a clear error and changes nothing", () => {
  it("answers malformed JSON with invalid_message", async () => {
    const { client, builder } = await connected();
    const reply = await client.sendRaw("{nope");
    expect(reply).toMatchObject({ message_id: null, error_code: "invalid_message" });
    expect(reply.details).toMatch(/not valid JSON/);
    expect(builder.queue.list()).toEqual([]);
  });

  it.each([
    ["a JSON array", "[1,2]"],
    ["a string", '"hello"'],
    ["no command", '{"message_id": "x1"}'],
    ["a non-object args", '{"command": "ping", "message_id": "x1", "args": [1]}'],
  ])("answers %s with invalid_message", async (_what, text) => {
    const { client } = await connected();
    const id = text.includes("x1") ? "x1" : null;
    const reply = await client.sendRaw(text, id);
    expect(reply.error_code).toBe("invalid_message");
  });

  it("answers an unknown command with unknown_command", async () => {
    const { client } = await connected();
    const reply = await client.request("firmware/launch_rockets", {});
    expect(reply).toMatchObject({ error_code: "unknown_command", details: "Unknown command: firmware/launch_rockets" });
  });

  it("does not treat Object prototype keys as commands", async () => {
    const { client } = await connected();
    expect((await client.request("constructor", {})).error_code).toBe("unknown_command");
    expect((await client.request("__proto__", {})).error_code).toBe("unknown_command");
  });

  it("refuses an oversized message", async () => {
    const { client } = await connected();
    const big = JSON.stringify({ command: "ping", message_id: "big", args: { pad: "x".repeat(MAX_MESSAGE_BYTES) } });
    const reply = await client.sendRaw(big, null);
    expect(reply.error_code).toBe("invalid_message");
    expect(reply.details).toMatch(/too large/);
    expect(await client.call("ping")).toEqual({ pong: true }); // the connection still works
  });

  it("refuses binary frames", async () => {
    const { client } = await connected();
    const reply = await client.sendRaw(Buffer.from(JSON.stringify({ command: "ping", message_id: "b" })), null);
    expect(reply.error_code).toBe("invalid_message");
  });

  it.each([
    ["missing configuration", "firmware/compile", {}],
    ["a number as configuration", "firmware/compile", { configuration: 42 }],
    ["a path with ..", "firmware/compile", { configuration: "../etc/passwd.yaml" }],
    ["an absolute path", "firmware/install", { configuration: "/etc/kitchen.yaml" }],
    ["a NUL byte", "firmware/clean", { configuration: "kit\u0000chen.yaml" }],
    ["a non-YAML extension", "firmware/compile", { configuration: "kitchen.txt" }],
    ["the secrets file", "firmware/compile", { configuration: "secrets.yaml" }],
    ["an invalid port", "firmware/install", { configuration: "kitchen.yaml", port: "not a host!" }],
    ["an IP-shaped bad port", "firmware/upload", { configuration: "kitchen.yaml", port: "192.168.1.300" }],
    ["a string force_local", "firmware/install", { configuration: "kitchen.yaml", force_local: "true" }],
    ["an unknown argument", "firmware/compile", { configuration: "kitchen.yaml", turbo: true }],
    ["a malformed job id", "firmware/cancel", { job_id: "xyz" }],
    ["an empty bulk list", "firmware/install_bulk", { configurations: [] }],
    ["a serial port for a bulk install", "firmware/install_bulk", { configurations: ["kitchen.yaml"], port: "/dev/ttyUSB0" }],
  ])("answers %s with invalid_args", async (_what, command, args) => {
    const { client, builder } = await connected();
    const reply = await client.request(command, args);
    expect(reply.error_code).toBe("invalid_args");
    expect(reply.details).toBeTruthy();
    expect(builder.queue.list()).toEqual([]);
  });

  it("answers a configuration that does not exist with not_found", async () => {
    const { client, builder } = await connected();
    const reply = await client.request("firmware/install", { configuration: "garage.yaml" });
    expect(reply).toMatchObject({ error_code: "not_found" });
    expect(reply.details).toMatch(/garage\.yaml does not exist/);
    expect(builder.queue.list()).toEqual([]);
  });

  it("answers cancel of an unknown job with not_found", async () => {
    const { client } = await connected();
    const reply = await client.request("firmware/cancel", { job_id: "0123456789ab" });
    expect(reply).toMatchObject({ error_code: "not_found", details: "Job not found: 0123456789ab" });
  });

  it("answers cancel of a finished job with invalid_args", async () => {
    const { client, builder } = await connected();
    const job = await client.call<{ job_id: string }>("firmware/compile", { configuration: "kitchen.yaml" });
    const done = client.stream("firmware/follow_job", { job_id: job.job_id });
    await done.until((f) => f.event === "result");
    const reply = await client.request("firmware/cancel", { job_id: job.job_id });
    expect(reply).toMatchObject({ error_code: "invalid_args", details: "Cannot cancel a failed job" });
    expect(builder.queue.get(job.job_id)?.status).toBe("failed");
  });

  it("fails a job clearly when the ESPHome executable is missing, and keeps serving", async () => {
    const { client } = await connected();
    const job = await client.call<{ job_id: string }>("firmware/install", { configuration: "kitchen.yaml" });
    const follow = client.stream("firmware/follow_job", { job_id: job.job_id });
    const result = await follow.until((f) => f.event === "result");
    expect(result.data).toMatchObject({ status: "failed" });
    expect((result.data as { error: string }).error).toMatch(/ESPHome CLI not found.*--esphome/);
    expect(await client.call("ping")).toEqual({ pong: true });
  });

  it("refuses a WebSocket from a foreign Origin", async () => {
    const { port } = await connected();
    await expect(ApiClient.connect(port, { origin: "http://evil.example" })).rejects.toThrow(/403/);
    const same = await ApiClient.connect(port, { origin: `http://127.0.0.1:${port}` });
    expect(await same.call("ping")).toEqual({ pong: true });
    same.close();
  });

  it("answers a download with a bad token with 403", async () => {
    const { port } = await connected();
    const res = await fetch(`http://127.0.0.1:${port}/api/firmware/download?token=forged`);
    expect(res.status).toBe(403);
    expect(await res.text()).toMatch(/invalid, used or expired/);
  });
});

describe("panel API: commands", () => {
  it("lists devices and serves the panel page", async () => {
    const { client, port } = await connected();
    const devices = await client.call<{ name: string; configuration: string; platform: string; address: string }[]>("devices/list");
    expect(devices).toEqual([expect.objectContaining({ name: "kitchen", configuration: "kitchen.yaml", platform: "esp32", address: "kitchen.local" })]);
    const page = await fetch(`http://127.0.0.1:${port}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("ESPHome Builder");
  });

  it("lists the machine's serial ports as an array", async () => {
    const { client } = await connected();
    expect(Array.isArray(await client.call("config/serial_ports"))).toBe(true);
  });

  it("sends initial_state before live events on subscribe_events", async () => {
    const { client } = await connected();
    const sub = client.stream("subscribe_events");
    const initial = await sub.until((f) => f.event === "initial_state");
    expect(initial.data).toMatchObject({ jobs: [], devices: [expect.objectContaining({ configuration: "kitchen.yaml" })], queue_status: { idle: true } });
    await client.call("firmware/compile", { configuration: "kitchen.yaml" });
    await sub.until((f) => f.event === "job_failed");
    expect(sub.frames.map((f) => f.event).filter((e) => e?.startsWith("job_") === true && e !== "job_output" && e !== "job_progress")).toEqual([
      "job_queued",
      "job_started",
      "job_failed",
    ]);
    expect(sub.frames[0]?.event).toBe("initial_state");
  });
});
