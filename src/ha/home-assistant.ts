/**
 * The Home Assistant part of the builder: the client (add-on or direct mode),
 * the entity/event publisher, automation commands (stdin and the
 * `esphome_builder_command` event), Supervisor discovery of the legacy
 * dashboard API, and the add-on options that need the running builder.
 *
 * Everything here is best effort and in the background: Home Assistant being
 * down, slow or misconfigured never stops or delays a build.
 */
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Readable } from "node:stream";
import { z } from "zod";
import type { ApiServices } from "../api/commands.ts";
import type { BuilderConfig } from "../config.ts";
import { errorMessage } from "../errors.ts";
import type { EventBus } from "../events.ts";
import type { FirmwareQueue } from "../firmware/queue.ts";
import { getLogger } from "../logger.ts";
import type { Receiver } from "../remote-build/build-server/receiver.ts";
import { atomicWrite } from "../store.ts";
import { COMMAND_EVENT, readCommandLines, runAutomationCommand } from "./automation.ts";
import { HaClient, haTarget, type HaTimings } from "./client.ts";
import type { EsphomeStatus } from "../domain/esphome.ts";
import { HaPublisher } from "./publisher.ts";
import { SupervisorClient, withRetry, type AddonSelfInfo } from "./supervisor.ts";

const log = getLogger("home-assistant");

export interface HomeAssistantDeps {
  config: BuilderConfig;
  bus: EventBus;
  queue: FirmwareQueue;
  receiver: Pick<Receiver, "peers" | "enabled" | "setEnabled">;
  /** The builder's state folder (for the add-on options we have applied). */
  stateDir: string;
  /** Where stdin commands come from (default `process.stdin`). */
  stdin?: Readable;
  /** The builder's ESPHome, for the `sensor.esphome_builder_esphome` entity. */
  esphome?: () => EsphomeStatus;
  timings?: Partial<HaTimings> & { debounceMs?: number; publishRetryMinMs?: number };
}

const appliedOptionsSchema = z.object({ build_server: z.boolean().optional() }).loose();

export class HomeAssistant {
  readonly client: HaClient | null;
  readonly supervisor: SupervisorClient | null;
  publisher: HaPublisher | null = null;
  readonly #deps: HomeAssistantDeps;
  readonly #abort = new AbortController();
  #selfInfo: AddonSelfInfo | null = null;
  #stopReading: (() => void) | null = null;
  #acceptCommands = false;
  #commandChain: Promise<unknown> = Promise.resolve();
  #panelUrl: string | null = null;

  constructor(deps: HomeAssistantDeps) {
    this.#deps = deps;
    const { config } = deps;
    const target = haTarget(config);
    this.client = target === null ? null : new HaClient({ target, ...(deps.timings === undefined ? {} : { timings: deps.timings }) });
    this.supervisor =
      config.addon && config.supervisorToken !== undefined && config.supervisorToken !== ""
        ? new SupervisorClient({ url: config.supervisorUrl ?? "http://supervisor", token: config.supervisorToken })
        : null;
  }

  /** Add-on: the port the Supervisor's ingress proxy connects to (it picks one with `ingress_port: 0`). */
  async ingressPort(): Promise<number> {
    if (this.supervisor === null) throw new Error("not running as an add-on");
    const supervisor = this.supervisor;
    this.#selfInfo = await withRetry("asking the Supervisor for the ingress port", () => supervisor.selfInfo(), this.#abort.signal, { attempts: 8, maxMs: 8_000 });
    return this.#selfInfo.ingress_port;
  }

  /**
   * Add-on: the Home Assistant host's name (the label when the user gave none), or null
   * when the Supervisor does not answer with one after a few tries (the caller keeps its
   * fallback).
   */
  async hostName(): Promise<string | null> {
    if (this.supervisor === null) return null;
    const supervisor = this.supervisor;
    try {
      return await withRetry("asking the Supervisor for the host's name", () => supervisor.hostName(), this.#abort.signal, { attempts: 3, minMs: 500, maxMs: 2_000 });
    } catch (err) {
      log.warning(`could not read the host's name from the Supervisor: ${errorMessage(err)}`);
      return null;
    }
  }

  /**
   * Add-on option `build_server`: applied when the user changed it since the
   * last start, so a switch flipped in the panel is not undone by every restart.
   */
  async applyAddonOptions(): Promise<void> {
    const option = this.#deps.config.buildServer;
    if (option === undefined) return;
    const file = path.join(this.#deps.stateDir, "addon-options.json");
    let applied: z.infer<typeof appliedOptionsSchema> = {};
    try {
      applied = appliedOptionsSchema.parse(JSON.parse(await fs.readFile(file, "utf8")));
    } catch {
      // first start, or unreadable: apply the option
    }
    if (applied.build_server === option) return;
    log.info(`add-on option build_server is ${option ? "on" : "off"}: turning the build server ${option ? "on" : "off"}`);
    await this.#deps.receiver.setEnabled(option);
    await atomicWrite(file, JSON.stringify({ ...applied, build_server: option }) + "\n");
  }

  /** Starts publishing, listening for commands and (add-on) announcing the legacy API. Never blocks on Home Assistant. */
  start(ctx: { services: ApiServices; port: number }): void {
    const { config, bus, queue } = this.#deps;
    this.#panelUrl = this.#directPanelUrl(ctx.port);
    this.#acceptCommands = true;
    const client = this.client;
    if (client !== null) {
      this.publisher = new HaPublisher({
        bus,
        transport: client,
        jobs: () => queue.list(),
        pendingPairRequests: () => this.#deps.receiver.peers().filter((p) => p.status === "pending"),
        deviceStates: () => ctx.services.deviceStates.list(),
        panelUrl: () => this.#panelUrl,
        ...(this.#deps.esphome === undefined ? {} : { esphome: this.#deps.esphome }),
        ...(this.#deps.timings?.debounceMs === undefined ? {} : { debounceMs: this.#deps.timings.debounceMs }),
        ...(this.#deps.timings?.publishRetryMinMs === undefined ? {} : { retryMinMs: this.#deps.timings.publishRetryMinMs }),
      });
      const publisher = this.publisher;
      client.onReady(() => { publisher.republish(); });
      client.subscribeEvents("homeassistant_started", () => { publisher.republish(); });
      client.subscribeEvents(COMMAND_EVENT, (event) => {
        const user = event.context.user_id;
        this.#command(event.data, `the ${COMMAND_EVENT} event${user === null ? "" : ` (user ${user})`}`, ctx.services);
      });
      publisher.start();
      client.start();
      log.info(`reporting to Home Assistant ${client.target.mode === "addon" ? "through the Supervisor" : `at ${client.target.restBase.replace(/\/api$/, "")}`}`);
    }
    if (config.stdinCommands === true) {
      const input = this.#deps.stdin ?? process.stdin;
      this.#stopReading = readCommandLines(input, (value) => { this.#command(value, "stdin", ctx.services); });
      log.info("reading automation commands from stdin");
    }
    if (this.supervisor !== null) void this.#addonBackground(ctx.port);
  }

  /** Stops taking automation commands (first in the stop order). */
  stopCommands(): void {
    this.#acceptCommands = false;
    this.#stopReading?.();
    this.#stopReading = null;
  }

  /** Publishes what is pending (bounded) and disconnects; after the queue stopped, so its last events go out. */
  async stop(): Promise<void> {
    this.stopCommands();
    this.#abort.abort();
    await this.#commandChain.catch(() => undefined);
    await this.publisher?.stop();
    this.client?.stop();
  }

  #command(value: unknown, origin: string, services: ApiServices): void {
    if (!this.#acceptCommands) {
      log.warning(`automation command from ${origin} ignored: the builder is stopping`);
      return;
    }
    // One at a time, in arrival order: an install followed by a cancel means exactly that.
    this.#commandChain = this.#commandChain.then(() => runAutomationCommand(value, services, origin)).catch((err: unknown) => {
      log.error(`automation command from ${origin} failed: ${errorMessage(err)}`);
    });
  }

  #directPanelUrl(port: number): string | null {
    if (this.#deps.config.addon) return null; // set from the Supervisor's info
    const host = this.#deps.config.host;
    const shown = host === "0.0.0.0" || host === "::" ? os.hostname() : host.includes(":") ? `[${host}]` : host;
    return `http://${shown}:${port}/`;
  }

  async #addonBackground(port: number): Promise<void> {
    const supervisor = this.supervisor;
    if (supervisor === null) return;
    const signal = this.#abort.signal;
    try {
      const info = this.#selfInfo ?? (await withRetry("reading the add-on's info from the Supervisor", () => supervisor.selfInfo(), signal));
      this.#selfInfo = info;
      // The sidebar panel of an ingress add-on lives at /hassio/ingress/<slug>.
      if (info.slug !== "") this.#panelUrl = `/hassio/ingress/${info.slug}`;
    } catch (err) {
      if (!signal.aborted) log.warning(`could not read the add-on's info: ${errorMessage(err)}`);
    }
    if (this.#deps.config.dashboardIntegration === false) {
      log.info("home_assistant_dashboard_integration is off: not announcing the dashboard API to Home Assistant");
      return;
    }
    try {
      // Home Assistant Core runs on the host network like this add-on, so it reaches us on loopback.
      const uuid = await withRetry("Supervisor discovery", () => supervisor.discovery("esphome", { host: "127.0.0.1", port }), signal);
      log.info(`announced the ESPHome dashboard API to Home Assistant (discovery ${uuid}, port ${port})`);
    } catch (err) {
      if (!signal.aborted) log.warning(`Supervisor discovery failed: ${errorMessage(err)}`);
    }
  }
}
