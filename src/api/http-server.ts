/**
 * The HTTP side: the panel's static files, firmware downloads, and the
 * WebSocket upgrade for `/ws`. One listener serves it all.
 */
import { createReadStream, promises as fs } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import express, { type Request, type Response } from "express";
import { firmwareFolder, listBinaries } from "../firmware/binaries.ts";
import { getLogger } from "../logger.ts";
import type { ApiServices } from "./commands.ts";
import { WsApi } from "./ws-api.ts";

const log = getLogger("http");

export interface HttpServerOptions {
  services: ApiServices;
  host: string;
  port: number;
  /** Folder with the built panel (index.html and assets). */
  panelDir: string;
  trustedOrigins?: readonly string[];
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
    app.get("/api/firmware/download", (req, res) => {
      void this.#download(req, res);
    });
    app.use(express.static(this.#opts.panelDir, { index: "index.html", fallthrough: true }));
    const ws = new WsApi({ services, ...(this.#opts.trustedOrigins ? { trustedOrigins: this.#opts.trustedOrigins } : {}) });
    const server = http.createServer(app);
    server.on("upgrade", (req, socket, head) => {
      const pathname = new URL(req.url ?? "/", "http://localhost").pathname;
      if (pathname === "/ws") ws.handleUpgrade(req, socket, head);
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
    const name = services.devices.get(grant.configuration)?.name ?? grant.configuration.replace(/\.ya?ml$/, "");
    const binaries = await listBinaries(services.paths, grant.configuration, name);
    const binary = binaries.find((b) => b.file === grant.file);
    if (binary === undefined) {
      res.status(404).type("text/plain").send(`${grant.file} no longer exists for ${grant.configuration}.\n`);
      return;
    }
    const file = path.join(await firmwareFolder(services.paths, grant.configuration, name), binary.file);
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
