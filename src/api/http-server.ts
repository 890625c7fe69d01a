/**
 * The HTTP side: the panel's static files, firmware downloads, the legacy
 * dashboard API, and the WebSocket upgrades for `/ws` (and the legacy
 * `/compile`, `/upload`). One listener serves it all.
 *
 * In the add-on the listener is Home Assistant's ingress target: only the
 * Supervisor's ingress proxy gets the panel and its API (Home Assistant has
 * authenticated the user); Home Assistant Core on the host's loopback gets the
 * legacy dashboard API its ESPHome integration uses; everyone else gets 403.
 *
 * In both modes every request and upgrade first passes the DNS-rebinding guard
 * (`HostPolicy`): a Host this builder answers to, and a browser's Origin that
 * matches it.
 */
import { createReadStream, promises as fs } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import express, { type Request, type Response } from "express";
import { locateBinaries } from "../firmware/binaries.ts";
import { refusal, type BasicAuth } from "./basic-auth.ts";
import type { HostPolicy } from "./host-guard.ts";
import { normalizePeer } from "./peers.ts";
import { getLogger } from "../logger.ts";
import { deviceName, type ApiServices } from "./commands.ts";
import { LEGACY_HTTP_PATHS, LEGACY_WS_PATHS, type LegacyApi } from "./legacy-api.ts";
import { WsApi } from "./ws-api.ts";

const log = getLogger("http");

export interface HttpServerOptions {
  services: ApiServices;
  host: string;
  port: number;
  /** Folder with the built panel (index.html and assets). */
  panelDir: string;
  /** The DNS-rebinding guard: the Host names and Origins this builder answers. */
  hosts: HostPolicy;
  /** The legacy dashboard API (`/devices`, `/json-config`, `/ping`, `/compile`, `/upload`). */
  legacy?: LegacyApi;
  /** Add-on mode: who may use the listener. Absent = everyone who can connect (standalone, loopback by default). */
  access?: PeerAccess;
  /** Standalone with a password: every request and upgrade must carry it. */
  auth?: BasicAuth;
}

export interface PeerAccess {
  /** Peers served fully: the Supervisor's ingress proxy. */
  full: readonly string[];
  /** Peers served only the legacy dashboard API: Home Assistant Core on the loopback. */
  legacy: readonly string[];
}

/** Home Assistant's ingress prefix, `/api/hassio_ingress/<token>`; anything else in the header is ignored. */
const INGRESS_PATH_RE = /^\/api\/hassio_ingress\/[A-Za-z0-9_-]{1,256}$/;

/** What a peer may reach: everything, the legacy API only, or nothing. */
export function peerAccess(access: PeerAccess | undefined, address: string | undefined): "full" | "legacy" | "none" {
  if (access === undefined) return "full";
  const peer = normalizePeer(address);
  if (access.full.includes(peer)) return "full";
  if (access.legacy.includes(peer)) return "legacy";
  return "none";
}

/** Logs a refusal once a minute per reason, so a flood cannot flood the log. */
class RefusalLog {
  readonly #last = new Map<string, number>();

  warn(message: string): void {
    const now = Date.now();
    const last = this.#last.get(message);
    if (last !== undefined && now - last < 60_000) return;
    if (this.#last.size >= 256) this.#last.clear();
    this.#last.set(message, now);
    log.warning(message);
  }
}

/** The rebinding guard's verdict on one request: null to go on, or why it is refused. */
function guard(hosts: HostPolicy, req: http.IncomingMessage): string | null {
  const host = hosts.checkHost(req);
  if (!host.ok) return host.reason;
  const origin = hosts.checkOrigin(req);
  return origin.ok ? null : origin.reason;
}

function refuse(peer: string): string {
  return `Forbidden: ${peer} is not Home Assistant's ingress. Open this add-on from the Home Assistant sidebar.\n`;
}

export class HttpServer {
  readonly #opts: HttpServerOptions;
  #server: http.Server | undefined;
  #ws: WsApi | undefined;

  constructor(opts: HttpServerOptions) {
    this.#opts = opts;
  }

  /** Binds the listener; resolves with the port actually bound. */
  async start(): Promise<number> {
    const { services } = this.#opts;
    const app = express();
    app.disable("x-powered-by");
    const { access, legacy, auth, hosts } = this.#opts;
    const refusals = new RefusalLog();
    // First of all: a page that rebound its own name to this builder gets nothing, not even a password prompt.
    app.use((req, res, next) => {
      const reason = guard(hosts, req);
      if (reason === null) {
        next();
        return;
      }
      refusals.warn(`refused ${req.method} from ${normalizePeer(req.socket.remoteAddress)}: ${reason}`);
      res.status(403).type("text/plain").send(`Forbidden: ${reason}.\n`);
    });
    if (auth !== undefined) {
      app.use((req, res, next) => {
        const verdict = auth.checkRequest(req);
        if (verdict === "ok") {
          next();
          return;
        }
        if (verdict === "too_many_attempts") log.warning(`too many wrong passwords from ${normalizePeer(req.socket.remoteAddress)}`);
        const answer = refusal(verdict, auth.retryAfterSeconds(req.socket.remoteAddress ?? ""));
        res.status(answer.status).set(answer.headers).type("text/plain").send(answer.body);
      });
    }
    if (access !== undefined) {
      app.use((req, res, next) => {
        const allowed = peerAccess(access, req.socket.remoteAddress);
        if (allowed === "full" || (allowed === "legacy" && LEGACY_HTTP_PATHS.includes(req.path))) {
          next();
          return;
        }
        log.warning(`refused ${req.method} ${req.path} from ${normalizePeer(req.socket.remoteAddress)}`);
        res.status(403).type("text/plain").send(refuse(normalizePeer(req.socket.remoteAddress)));
      });
    }
    // Behind ingress the page lives under X-Ingress-Path: absolute redirects must carry it.
    app.use((req, res, next) => {
      const prefix = req.headers["x-ingress-path"];
      if (typeof prefix === "string" && INGRESS_PATH_RE.test(prefix)) {
        const setHeader = res.setHeader.bind(res);
        res.setHeader = (name: string, value: number | string | readonly string[]) => {
          if (name.toLowerCase() === "location" && typeof value === "string" && value.startsWith("/") && !value.startsWith("//")) {
            return setHeader(name, prefix + value);
          }
          return setHeader(name, value);
        };
      }
      next();
    });
    if (legacy !== undefined) app.use(legacy.router());
    app.get("/api/firmware/download", (req, res) => {
      void this.#download(req, res);
    });
    app.use(express.static(this.#opts.panelDir, { index: "index.html", fallthrough: true }));
    const ws = new WsApi({ services });
    const server = http.createServer(app);
    server.on("upgrade", (req, socket, head) => {
      const pathname = new URL(req.url ?? "/", "http://localhost").pathname;
      const refused = guard(hosts, req);
      if (refused !== null) {
        refusals.warn(`refused a WebSocket to ${pathname} from ${normalizePeer(req.socket.remoteAddress)}: ${refused}`);
        const body = `Forbidden: ${refused}.\n`;
        socket.end(`HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
        return;
      }
      const verdict = auth?.checkRequest(req) ?? "ok";
      if (verdict !== "ok") {
        const answer = refusal(verdict, auth?.retryAfterSeconds(req.socket.remoteAddress ?? "") ?? 60);
        const headers = Object.entries(answer.headers).map(([k, v]) => `${k}: ${v}\r\n`).join("");
        const reason = answer.status === 401 ? "Unauthorized" : "Too Many Requests";
        socket.end(`HTTP/1.1 ${answer.status} ${reason}\r\n${headers}Connection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(answer.body)}\r\n\r\n${answer.body}`);
        return;
      }
      const allowed = peerAccess(access, req.socket.remoteAddress);
      const isLegacy = legacy !== undefined && LEGACY_WS_PATHS.includes(pathname);
      if (allowed === "none" || (allowed === "legacy" && !isLegacy)) {
        log.warning(`refused a WebSocket to ${pathname} from ${normalizePeer(req.socket.remoteAddress)}`);
        socket.end("HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        return;
      }
      if (pathname === "/ws") ws.handleUpgrade(req, socket, head);
      else if (isLegacy) legacy.handleUpgrade(req, socket, head, pathname);
      else socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.#opts.port, this.#opts.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.#server = server;
    this.#ws = ws;
    return (server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    this.#ws?.stop();
    this.#opts.legacy?.stop();
    const server = this.#server;
    if (server === undefined) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => { resolve(); }));
  }

  async #download(req: Request, res: Response): Promise<void> {
    const token = typeof req.query.token === "string" ? req.query.token : "";
    const grant = this.#opts.services.downloads.redeem(token);
    if (grant === null) {
      res.status(403).type("text/plain").send("Download link is invalid, used or expired; request a new one.\n");
      return;
    }
    const { services } = this.#opts;
    const located = await locateBinaries(services.paths, grant.configuration, deviceName(services, grant.configuration));
    const found = located.find((b) => b.binary.file === grant.file);
    if (found === undefined) {
      res.status(404).type("text/plain").send(`${grant.file} no longer exists for ${grant.configuration}.\n`);
      return;
    }
    const { binary, path: file } = found;
    try {
      const stat = await fs.stat(file);
      res.status(200);
      res.setHeader("Content-Type", "application/octet-stream");
      res.setHeader("Content-Length", String(stat.size));
      res.setHeader("Content-Disposition", `attachment; filename="${binary.download_name.replace(/["\\\r\n]/g, "_")}"`);
      res.setHeader("Cache-Control", "no-store");
      createReadStream(file).on("error", (err) => {
        log.error(`download of ${file} failed: ${err.message}`);
        res.destroy(err);
      }).pipe(res);
    } catch (err) {
      log.error(`download of ${file} failed: ${String(err)}`);
      res.status(404).type("text/plain").send("The file could not be read.\n");
    }
  }
}
