/**
 * The Home Assistant client's connection handling against a stand-in: backoff
 * while Home Assistant is down, a refused token, a frozen connection, and
 * REST errors that never throw into the builder.
 */
import { describe, expect, it, onTestFinished } from "vitest";
import { HA_REQUEST_CODES, HaClient, haTarget, openHaSocket } from "../../src/ha/client.ts";
import { isCodedError } from "../../src/errors.ts";
import { waitFor } from "../helpers/tmp.ts";
import { FakeSupervisor } from "./fake-supervisor.ts";
import { freePort } from "./ha-core.ts";

const FAST = { retryMinMs: 50, retryMaxMs: 200, connectTimeoutMs: 1_000, pingIntervalMs: 100, pingTimeoutMs: 100, requestTimeoutMs: 1_000 };

async function fake(): Promise<FakeSupervisor> {
  const supervisor = new FakeSupervisor("sv-token", 1);
  await supervisor.start();
  onTestFinished(() => supervisor.stop());
  return supervisor;
}

function client(url: string, token = "sv-token"): HaClient {
  const c = new HaClient({ target: haTarget({ supervisorUrl: url, supervisorToken: token })!, timings: FAST });
  onTestFinished(() => { c.stop(); });
  return c;
}

describe("Home Assistant targets", () => {
  it("direct mode wins over the Supervisor, and the URLs are derived from the base", () => {
    expect(haTarget({ haUrl: "https://ha.example:8123/", haToken: "llat", supervisorToken: "sv" })).toEqual({
      mode: "direct",
      restBase: "https://ha.example:8123/api",
      wsUrl: "wss://ha.example:8123/api/websocket",
      token: "llat",
    });
    expect(haTarget({ supervisorToken: "sv" })).toEqual({ mode: "addon", restBase: "http://supervisor/core/api", wsUrl: "ws://supervisor/core/websocket", token: "sv" });
    expect(haTarget({})).toBeNull();
    expect(haTarget({ supervisorToken: "" })).toBeNull();
  });
});

describe("Home Assistant client", () => {
  it("keeps trying while Home Assistant is not there, and connects when it comes", async () => {
    const port = await freePort();
    const c = client(`http://127.0.0.1:${port}`);
    let ready = 0;
    c.onReady(() => { ready++; });
    c.start();
    await new Promise((r) => setTimeout(r, 300));
    expect(c.connected).toBe(false);
    const supervisor = new FakeSupervisor("sv-token", 1);
    // Listen on the port the client is trying.
    await startOn(supervisor, port);
    await waitFor(() => c.connected, 5_000, "the connection");
    expect(ready).toBe(1);
    expect(c.haVersion).toBe("2026.8.0");
  });

  it("refuses to treat a rejected token as connected, and keeps retrying with backoff", async () => {
    const supervisor = await fake();
    supervisor.refuseAuth = true;
    const c = client(supervisor.url);
    c.start();
    await waitFor(() => supervisor.authAttempts >= 3, 5_000, "retries");
    expect(c.connected).toBe(false);
    await expect(openHaSocket(supervisor.url.replace("http", "ws") + "/core/websocket", "sv-token", 1_000)).rejects.toBe(2);
    supervisor.refuseAuth = false;
    await waitFor(() => c.connected, 5_000, "the connection once the token is accepted");
  });

  it("reconnects and resubscribes when the connection drops or stops answering pings", async () => {
    const supervisor = await fake();
    const c = client(supervisor.url);
    const seen: unknown[] = [];
    c.subscribeEvents("esphome_builder_command", (e) => seen.push(e.data));
    let ready = 0;
    c.onReady(() => { ready++; });
    c.start();
    await waitFor(() => supervisor.subscribers("esphome_builder_command") === 1, 5_000, "the subscription");
    supervisor.dropSockets();
    await waitFor(() => ready >= 2 && supervisor.subscribers("esphome_builder_command") === 1, 5_000, "the resubscription");
    supervisor.fire("esphome_builder_command", { command: "clean" });
    await waitFor(() => seen.length === 1, 5_000, "the event");
    // A frozen Home Assistant: pings go unanswered, the client reconnects.
    supervisor.answerPings = false;
    const accepted = supervisor.authAccepted;
    await waitFor(() => supervisor.authAccepted > accepted, 5_000, "a reconnect after unanswered pings");
  });

  it("REST calls report HTTP errors and unreachable hosts with their codes", async () => {
    const supervisor = await fake();
    const c = client(supervisor.url);
    await c.setState("sensor.x", "1", {});
    expect(supervisor.requests.at(-1)).toMatchObject({ method: "POST", path: "/core/api/states/sensor.x", auth: "Bearer sv-token", body: { state: "1", attributes: {} } });
    supervisor.coreDown = true;
    await expect(c.fireEvent("x", {})).rejects.toMatchObject({ code: "ha_http_error", message: expect.stringContaining("HTTP 502") as unknown });
    const gone = client(`http://127.0.0.1:${await freePort()}`);
    const err = await gone.callService("a", "b", {}).catch((e: unknown) => e);
    expect(isCodedError(err, HA_REQUEST_CODES)).toBe(true);
    expect((err as { code: string }).code).toBe("ha_unreachable");
  });
});

async function startOn(supervisor: FakeSupervisor, port: number): Promise<void> {
  await supervisor.start(port);
  onTestFinished(() => supervisor.stop());
}
