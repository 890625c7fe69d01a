/**
 * The legacy ESPHome dashboard API (DESIGN §7): what Home Assistant's ESPHome
 * integration reaches through the `esphome-dashboard-api` client for its
 * device update entities.
 *
 * - `GET /devices` -> `{configured: [...], importable: []}`
 * - `GET /json-config?configuration=X` -> the validated configuration as JSON
 *   (`esphome config X --show-secrets`; 404 when the file does not exist, 422
 *   with the CLI's error when it does not validate)
 * - `GET /ping` -> `{}` keyed by configuration (reachability is not tracked)
 * - WebSocket `/compile` and `/upload`: the client sends
 *   `{"type": "spawn", "configuration": X, "port"?: P}` and gets
 *   `{"event": "line", "data": L}` per output line, then
 *   `{"event": "exit", "code": N}` and the socket closes.
 *
 * `/compile` is a compile job and `/upload` an upload job on the normal queue
 * (Home Assistant's update entity calls one, then the other), so they show in
 * the panel, respect the lanes and supersede rules, and use build servers.
 * Closing the socket before the end cancels the job, like the old dashboard
 * killing its subprocess. One socket follows one job; output lines a slow
 * client has not read are dropped past the Outbox's limits (the job is
 * unaffected), and a client that reads nothing at all is closed with 1008.
 */
import { execFile } from "node:child_process";
import { promises as fs } from "node:fs";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import express, { type Request, type Response, type Router } from "express";
import { WebSocketServer, type RawData, type WebSocket } from "ws";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { ESPHOME_ENV, leaseEsphome, subprocessEnv, type EsphomeCommand } from "../esphome/cli.ts";
import { resolveConfigurationPath, validateConfigurationName } from "../esphome/configuration.ts";
import { BuilderError, errorMessage } from "../errors.ts";
import { isTerminal, type FirmwareJob } from "../firmware/job.ts";
import { getLogger } from "../logger.ts";
import { COMMANDS, type ApiServices, type ClientContext } from "./commands.ts";
import { CLOSE_NOT_READING, CLOSE_NOT_READING_REASON, Outbox } from "./outbox.ts";

const log = getLogger("legacy-api");

/** Paths the legacy API answers (HTTP GET and WebSocket). */
export const LEGACY_HTTP_PATHS: readonly string[] = ["/devices", "/json-config", "/ping"];
export const LEGACY_WS_PATHS: readonly string[] = ["/compile", "/upload"];

/** How long a client may take to send its spawn message. */
const SPAWN_TIMEOUT_MS = 30_000;
/** `esphome config` may take a while on a cold cache, but not forever. */
const CONFIG_TIMEOUT_MS = 120_000;
const MAX_CONFIG_OUTPUT = 16 * 1024 * 1024;

export interface LegacyDevice {
  name: string;
  friendly_name: string;
  configuration: string;
  address: string;
  current_version: string;
  deployed_version: string;
  target_platform: string;
  loaded_integrations: string[];
  path: string;
  comment: string | null;
  web_port: number | null;
}

const spawnSchema = z
  .object({
    type: z.literal("spawn"),
    configuration: z.string(),
    port: z.string().optional(),
  })
  .loose();

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  return Buffer.from(data as ArrayBuffer).toString("utf8");
}

const LEGACY_CLIENT: ClientContext = { clientId: "legacy-api", onClose: () => undefined };

async function readStorage(file: string): Promise<Record<string, unknown> | null> {
  try {
    const raw: unknown = JSON.parse(await fs.readFile(file, "utf8"));
    return typeof raw === "object" && raw !== null ? (raw as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

export interface LegacyApiOptions {
  services: ApiServices;
  /** The ESPHome executable (for `/json-config`), or the managed ESPHome. */
  esphome: EsphomeCommand;
}

export class LegacyApi {
  readonly #services: ApiServices;
  readonly #esphome: EsphomeCommand;
  readonly #wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024, autoPong: false });
  readonly #sockets = new Set<WebSocket>();
  #configRuns = 0;

  constructor(opts: LegacyApiOptions) {
    this.#services = opts.services;
    this.#esphome = opts.esphome;
  }

  /** The HTTP routes, mounted before the panel's static files. */
  router(): Router {
    const router = express.Router();
    router.get("/devices", (_req, res) => {
      void this.devices().then(
        (configured) => { res.json({ configured, importable: [] }); },
        (err: unknown) => { this.#internal(res, err); },
      );
    });
    router.get("/ping", (_req, res) => {
      // Online `true`, offline `false`, not known yet `null`: the device state's status.
      res.json(
        Object.fromEntries(
          this.#services.devices.list().map((d) => {
            const status = this.#services.deviceStates.get(d.configuration)?.status;
            return [d.configuration, status === "online" ? true : status === "offline" ? false : null];
          }),
        ),
      );
    });
    router.get("/json-config", (req, res) => {
      void this.#jsonConfig(req, res).catch((err: unknown) => { this.#internal(res, err); });
    });
    return router;
  }

  /**
   * `/devices` rows: the scan, with platform and integrations from ESPHome's
   * storage JSON of the last build. `deployed_version` is what the device
   * reports running (its native API or mDNS); only for a device not heard from
   * since this builder started is it the last build's version. `current_version`
   * is this builder's ESPHome.
   */
  async devices(): Promise<LegacyDevice[]> {
    const { services } = this;
    const current = services.info().esphome_version ?? "";
    const rows: LegacyDevice[] = [];
    for (const device of services.devices.list()) {
      const storage = await readStorage(services.paths.storageJson(device.configuration));
      const str = (key: string): string | null => (typeof storage?.[key] === "string" ? storage[key] : null);
      const integrations = storage?.loaded_integrations;
      const webPort = storage?.web_port;
      const state = services.deviceStates.get(device.configuration);
      rows.push({
        name: device.name,
        friendly_name: device.friendly_name,
        configuration: device.configuration,
        address: state !== undefined && state.address_source !== "yaml" ? state.address : (str("address") ?? device.address),
        current_version: current,
        deployed_version: state?.firmware?.esphome_version ?? str("esphome_version") ?? "",
        target_platform: str("target_platform") ?? (device.platform ?? "").toUpperCase(),
        loaded_integrations: Array.isArray(integrations) && integrations.every((i) => typeof i === "string") ? integrations.map(String).sort() : [...device.loaded_integrations],
        path: device.path,
        comment: str("comment") ?? device.comment,
        web_port: typeof webPort === "number" ? webPort : device.web_port,
      });
    }
    return rows;
  }

  get services(): ApiServices {
    return this.#services;
  }

  #internal(res: Response, err: unknown): void {
    log.error(`legacy API request failed: ${errorMessage(err)}`);
    if (!res.headersSent) res.status(500).type("text/plain").send("Internal error\n");
  }

  async #jsonConfig(req: Request, res: Response): Promise<void> {
    const raw = req.query.configuration;
    let file: string;
    try {
      file = resolveConfigurationPath(this.#services.paths.configDir, validateConfigurationName(raw));
    } catch (err) {
      res.status(400).type("text/plain").send(`${errorMessage(err)}\n`);
      return;
    }
    try {
      if (!(await fs.stat(file)).isFile()) throw new Error("not a file");
    } catch {
      res.status(404).type("text/plain").send("No such configuration\n");
      return;
    }
    if (this.#configRuns >= 2) {
      res.status(503).type("text/plain").send("Busy validating other configurations; try again\n");
      return;
    }
    // Home Assistant's request should not hang while the managed ESPHome is first installed.
    if (typeof this.#esphome !== "string" && !this.#esphome.ready()) {
      res.status(503).type("text/plain").send("ESPHome is being installed on this builder; try again in a minute\n");
      return;
    }
    const lease = await leaseEsphome(this.#esphome);
    if ("error" in lease) {
      res.status(503).type("text/plain").send(`${lease.error}\n`);
      return;
    }
    const executable = lease.executable;
    this.#configRuns++;
    try {
      const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        // Plain output (no colour variables): it is parsed as YAML.
        const env = { ...subprocessEnv("own"), PYTHONUNBUFFERED: "1", PYTHONUTF8: "1", PYTHONIOENCODING: ESPHOME_ENV.PYTHONIOENCODING, ESPHOME_DATA_DIR: this.#services.paths.dataDir };
        execFile(
          executable,
          ["config", file, "--show-secrets"],
          { cwd: this.#services.paths.configDir, env, timeout: CONFIG_TIMEOUT_MS, maxBuffer: MAX_CONFIG_OUTPUT, encoding: "utf8", killSignal: "SIGKILL" },
          (err, out, errOut) => {
            const errCode: unknown = err === null ? 0 : (err as { code?: unknown }).code;
            const exit = typeof errCode === "number" ? errCode : 1;
            resolve({ code: exit, stdout: out, stderr: errOut });
          },
        );
      });
      if (code !== 0) {
        res.status(422).type("text/plain").send(stderr + stdout);
        return;
      }
      // ESPHome prints its own tags (!lambda, !secret …) in the dump; unknown tags keep their plain value.
      const data: unknown = parseYaml(stdout, { logLevel: "silent", uniqueKeys: false, maxAliasCount: 1000 });
      res.json(data ?? {});
    } finally {
      this.#configRuns--;
      lease.release();
    }
  }

  // ---- WebSocket spawn protocol ----

  /** An upgrade for `/compile` or `/upload` (the HTTP server has checked its Host and Origin). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, pathname: string): void {
    const kind = pathname === "/compile" ? "compile" : "upload";
    this.#wss.handleUpgrade(req, socket, head, (ws) => { this.#attach(ws, kind); });
  }

  stop(): void {
    for (const ws of this.#sockets) ws.close(1001, "server stopping");
    this.#wss.close();
  }

  #attach(ws: WebSocket, kind: "compile" | "upload"): void {
    this.#sockets.add(ws);
    const cleanups: (() => void)[] = [];
    let job: FirmwareJob | null = null;
    let started = false;
    let finished = false;
    const timer = setTimeout(() => { if (!started) ws.close(1008, "no spawn message"); }, SPAWN_TIMEOUT_MS);
    const outbox = new Outbox(ws, (detail) => {
      log.warning(`closing the legacy ${kind} connection (${CLOSE_NOT_READING} ${CLOSE_NOT_READING_REASON}): ${detail}`);
      ws.close(CLOSE_NOT_READING, CLOSE_NOT_READING_REASON);
    });
    const send = (frame: object, droppable = false): void => {
      if (droppable && outbox.backlogged()) return;
      outbox.send(JSON.stringify(frame), droppable ? "droppable" : "event");
    };
    const exit = (code: number): void => {
      finished = true;
      send({ event: "exit", code });
      ws.close(1000);
    };
    ws.on("error", (err) => { log.debug(`legacy ${kind} socket error: ${err.message}`); });
    ws.on("ping", (data: Buffer) => { outbox.pong(data); });
    ws.on("close", () => {
      clearTimeout(timer);
      this.#sockets.delete(ws);
      for (const fn of cleanups.splice(0)) fn();
      const current = job === null ? undefined : this.#services.queue.get(job.job_id);
      if (!finished && current !== undefined && !isTerminal(current.status)) {
        log.info(`legacy ${kind} client went away; cancelling job ${current.job_id}`);
        try {
          this.#services.queue.cancel(current.job_id);
        } catch (err) {
          log.debug(`cancel of ${current.job_id} failed: ${errorMessage(err)}`);
        }
      }
    });
    ws.on("message", (data: RawData, isBinary: boolean) => {
      if (started) return; // one spawn per socket, like the old dashboard
      started = true;
      clearTimeout(timer);
      const fail = (message: string): void => {
        log.warning(`legacy ${kind} refused: ${message}`);
        send({ event: "line", data: `${message}\n` });
        exit(1);
      };
      if (isBinary) {
        fail("Binary frames are not accepted; send the JSON spawn message");
        return;
      }
      let message: unknown;
      try {
        message = JSON.parse(rawText(data));
      } catch {
        fail("The spawn message is not valid JSON");
        return;
      }
      const spawn = spawnSchema.safeParse(message);
      if (!spawn.success) {
        fail(`Expected {"type": "spawn", "configuration": …}: ${spawn.error.issues.map((i) => `${i.path.join(".") || "message"}: ${i.message}`).join("; ")}`);
        return;
      }
      const command = kind === "compile" ? COMMANDS["firmware/compile"] : COMMANDS["firmware/upload"];
      const args = command.args.safeParse(
        kind === "compile" ? { configuration: spawn.data.configuration } : { configuration: spawn.data.configuration, port: spawn.data.port ?? "OTA" },
      );
      if (!args.success) {
        fail(args.error.issues.map((i) => i.message).join("; "));
        return;
      }
      void (command.run as (a: unknown, s: ApiServices, c: ClientContext) => Promise<FirmwareJob>)(args.data, this.#services, LEGACY_CLIENT).then(
        (created) => {
          job = created;
          log.info(`legacy ${kind} of ${created.configuration}: job ${created.job_id}`);
          if (ws.readyState !== ws.OPEN) {
            // The client left while the job was being created.
            try {
              this.#services.queue.cancel(created.job_id);
            } catch {
              // already finished
            }
            return;
          }
          // #follow never rejects: a failure to read the job's log is told to the client.
          return this.#follow(created.job_id, send, exit, cleanups);
        },
        (err: unknown) => { fail(err instanceof BuilderError ? err.message : `Internal error: ${errorMessage(err)}`); },
      ).catch((err: unknown) => {
        log.error(`legacy ${kind}: following the job failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
        if (!finished) exit(1);
      });
    });
  }

  /**
   * Streams a job's output, then its exit code; listeners attach in the same
   * step as the snapshot. A job that ended before this (superseded while it was
   * being queued, say) is replayed from its log. When it has left the history
   * already, or its log cannot be read, the client is told so in a line and
   * gets exit code 1 (or the job's own code, when it is known).
   */
  async #follow(jobId: string, send: (frame: object, droppable?: boolean) => void, exit: (code: number) => void, cleanups: (() => void)[]): Promise<void> {
    const { queue, bus } = this.#services;
    const exitCode = (j: FirmwareJob): number => (j.status === "completed" ? 0 : j.exit_code !== null && j.exit_code !== 0 ? j.exit_code : 1);
    const current = queue.get(jobId);
    const live = queue.liveOutput(jobId);
    if (current === undefined || isTerminal(current.status) || live === null) {
      let lines: string[];
      if (current === undefined) {
        lines = [`*** Job ${jobId} ended and left the history before it could be followed ***\n`];
      } else {
        try {
          lines = await queue.output(jobId);
        } catch (err) {
          log.warning(`legacy: the log of job ${jobId} could not be read: ${errorMessage(err)}`);
          lines = [`*** The job's log could not be read: ${errorMessage(err)} ***\n`];
        }
      }
      for (const line of lines) send({ event: "line", data: line }, true);
      const final = queue.get(jobId) ?? current;
      exit(final === undefined ? 1 : exitCode(final));
      return;
    }
    for (const line of live) send({ event: "line", data: line }, true);
    cleanups.push(bus.on("job_output", (e) => { if (e.job_id === jobId) send({ event: "line", data: e.line }, true); }));
    for (const name of ["job_completed", "job_failed", "job_cancelled"] as const) {
      cleanups.push(bus.on(name, (e) => { if (e.job.job_id === jobId) exit(exitCode(e.job)); }));
    }
  }
}
