/**
 * A stand-in for the Home Assistant Supervisor, as an add-on sees it: its own
 * REST endpoints (`/addons/self/info`, `/info`, `/discovery`) and the Core proxies
 * (`/core/api/...`, `/core/websocket`), on loopback (or the address given to
 * `start`). It records what the builder sends and can fire events at its
 * WebSocket subscribers.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocketServer, type WebSocket } from "ws";

export interface Recorded {
  method: string;
  path: string;
  auth: string | undefined;
  body: unknown;
}

export class FakeSupervisor {
  readonly token: string;
  readonly ingressPort: number;
  readonly requests: Recorded[] = [];
  /** Set to make every Core proxy call fail with 502 (Core down behind a running Supervisor). */
  coreDown = false;
  /** Answer WebSocket pings (false = a frozen Core). */
  answerPings = true;
  /** WebSocket auth attempts seen, and how many were accepted. */
  authAttempts = 0;
  authAccepted = 0;
  /** Set to refuse every WebSocket token. */
  refuseAuth = false;
  /** The Home Assistant host's name in `/info` (null: `/info` has none). */
  hostname: string | null = "homeassistant";
  /** Set to make `/info` fail with 500. */
  infoDown = false;
  #server: http.Server | undefined;
  readonly #wss = new WebSocketServer({ noServer: true });
  readonly #subscriptions = new Map<WebSocket, Map<number, string>>();
  port = 0;
  host = "127.0.0.1";

  constructor(token: string, ingressPort: number) {
    this.token = token;
    this.ingressPort = ingressPort;
  }

  get url(): string {
    return `http://${this.host}:${this.port}`;
  }

  async start(port = 0, host = "127.0.0.1"): Promise<void> {
    const server = http.createServer((req, res) => {
      let raw = "";
      req.setEncoding("utf8");
      req.on("data", (d: string) => (raw += d));
      req.on("end", () => {
        const body: unknown = raw === "" ? null : JSON.parse(raw);
        const path = req.url ?? "/";
        this.requests.push({ method: req.method ?? "", path, auth: req.headers.authorization, body });
        const reply = (status: number, payload: unknown): void => {
          res.writeHead(status, { "Content-Type": "application/json" });
          res.end(JSON.stringify(payload));
        };
        if (req.headers.authorization !== `Bearer ${this.token}`) {
          reply(401, { result: "error", message: "Unauthorized" });
          return;
        }
        if (path === "/addons/self/info" && req.method === "GET") {
          reply(200, { result: "ok", data: { slug: "local_esphome_builder", ingress_port: this.ingressPort, ingress_url: "/api/hassio_ingress/tok123/", ingress_entry: "/api/hassio_ingress/tok123", ip_address: "172.30.33.4" } });
        } else if (path === "/info" && req.method === "GET" && this.infoDown) {
          reply(500, { result: "error", message: "System is not ready" });
        } else if (path === "/info" && req.method === "GET") {
          reply(200, { result: "ok", data: { supervisor: "2026.08.0", homeassistant: "2026.8.0", arch: "amd64", ...(this.hostname === null ? {} : { hostname: this.hostname }) } });
        } else if (path === "/discovery" && req.method === "POST") {
          reply(200, { result: "ok", data: { uuid: "0f1e2d3c" } });
        } else if (path.startsWith("/core/api/")) {
          if (this.coreDown) reply(502, { message: "Core is not running" });
          else reply(200, { message: "ok" });
        } else {
          reply(404, { result: "error", message: "not found" });
        }
      });
    });
    server.on("upgrade", (req, socket, head) => {
      if (req.url !== "/core/websocket" || this.coreDown) {
        socket.end("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        return;
      }
      this.#wss.handleUpgrade(req, socket, head, (ws) => { this.#attach(ws); });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, resolve);
    });
    this.host = host;
    this.port = (server.address() as AddressInfo).port;
    this.#server = server;
  }

  #attach(ws: WebSocket): void {
    const subs = new Map<number, string>();
    this.#subscriptions.set(ws, subs);
    ws.on("close", () => this.#subscriptions.delete(ws));
    ws.send(JSON.stringify({ type: "auth_required", ha_version: "2026.8.0" }));
    let authed = false;
    ws.on("message", (data: Buffer) => {
      const msg = JSON.parse(data.toString("utf8")) as { id?: number; type: string; access_token?: string; event_type?: string };
      if (!authed) {
        this.authAttempts++;
        if (msg.type === "auth" && msg.access_token === this.token && !this.refuseAuth) {
          authed = true;
          this.authAccepted++;
          ws.send(JSON.stringify({ type: "auth_ok", ha_version: "2026.8.0" }));
        } else {
          ws.send(JSON.stringify({ type: "auth_invalid", message: "Invalid access token" }));
          ws.close();
        }
        return;
      }
      if (msg.type === "subscribe_events" && msg.id !== undefined) subs.set(msg.id, msg.event_type ?? "*");
      if (msg.type === "ping") {
        if (!this.answerPings) return;
        ws.send(JSON.stringify({ id: msg.id, type: "pong" }));
        return;
      }
      ws.send(JSON.stringify({ id: msg.id, type: "result", success: true, result: null }));
    });
  }

  /** Number of live WebSocket subscriptions to `eventType`. */
  subscribers(eventType: string): number {
    let n = 0;
    for (const subs of this.#subscriptions.values()) for (const type of subs.values()) if (type === eventType) n++;
    return n;
  }

  fire(eventType: string, data: Record<string, unknown>, userId: string | null = "u1"): void {
    for (const [ws, subs] of this.#subscriptions) {
      for (const [id, type] of subs) {
        if (type !== eventType && type !== "*") continue;
        ws.send(JSON.stringify({ id, type: "event", event: { event_type: eventType, data, origin: "LOCAL", time_fired: new Date().toISOString(), context: { id: "c", parent_id: null, user_id: userId } } }));
      }
    }
  }

  /** Drops every WebSocket (Core restarting behind the Supervisor). */
  dropSockets(): void {
    for (const ws of this.#subscriptions.keys()) ws.terminate();
  }

  states(entityId: string): unknown[] {
    return this.requests.filter((r) => r.path === `/core/api/states/${entityId}`).map((r) => r.body);
  }

  async stop(): Promise<void> {
    for (const ws of this.#subscriptions.keys()) ws.terminate();
    this.#wss.close();
    const server = this.#server;
    if (server === undefined) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => { resolve(); }));
  }
}
