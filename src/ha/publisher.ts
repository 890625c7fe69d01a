/**
 * What Home Assistant sees of the builder (DESIGN §8): four entities set
 * through the REST states API, one event per job transition, and a pairing
 * request's event and persistent notification (peer-supplied text in it is
 * escaped: `markdown.ts`).
 *
 * Entities set over REST have no unique id and vanish when Home Assistant
 * restarts, so every (re)connect republishes all of them. State publishes are
 * coalesced (at most one round per `debounceMs`) and skipped when nothing
 * changed; events and notifications go out at once, in order. While Home
 * Assistant is unreachable, events wait in a bounded outbox and are sent when
 * it is back; the builder itself never waits on any of this.
 */
import type { EsphomeStatus } from "../domain/esphome.ts";
import type { EventBus, Unsubscribe } from "../events.ts";
import { errorMessage } from "../errors.ts";
import { isTerminal, type FirmwareJob } from "../firmware/job.ts";
import type { DeviceState } from "../domain/device.ts";
import { getLogger } from "../logger.ts";
import { fingerprintEmoji } from "../remote-build/transport/fingerprint.ts";
import { markdownText } from "./markdown.ts";

const log = getLogger("ha-publisher");

export const ENTITY_IDS = {
  queue: "sensor.esphome_builder_queue",
  building: "binary_sensor.esphome_builder_building",
  lastJob: "sensor.esphome_builder_last_job",
  pairingRequests: "sensor.esphome_builder_pairing_requests",
  esphome: "sensor.esphome_builder_esphome",
  deviceUpdates: "sensor.esphome_builder_device_updates",
} as const;

export const JOB_EVENT_TYPES = {
  job_queued: "esphome_builder_job_queued",
  job_started: "esphome_builder_job_started",
  job_completed: "esphome_builder_job_completed",
  job_failed: "esphome_builder_job_failed",
  job_cancelled: "esphome_builder_job_cancelled",
} as const;

export const PAIR_REQUEST_EVENT = "esphome_builder_pair_request";

/** What the publisher needs of Home Assistant (the REST half of `HaClient`). */
export interface HaTransport {
  setState(entityId: string, state: string, attributes: Record<string, unknown>): Promise<void>;
  fireEvent(eventType: string, data: Record<string, unknown>): Promise<void>;
  callService(domain: string, service: string, data: Record<string, unknown>): Promise<void>;
}

export interface PendingPairRequest {
  dashboard_id: string;
  pin_sha256: string;
  label: string;
  peer_ip: string;
}

export interface PublisherDeps {
  bus: EventBus;
  transport: HaTransport;
  /** Every job the queue knows (active and history), without output. */
  jobs: () => FirmwareJob[];
  /** Pairing requests waiting for the user. */
  pendingPairRequests: () => PendingPairRequest[];
  /** Every device's live state (for the device-updates entity); without it the entity is not published. */
  deviceStates?: () => DeviceState[];
  /** A link to the panel for notifications (relative to Home Assistant or absolute); null = no link. */
  panelUrl: () => string | null;
  /** The builder's ESPHome (version, newest release, installing); without it the ESPHome entity is not published. */
  esphome?: () => EsphomeStatus;
  debounceMs?: number;
  retryMinMs?: number;
  retryMaxMs?: number;
}

/** Events held while Home Assistant is unreachable; the oldest are dropped past this. */
export const OUTBOX_LIMIT = 200;

interface OutboxItem {
  what: string;
  send: (t: HaTransport) => Promise<void>;
}

interface EntityState {
  entityId: string;
  state: string;
  attributes: Record<string, unknown>;
}

function durationSeconds(job: FirmwareJob): number | null {
  if (job.started_at === null) return null;
  const end = job.completed_at === null ? Date.now() : Date.parse(job.completed_at);
  const start = Date.parse(job.started_at);
  if (!Number.isFinite(start) || !Number.isFinite(end)) return null;
  return Math.max(0, Math.round((end - start) / 100) / 10);
}

/** The data of an `esphome_builder_job_*` event. */
export function jobEventData(job: FirmwareJob): Record<string, unknown> {
  return {
    job_id: job.job_id,
    configuration: job.configuration,
    type: job.job_type,
    status: job.status,
    source: job.source,
    source_label: job.source_label,
    error: job.error,
    exit_code: job.exit_code,
    duration: isTerminal(job.status) ? durationSeconds(job) : null,
  };
}

function jobSummary(job: FirmwareJob): Record<string, unknown> {
  return {
    job_id: job.job_id,
    configuration: job.configuration,
    type: job.job_type,
    status: job.status,
    phase: job.phase,
    progress: job.progress,
    source: job.source,
    source_label: job.source_label,
    started_at: job.started_at,
  };
}

/**
 * `sensor.esphome_builder_esphome`: the ESPHome the builder's jobs run (its version as the state),
 * the newest release the package index offers and whether that is newer, and an install under way.
 */
export function esphomeEntity(status: EsphomeStatus): EntityState {
  const current = status.current_version;
  const latest = status.latest_version;
  const task = status.state;
  return {
    entityId: ENTITY_IDS.esphome,
    state: current ?? (task.status === "provisioning" ? "installing" : "unavailable"),
    attributes: {
      friendly_name: "ESPHome Builder ESPHome version",
      icon: "mdi:chip",
      managed: status.mode === "managed",
      installed_version: current,
      latest_version: latest,
      // Newer only when both are known: an unknown newest release is no update.
      update_available: current !== null && latest !== null && latest !== current && compareReleases(latest, current) > 0,
      installing: task.status === "provisioning" ? { version: task.version, percent: task.percent } : null,
      error: task.status === "failed" ? task.message : null,
    },
  };
}

/** > 0 when `a` is a newer release number than `b` (numeric parts). */
function compareReleases(a: string, b: string): number {
  const pa = a.split(/[.a-z]+/).map(Number);
  const pb = b.split(/[.a-z]+/).map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** The entities, computed from the queue, the receiver and (when given) the ESPHome status. Pure, for tests. */
export function computeEntities(jobs: readonly FirmwareJob[], pending: readonly PendingPairRequest[], esphome?: EsphomeStatus): EntityState[] {
  const active = jobs.filter((j) => !isTerminal(j.status)).sort((a, b) => a.created_at.localeCompare(b.created_at));
  const running = active.filter((j) => j.status === "running");
  const finished = jobs.filter((j) => isTerminal(j.status) && j.completed_at !== null);
  let last: FirmwareJob | undefined;
  for (const job of finished) if (last === undefined || (job.completed_at ?? "") > (last.completed_at ?? "")) last = job;
  const current = running[0] ?? null;
  return [
    {
      entityId: ENTITY_IDS.queue,
      state: String(active.length),
      attributes: {
        friendly_name: "ESPHome Builder queue",
        icon: "mdi:tray-full",
        unit_of_measurement: "jobs",
        state_class: "measurement",
        running: running.length,
        queued: active.length - running.length,
        current_job: current === null ? null : jobSummary(current),
        jobs: active.slice(0, 50).map((j) => ({ job_id: j.job_id, configuration: j.configuration, type: j.job_type, status: j.status })),
      },
    },
    {
      entityId: ENTITY_IDS.building,
      state: running.length > 0 ? "on" : "off",
      attributes: {
        friendly_name: "ESPHome Builder building",
        icon: running.length > 0 ? "mdi:hammer-wrench" : "mdi:sleep",
        device_class: "running",
        configurations: running.map((j) => j.configuration),
      },
    },
    {
      entityId: ENTITY_IDS.lastJob,
      state: last === undefined ? "none" : last.status,
      attributes: {
        friendly_name: "ESPHome Builder last job",
        icon: last === undefined ? "mdi:help-circle-outline" : last.status === "completed" ? "mdi:check-circle" : last.status === "failed" ? "mdi:alert-circle" : "mdi:cancel",
        ...(last === undefined
          ? {}
          : { ...jobEventData(last), completed_at: last.completed_at }),
      },
    },
    {
      entityId: ENTITY_IDS.pairingRequests,
      state: String(pending.length),
      attributes: {
        friendly_name: "ESPHome Builder pairing requests",
        icon: pending.length > 0 ? "mdi:link-variant-plus" : "mdi:link-variant",
        unit_of_measurement: "requests",
        requests: pending.map((p) => ({ dashboard_id: p.dashboard_id, label: p.label, peer_ip: p.peer_ip, pin_sha256: p.pin_sha256 })),
      },
    },
    ...(esphome === undefined ? [] : [esphomeEntity(esphome)]),
  ];
}

/**
 * `sensor.esphome_builder_device_updates`: how many devices have an update
 * available; `devices` lists them with the reason (for an automation that
 * installs the outdated ones, or a card that shows them).
 */
export function deviceUpdatesEntity(states: readonly DeviceState[]): EntityState {
  const due = states.filter((s) => s.update_reasons.length > 0);
  return {
    entityId: ENTITY_IDS.deviceUpdates,
    state: String(due.length),
    attributes: {
      friendly_name: "ESPHome Builder device updates",
      icon: due.length > 0 ? "mdi:package-up" : "mdi:package-check",
      unit_of_measurement: "devices",
      devices: due.map((s) => ({
        configuration: s.configuration,
        status: s.status,
        deployed_version: s.firmware?.esphome_version ?? null,
        reasons: s.update_reasons,
        detail: s.update_detail,
        deep_sleep: s.deep_sleep,
      })),
      online: states.filter((s) => s.status === "online").length,
      offline: states.filter((s) => s.status === "offline").length,
    },
  };
}

function notificationId(dashboardId: string): string {
  return `esphome_builder_pair_${dashboardId.replace(/[^A-Za-z0-9_]/g, "_")}`;
}

/**
 * The pairing request's notification. Everything the peer chose or sent (its
 * label, its dashboard_id) and its address go in through `markdownText`, so
 * none of it can become a link, HTML or formatting in Home Assistant.
 */
export function pairNotification(request: PendingPairRequest, panelUrl: string | null): Record<string, unknown> {
  const label = markdownText(request.label);
  const who = label === "" ? markdownText(request.dashboard_id) : label;
  const emoji = fingerprintEmoji(request.pin_sha256).join(" ");
  const open = panelUrl === null ? "Open ESPHome Builder" : `[Open ESPHome Builder](${panelUrl})`;
  return {
    notification_id: notificationId(request.dashboard_id),
    title: "ESPHome Builder: pairing request",
    message:
      `**${who}** (${markdownText(request.peer_ip)}) asks to use this builder as a build server.\n\n` +
      `Fingerprint: ${emoji}\n\n` +
      `${open} to compare the fingerprint with the one the other builder shows, then approve or reject it.`,
  };
}

export class HaPublisher {
  readonly #deps: PublisherDeps;
  readonly #debounceMs: number;
  readonly #retryMinMs: number;
  readonly #retryMaxMs: number;
  readonly #published = new Map<string, string>();
  readonly #outbox: OutboxItem[] = [];
  readonly #unsubscribe: Unsubscribe[] = [];
  #stateTimer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #retryDelay: number;
  #statesDue = false;
  #forceAll = false;
  #flushing: Promise<void> | null = null;
  #again = false;
  #failing = false;
  #stopped = false;
  #dropped = 0;

  constructor(deps: PublisherDeps) {
    this.#deps = deps;
    this.#debounceMs = deps.debounceMs ?? 250;
    this.#retryMinMs = deps.retryMinMs ?? 2_000;
    this.#retryMaxMs = deps.retryMaxMs ?? 60_000;
    this.#retryDelay = this.#retryMinMs;
  }

  start(): void {
    const { bus } = this.#deps;
    for (const name of ["job_queued", "job_started", "job_completed", "job_failed", "job_cancelled"] as const) {
      this.#unsubscribe.push(
        bus.on(name, ({ job }) => {
          const type = JOB_EVENT_TYPES[name];
          const data = jobEventData(job);
          this.#push({ what: `${type} ${job.job_id}`, send: (t) => t.fireEvent(type, data) });
          this.#statesChanged();
        }),
      );
    }
    this.#unsubscribe.push(
      bus.on("job_progress", () => { this.#statesChanged(); }),
      bus.on("job_removed", () => { this.#statesChanged(); }),
      bus.on("remote_build_pair_request_received", (request) => {
        this.#push({
          what: `${PAIR_REQUEST_EVENT} ${request.dashboard_id}`,
          send: (t) => t.fireEvent(PAIR_REQUEST_EVENT, { ...request, fingerprint_emoji: fingerprintEmoji(request.pin_sha256) }),
        });
        const data = pairNotification(request, this.#deps.panelUrl());
        this.#push({ what: "pairing notification", send: (t) => t.callService("persistent_notification", "create", data) });
        this.#statesChanged();
      }),
      bus.on("remote_build_pair_status_changed", ({ dashboard_id }) => {
        const data = { notification_id: notificationId(dashboard_id) };
        this.#push({ what: "pairing notification dismissal", send: (t) => t.callService("persistent_notification", "dismiss", data) });
        this.#statesChanged();
      }),
      bus.on("remote_build_pairing_window_changed", () => { this.#statesChanged(); }),
      bus.on("esphome_state_changed", () => { this.#statesChanged(); }),
      bus.on("device_state_changed", () => { this.#statesChanged(); }),
    );
    this.republish();
  }

  /** Publishes every entity again (Home Assistant (re)connected and may have lost them) and resends held events. */
  republish(): void {
    if (this.#stopped) return;
    this.#forceAll = true;
    this.#statesDue = true;
    // Notifications live in memory in Home Assistant: raise the pending ones again.
    for (const request of this.#deps.pendingPairRequests()) {
      const data = pairNotification(request, this.#deps.panelUrl());
      this.#push({ what: "pairing notification", send: (t) => t.callService("persistent_notification", "create", data) }, false);
    }
    this.#retryDelay = this.#retryMinMs;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#kick();
  }

  /** Stops listening and makes one last bounded attempt to publish what is pending. */
  async stop(timeoutMs = 2_000): Promise<void> {
    for (const off of this.#unsubscribe.splice(0)) off();
    clearTimeout(this.#stateTimer);
    clearTimeout(this.#retryTimer);
    if (!this.#failing) {
      this.#statesDue = true;
      this.#kick();
    }
    this.#stopped = true;
    const flushing = this.#flushing;
    if (flushing !== null) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([flushing, new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs); })]);
      clearTimeout(timer);
    }
  }

  /** Resolves when nothing is waiting to be sent (tests). */
  async idle(): Promise<void> {
    while (this.#flushing !== null || this.#stateTimer !== undefined) {
      await (this.#flushing ?? new Promise((resolve) => setTimeout(resolve, this.#debounceMs)));
    }
  }

  #push(item: OutboxItem, kick = true): void {
    this.#outbox.push(item);
    if (this.#outbox.length > OUTBOX_LIMIT) {
      this.#outbox.shift();
      this.#dropped++;
    }
    if (kick) this.#kick();
  }

  #statesChanged(): void {
    if (this.#stateTimer !== undefined || this.#stopped) return;
    this.#stateTimer = setTimeout(() => {
      this.#stateTimer = undefined;
      this.#statesDue = true;
      this.#kick();
    }, this.#debounceMs);
  }

  #kick(): void {
    if (this.#flushing !== null) {
      this.#again = true;
      return;
    }
    if (this.#failing && this.#retryTimer !== undefined) return; // wait for the retry (or a reconnect)
    this.#flushing = this.#flush().finally(() => {
      this.#flushing = null;
      if (this.#again && !this.#failing) {
        this.#again = false;
        this.#kick();
      }
    });
  }

  async #flush(): Promise<void> {
    const { transport } = this.#deps;
    try {
      while (this.#outbox.length > 0) {
        const item = this.#outbox[0] as OutboxItem;
        await item.send(transport);
        this.#outbox.shift();
      }
      if (this.#statesDue) {
        this.#statesDue = false;
        const force = this.#forceAll;
        this.#forceAll = false;
        try {
          const deviceStates = this.#deps.deviceStates;
          const entities = computeEntities(this.#deps.jobs(), this.#deps.pendingPairRequests(), this.#deps.esphome?.());
          if (deviceStates !== undefined) entities.push(deviceUpdatesEntity(deviceStates()));
          for (const entity of entities) {
            const key = JSON.stringify([entity.state, entity.attributes]);
            if (!force && this.#published.get(entity.entityId) === key) continue;
            await transport.setState(entity.entityId, entity.state, entity.attributes);
            this.#published.set(entity.entityId, key);
          }
        } catch (err) {
          this.#statesDue = true;
          this.#forceAll ||= force;
          throw err;
        }
      }
      if (this.#failing) {
        this.#failing = false;
        log.info(`publishing to Home Assistant again${this.#dropped > 0 ? ` (${this.#dropped} event(s) were dropped while it was away)` : ""}`);
        this.#dropped = 0;
      }
      this.#retryDelay = this.#retryMinMs;
    } catch (err) {
      if (!this.#failing) log.warning(`could not publish to Home Assistant: ${errorMessage(err)}; holding events and retrying`);
      else log.debug(() => `publish still failing: ${errorMessage(err)}`);
      this.#failing = true;
      this.#again = false;
      if (!this.#stopped) {
        const delay = this.#retryDelay;
        this.#retryDelay = Math.min(this.#retryDelay * 2, this.#retryMaxMs);
        clearTimeout(this.#retryTimer);
        this.#retryTimer = setTimeout(() => {
          this.#retryTimer = undefined;
          this.#kick();
        }, delay);
        this.#retryTimer.unref();
      }
    }
  }
}
