/**
 * A real Home Assistant Core for tests: started from the Debian root test/setup-ha.sh makes
 * (test/ha/ha-root.ts: chroot, inside a network namespace of its own) with a minimal
 * configuration, onboarded without a browser, and handed out with a long-lived access token.
 * Tests reach it at `url` (the namespace's address, over the namespace's veth link); what runs
 * inside the namespace beside it (devices, a builder) reaches it at `insideUrl`.
 */
import { type ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import net from "node:net";
import WebSocket from "ws";
import type { DeviceLink } from "../real-device/network.ts";
import { CONFIG_IN_ROOT, createHaLink, spawnInRoot } from "./ha-root.ts";

export { HA_ROOT, hassAvailable, installedHa } from "./ha-root.ts";

/** Home Assistant's port inside its namespace (the namespace is new: nothing else has it). */
export const HA_PORT = 8123;

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => { resolve(); }));
  return port;
}

export function minimalConfiguration(port: number, extra = ""): string {
  return `homeassistant:
  name: Test
  latitude: 52.37
  longitude: 4.89
  elevation: 0
  unit_system: metric
  time_zone: UTC
  country: NL
  currency: EUR
http:
  server_host: 0.0.0.0
  server_port: ${port}
api:
websocket_api:
logger:
  default: warning
${extra}`;
}

export class HaCore {
  readonly dir: string;
  readonly port = HA_PORT;
  /** Where the tests (outside the namespace) reach it. */
  readonly url: string;
  /** Where programs inside its namespace reach it. */
  readonly insideUrl = `http://127.0.0.1:${HA_PORT}`;
  readonly link: DeviceLink;
  readonly logFile: string;
  readonly #ownsLink: boolean;
  #child: ChildProcess | null = null;
  #exited: Promise<void> = Promise.resolve();

  private constructor(dir: string, link: DeviceLink, ownsLink: boolean) {
    this.dir = dir;
    this.link = link;
    this.#ownsLink = ownsLink;
    this.url = `http://${link.deviceAddress}:${HA_PORT}`;
    this.logFile = `${dir}/hass-output.log`;
  }

  /**
   * Writes the configuration into `dir` (the configuration folder, on this machine) for a
   * Home Assistant in namespace `link` (a new one of its own when not given, removed by `dispose`).
   */
  static async create(dir: string, configurationExtra = "", opts: { link?: DeviceLink } = {}): Promise<HaCore> {
    await mkdir(`${dir}/www`, { recursive: true });
    await writeFile(`${dir}/configuration.yaml`, minimalConfiguration(HA_PORT, configurationExtra));
    return new HaCore(dir, opts.link ?? createHaLink(), opts.link === undefined);
  }

  async start(timeoutMs = 90_000): Promise<number> {
    const started = Date.now();
    const out = createWriteStream(this.logFile, { flags: "a" });
    const child = spawnInRoot(this.link.ns, this.dir, ["/opt/ha/bin/hass", "--config", CONFIG_IN_ROOT, "--skip-pip"]);
    child.stdout?.pipe(out, { end: false });
    child.stderr?.pipe(out, { end: false });
    this.#child = child;
    this.#exited = new Promise((resolve) => child.once("exit", () => { resolve(); }));
    const state = { exited: false };
    void this.#exited.then(() => { state.exited = true; });
    while (Date.now() - started < timeoutMs) {
      if (state.exited) throw new Error(`Home Assistant exited while starting:\n${await this.logTail()}`);
      try {
        const res = await fetch(`${this.url}/api/onboarding`, { signal: AbortSignal.timeout(2_000) });
        if (res.ok) return (Date.now() - started) / 1000;
      } catch {
        // not up yet
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`Home Assistant did not start within ${timeoutMs} ms:\n${await this.logTail()}`);
  }

  /** SIGTERM (Home Assistant saves its stores on the way down), SIGKILL after `graceMs`. Returns the seconds it took. */
  async stop(graceMs = 30_000): Promise<number> {
    const child = this.#child;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return 0;
    const started = Date.now();
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await this.#exited;
    clearTimeout(timer);
    this.#child = null;
    return (Date.now() - started) / 1000;
  }

  /** Stops it (when running) and removes its namespace when it made one. */
  async dispose(): Promise<void> {
    await this.stop();
    if (this.#ownsLink) this.link.destroy();
  }

  async logTail(lines = 40): Promise<string> {
    try {
      return (await readFile(this.logFile, "utf8")).split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }

  /** Headless onboarding: creates the owner, returns a long-lived access token. */
  async onboard(): Promise<string> {
    const clientId = `${this.url}/`;
    const user = await fetch(`${this.url}/api/onboarding/users`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ client_id: clientId, name: "Owner", username: "owner", password: "test-password-123", language: "en" }),
    });
    if (!user.ok) throw new Error(`onboarding failed: ${user.status} ${await user.text()}`);
    const { auth_code } = (await user.json()) as { auth_code: string };
    const tokenRes = await fetch(`${this.url}/auth/token`, {
      method: "POST",
      body: new URLSearchParams({ grant_type: "authorization_code", code: auth_code, client_id: clientId }),
    });
    if (!tokenRes.ok) throw new Error(`token exchange failed: ${tokenRes.status} ${await tokenRes.text()}`);
    const { access_token } = (await tokenRes.json()) as { access_token: string };
    const socket = await HaSocket.connect(this.url, access_token);
    try {
      return await socket.call<string>({ type: "auth/long_lived_access_token", client_name: "esphome-builder-tests", lifespan: 30 });
    } finally {
      socket.close();
    }
  }

  async getState(token: string, entityId: string): Promise<{ state: string; attributes: Record<string, unknown> } | null> {
    const res = await fetch(`${this.url}/api/states/${entityId}`, { headers: { Authorization: `Bearer ${token}` } });
    if (res.status === 404) return null;
    if (!res.ok) throw new Error(`GET state ${entityId}: ${res.status}`);
    return (await res.json()) as { state: string; attributes: Record<string, unknown> };
  }

  async post(token: string, apiPath: string, body: unknown): Promise<unknown> {
    const res = await fetch(`${this.url}/api/${apiPath}`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`POST ${apiPath}: ${res.status} ${await res.text()}`);
    return res.json();
  }
}

export interface HaEventMessage {
  event_type: string;
  data: Record<string, unknown>;
  time_fired: string;
}

/** A minimal Home Assistant WebSocket client for assertions. */
export class HaSocket {
  readonly #ws: WebSocket;
  #next = 1;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly #subscriptions = new Map<number, (event: HaEventMessage) => void>();

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.on("message", (data: Buffer) => {
      const messages = ([] as Record<string, unknown>[]).concat(JSON.parse(data.toString("utf8")) as Record<string, unknown>);
      for (const msg of messages) {
        const id = msg.id as number;
        if (msg.type === "event") this.#subscriptions.get(id)?.(msg.event as HaEventMessage);
        else if (msg.type === "result") {
          const waiter = this.#pending.get(id);
          this.#pending.delete(id);
          if (msg.success === true) waiter?.resolve(msg.result);
          else waiter?.reject(new Error(JSON.stringify(msg.error)));
        }
      }
    });
  }

  static async connect(url: string, token: string): Promise<HaSocket> {
    const ws = new WebSocket(`${url.replace(/^http/, "ws")}/api/websocket`);
    await new Promise<void>((resolve, reject) => {
      ws.on("error", reject);
      ws.on("message", function onAuth(data: Buffer) {
        const msg = JSON.parse(data.toString("utf8")) as { type: string };
        if (msg.type === "auth_required") ws.send(JSON.stringify({ type: "auth", access_token: token }));
        else if (msg.type === "auth_ok") {
          ws.off("message", onAuth);
          resolve();
        } else if (msg.type === "auth_invalid") reject(new Error("auth_invalid"));
      });
    });
    return new HaSocket(ws);
  }

  call<T = unknown>(message: Record<string, unknown>): Promise<T> {
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#ws.send(JSON.stringify({ ...message, id }));
    });
  }

  async subscribe(eventType: string, callback: (event: HaEventMessage) => void): Promise<void> {
    const id = this.#next;
    this.#subscriptions.set(id, callback);
    await this.call({ type: "subscribe_events", event_type: eventType });
  }

  close(): void {
    this.#ws.close();
  }
}
