/**
 * The connection to Home Assistant, in one of two modes:
 *
 * - add-on: the Supervisor's proxies (`http://supervisor/core/api`,
 *   `ws://supervisor/core/websocket`) with `SUPERVISOR_TOKEN`;
 * - direct: any Home Assistant (`--ha-url`, `--ha-token`, a long-lived token).
 *
 * REST carries what we publish (states, events, service calls); the WebSocket
 * (home-assistant-js-websocket over `ws`) carries what we listen to (the
 * `esphome_builder_command` event, `homeassistant_started`). The WebSocket
 * reconnects with backoff on its own; nothing here ever throws into the
 * builder when Home Assistant is down.
 */
import {
  createConnection,
  ERR_CANNOT_CONNECT,
  ERR_INVALID_AUTH,
  type Connection,
  type HassEvent,
  type HaWebSocket,
} from "home-assistant-js-websocket";
import WebSocket from "ws";
import { BuilderError, errorMessage } from "../errors.ts";
import { getLogger } from "../logger.ts";

const log = getLogger("ha");

export interface HaTarget {
  mode: "addon" | "direct";
  /** Base of the REST API, without a trailing slash: `…/api` or `http://supervisor/core/api`. */
  restBase: string;
  wsUrl: string;
  token: string;
}

/** Where Home Assistant is, from the configuration; null when there is none to talk to. */
export function haTarget(opts: {
  haUrl?: string | undefined;
  haToken?: string | undefined;
  supervisorUrl?: string | undefined;
  supervisorToken?: string | undefined;
}): HaTarget | null {
  if (opts.haUrl !== undefined && opts.haToken !== undefined) {
    const base = opts.haUrl.replace(/\/+$/, "");
    return { mode: "direct", restBase: `${base}/api`, wsUrl: `${base.replace(/^http/, "ws")}/api/websocket`, token: opts.haToken };
  }
  if (opts.supervisorToken !== undefined && opts.supervisorToken !== "") {
    const base = (opts.supervisorUrl ?? "http://supervisor").replace(/\/+$/, "");
    return { mode: "addon", restBase: `${base}/core/api`, wsUrl: `${base.replace(/^http/, "ws")}/core/websocket`, token: opts.supervisorToken };
  }
  return null;
}

/** Why a REST call to Home Assistant failed: it could not be reached, or it answered with an error status (in the message). */
export const HA_REQUEST_CODES = ["ha_unreachable", "ha_http_error"] as const;
export type HaRequestCode = (typeof HA_REQUEST_CODES)[number];

export interface HaTimings {
  /** REST request timeout. */
  requestTimeoutMs: number;
  /** WebSocket open + auth timeout. */
  connectTimeoutMs: number;
  /** First and largest delay between connection attempts while Home Assistant is down. */
  retryMinMs: number;
  retryMaxMs: number;
  /** Heartbeat: a ping this often, and a reconnect when its pong does not come within `pingTimeoutMs`. */
  pingIntervalMs: number;
  pingTimeoutMs: number;
}

export const DEFAULT_HA_TIMINGS: HaTimings = {
  requestTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  retryMinMs: 1_000,
  retryMaxMs: 30_000,
  pingIntervalMs: 30_000,
  pingTimeoutMs: 10_000,
};

/**
 * Opens one authenticated WebSocket to Home Assistant (the library's
 * `createSocket` contract): resolves after `auth_ok`, rejects with
 * `ERR_INVALID_AUTH` or `ERR_CANNOT_CONNECT`. One attempt; callers retry.
 */
export function openHaSocket(url: string, token: string, timeoutMs: number): Promise<HaWebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { handshakeTimeout: timeoutMs, maxPayload: 64 * 1024 * 1024 });
    // A socket error with no listener would crash the process; this one stays for the socket's life.
    ws.on("error", (err) => {
      log.debug(`websocket error: ${err.message}`);
    });
    let settled = false;
    const timer = setTimeout(() => { finish(ERR_CANNOT_CONNECT); }, timeoutMs);
    const finish = (err: number | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.off("message", onMessage);
      ws.off("close", onClose);
      if (err === null) {
        resolve(ws as unknown as HaWebSocket);
      } else {
        ws.terminate();
        // home-assistant-js-websocket's createSocket contract: reject with its numeric error code.
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
        reject(err);
      }
    };
    const onClose = (): void => { finish(ERR_CANNOT_CONNECT); };
    const onMessage = (data: WebSocket.RawData): void => {
      let message: { type?: unknown; ha_version?: unknown };
      try {
        message = JSON.parse(Array.isArray(data) ? Buffer.concat(data).toString("utf8") : Buffer.from(data as ArrayBuffer).toString("utf8")) as typeof message;
      } catch {
        finish(ERR_CANNOT_CONNECT);
        return;
      }
      if (message.type === "auth_required") {
        ws.send(JSON.stringify({ type: "auth", access_token: token }));
      } else if (message.type === "auth_ok") {
        (ws as unknown as { haVersion: string }).haVersion = typeof message.ha_version === "string" ? message.ha_version : "";
        finish(null);
      } else if (message.type === "auth_invalid") {
        finish(ERR_INVALID_AUTH);
      }
    };
    ws.on("message", onMessage);
    ws.on("close", onClose);
  });
}

type EventCallback = (event: HassEvent) => void;

export interface HaClientOptions {
  target: HaTarget;
  timings?: Partial<HaTimings>;
}

/** REST calls plus a self-healing WebSocket with event subscriptions. */
export class HaClient {
  readonly target: HaTarget;
  readonly #timings: HaTimings;
  readonly #subscriptions: { eventType: string; callback: EventCallback }[] = [];
  readonly #readyListeners: (() => void)[] = [];
  #conn: Connection | null = null;
  #connected = false;
  #stopped = true;
  #retryTimer: NodeJS.Timeout | undefined;
  #pingTimer: NodeJS.Timeout | undefined;
  #haVersion: string | null = null;
  #downSince: number | null = null;

  constructor(opts: HaClientOptions) {
    this.target = opts.target;
    this.#timings = { ...DEFAULT_HA_TIMINGS, ...opts.timings };
  }

  /** True while the WebSocket is up and authenticated. */
  get connected(): boolean {
    return this.#connected;
  }

  get haVersion(): string | null {
    return this.#haVersion;
  }

  /** Starts connecting in the background; never throws, never blocks. */
  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#attempt(this.#timings.retryMinMs);
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    clearInterval(this.#pingTimer);
    this.#retryTimer = undefined;
    this.#pingTimer = undefined;
    this.#connected = false;
    this.#conn?.close();
    this.#conn = null;
  }

  /** Runs `fn` whenever the WebSocket (re)connects: Home Assistant may have restarted and lost our states. */
  onReady(fn: () => void): void {
    this.#readyListeners.push(fn);
  }

  /** Subscribes to an event type; the subscription survives reconnects. */
  subscribeEvents(eventType: string, callback: EventCallback): void {
    this.#subscriptions.push({ eventType, callback });
    if (this.#conn !== null) this.#subscribe(this.#conn, eventType, callback);
  }

  // ---- REST ----

  async setState(entityId: string, state: string, attributes: Record<string, unknown>): Promise<void> {
    await this.#post(`/states/${entityId}`, { state, attributes });
  }

  async fireEvent(eventType: string, data: Record<string, unknown>): Promise<void> {
    await this.#post(`/events/${eventType}`, data);
  }

  async callService(domain: string, service: string, data: Record<string, unknown>): Promise<void> {
    await this.#post(`/services/${domain}/${service}`, data);
  }

  async #post(path: string, body: unknown): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(`${this.target.restBase}${path}`, {
        method: "POST",
        headers: { Authorization: `Bearer ${this.target.token}`, "Content-Type": "application/json" },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.#timings.requestTimeoutMs),
      });
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause;
      throw new BuilderError<HaRequestCode>("ha_unreachable", `POST ${path}: ${errorMessage(cause ?? err)}`, { cause: cause ?? err });
    }
    const text = await res.text().catch(() => "");
    if (!res.ok) throw new BuilderError<HaRequestCode>("ha_http_error", `POST ${path}: HTTP ${res.status} ${text.slice(0, 200)}`);
    try {
      return text === "" ? null : (JSON.parse(text) as unknown);
    } catch {
      return text;
    }
  }

  // ---- WebSocket ----

  #attempt(delayMs: number): void {
    if (this.#stopped) return;
    void this.#connect().then((ok) => {
      if (ok || this.#stopped) return;
      this.#retryTimer = setTimeout(() => { this.#attempt(Math.min(delayMs * 2, this.#timings.retryMaxMs)); }, delayMs);
    });
  }

  async #connect(): Promise<boolean> {
    const { wsUrl, token } = this.target;
    let conn: Connection;
    try {
      conn = await createConnection({
        setupRetry: 0,
        createSocket: () => openHaSocket(wsUrl, token, this.#timings.connectTimeoutMs),
      });
    } catch (err) {
      this.#wentDown(err === ERR_INVALID_AUTH ? "the token was refused" : "cannot connect");
      return false;
    }
    if (this.#stopped) {
      conn.close();
      return true;
    }
    this.#conn = conn;
    conn.addEventListener("ready", () => { this.#becameReady(conn); });
    conn.addEventListener("disconnected", () => {
      this.#connected = false;
      this.#wentDown("connection lost");
    });
    conn.addEventListener("reconnect-error", () => {
      // The library stops retrying after an auth failure; start over with our own backoff.
      this.#wentDown("the token was refused");
      conn.close();
      if (this.#conn === conn) this.#conn = null;
      this.#attempt(this.#timings.retryMaxMs);
    });
    for (const sub of this.#subscriptions) this.#subscribe(conn, sub.eventType, sub.callback);
    this.#becameReady(conn);
    clearInterval(this.#pingTimer);
    this.#pingTimer = setInterval(() => { this.#heartbeat(conn); }, this.#timings.pingIntervalMs);
    this.#pingTimer.unref();
    return true;
  }

  #subscribe(conn: Connection, eventType: string, callback: EventCallback): void {
    conn.subscribeEvents<HassEvent>(callback, eventType).catch((err: unknown) => {
      log.warning(`could not subscribe to ${eventType}: ${errorMessage(err)}`);
    });
  }

  #becameReady(conn: Connection): void {
    if (this.#conn !== conn || this.#stopped) return;
    this.#connected = true;
    this.#haVersion = conn.haVersion;
    const downFor = this.#downSince === null ? null : Math.round((Date.now() - this.#downSince) / 1000);
    this.#downSince = null;
    log.info(
      `connected to Home Assistant ${conn.haVersion} (${this.target.mode === "addon" ? "through the Supervisor" : this.target.wsUrl})` +
        (downFor === null ? "" : ` after ${downFor} s without it`),
    );
    for (const fn of this.#readyListeners) {
      try {
        fn();
      } catch (err) {
        log.error(`ready listener threw: ${errorMessage(err)}`);
      }
    }
  }

  #wentDown(reason: string): void {
    if (this.#downSince === null) {
      this.#downSince = Date.now();
      log.warning(`Home Assistant is not reachable (${reason}); retrying in the background, builds go on`);
    } else {
      log.debug(`Home Assistant still not reachable (${reason})`);
    }
  }

  #heartbeat(conn: Connection): void {
    if (!this.#connected || this.#conn !== conn) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<"timeout">((resolve) => { timer = setTimeout(() => { resolve("timeout"); }, this.#timings.pingTimeoutMs); });
    void Promise.race([conn.ping().then(() => "pong" as const, () => "error" as const), timeout]).then((outcome) => {
      clearTimeout(timer);
      if (outcome === "timeout" && this.#conn === conn && !this.#stopped) {
        log.warning("Home Assistant did not answer a ping; reconnecting");
        conn.reconnect(true);
      }
    });
  }
}
