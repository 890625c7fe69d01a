/**
 * The one typed event map of the builder and its synchronous bus.
 *
 * Listeners run inline in `emit`; one listener throwing never stops the
 * others (the error is logged). A listener that needs async work starts it
 * itself and must not block. `on` returns its own unsubscribe function.
 */
import type { Device } from "./esphome/device-scan.ts";
import type { FirmwareJob } from "./firmware/job.ts";
import type { QueueStatus } from "./firmware/queue.ts";
import type { DiscoveredHost } from "./remote-build/discovery.ts";
import type { OffloaderAlert, PairingSummary } from "./remote-build/offloader.ts";
import { getLogger } from "./logger.ts";

const log = getLogger("events");

export interface EventMap {
  /** A job entered the queue (payload: the whole job). */
  job_queued: { job: FirmwareJob };
  /** A job began running (again, after a restart re-queue). */
  job_started: { job: FirmwareJob };
  /** Terminal: the job succeeded. Exactly one terminal event per job. */
  job_completed: { job: FirmwareJob };
  /** Terminal: the job failed; `job.error` says why. */
  job_failed: { job: FirmwareJob };
  /** Terminal: the job was cancelled (by a user, a supersede or a shutdown). */
  job_cancelled: { job: FirmwareJob };
  /** One output chunk, terminator included (`\n`, `\r` or `\r\n`). */
  job_output: { job_id: string; line: string };
  /** Progress 0-100 of the job's current phase. */
  job_progress: { job_id: string; progress: number };
  /** A finished job left the history (pruned or cleared). */
  job_removed: { job_id: string };
  /** The compile lane changed: what a build server advertises to its peers. */
  queue_status_changed: QueueStatus;
  // ---- build server (receiver) ----
  /** The build-server switch changed; the listener is bound (port) or not (null). */
  remote_build_receiver_changed: { enabled: boolean; peer_link_port: number | null };
  /** The pairing window opened, was extended, or closed (expires_in_seconds null). */
  remote_build_pairing_window_changed: { open: boolean; expires_in_seconds: number | null };
  /** An offloader asks to pair; compare its fingerprint, then approve or remove. */
  remote_build_pair_request_received: { dashboard_id: string; pin_sha256: string; label: string; peer_ip: string };
  /** A peer was approved, or a pending/approved peer was removed. */
  remote_build_pair_status_changed: { dashboard_id: string; status: "approved" | "removed" };
  /** An approved offloader's session opened or closed. */
  remote_build_peer_session_changed: { dashboard_id: string; connected: boolean; reason: string };
  /** This builder's peer-link key was replaced; every peer must pair again. */
  remote_build_identity_rotated: { dashboard_id: string; pin_sha256: string };
  /** mDNS found (or updated) another builder. */
  remote_build_host_added: { host: DiscoveredHost };
  /** A discovered builder went away. */
  remote_build_host_removed: { name: string };

  // ---- offloader ----
  /** A session with a paired build server opened. */
  offloader_peer_link_opened: { pin_sha256: string; receiver_hostname: string; receiver_port: number; esphome_version: string };
  /** A session ended; `reason` is the terminate reason or a local one (transport_error, heartbeat_timeout, …). */
  offloader_peer_link_closed: { pin_sha256: string; receiver_hostname: string; receiver_port: number; reason: string; error_detail: string };
  /** A build server's compile lane changed. */
  offloader_queue_status_changed: { pin_sha256: string; idle: boolean; running: number; queue_depth: number };
  /** One output line of a job running on a build server. */
  offloader_job_output: { pin_sha256: string; job_id: string; stream: string; line: string };
  /** A job on a build server changed state. */
  offloader_job_state_changed: { pin_sha256: string; job_id: string; status: string; error_message: string };
  /** A pairing was added, approved, changed or its connection state moved. */
  offloader_pairing_changed: { pairing: PairingSummary };
  /** A pairing was removed (unpaired, or refused by the build server). */
  offloader_pairing_removed: { pin_sha256: string; reason: string };
  /** Something needs the user: the build server's key changed, or it revoked us. */
  offloader_alert: { alert: OffloaderAlert };
  /** The offloader's master switch changed. */
  offloader_settings_changed: { remote_builds_enabled: boolean };

  /** A device YAML appeared or changed. */
  device_updated: { device: Device };
  /** A device YAML disappeared. */
  device_removed: { configuration: string };
}

export type EventName = keyof EventMap;
export type Listener<K extends EventName> = (payload: EventMap[K]) => void;
export type Unsubscribe = () => void;

export const JOB_LIFECYCLE_EVENTS = [
  "job_queued",
  "job_started",
  "job_completed",
  "job_failed",
  "job_cancelled",
] as const satisfies readonly EventName[];

type AnyListener = <K extends EventName>(name: K, payload: EventMap[K]) => void;

export class EventBus {
  // Listener lists are replaced, never mutated, on (un)subscribe: an emit in
  // progress keeps iterating the list it started with, and emit needs no copy.
  readonly #listeners = new Map<EventName, readonly ((payload: never) => void)[]>();
  #any: readonly AnyListener[] = [];

  on<K extends EventName>(name: K, listener: Listener<K>): Unsubscribe {
    const entry = listener as (payload: never) => void;
    this.#listeners.set(name, [...(this.#listeners.get(name) ?? []), entry]);
    let subscribed = true;
    return () => {
      if (!subscribed) return;
      subscribed = false;
      const list = this.#listeners.get(name) ?? [];
      const i = list.indexOf(entry);
      if (i !== -1) this.#listeners.set(name, [...list.slice(0, i), ...list.slice(i + 1)]);
    };
  }

  /** Subscribe to every event; the listener gets the name and payload. */
  onAny(listener: AnyListener): Unsubscribe {
    this.#any = [...this.#any, listener];
    let subscribed = true;
    return () => {
      if (!subscribed) return;
      subscribed = false;
      this.#any = this.#any.filter((l) => l !== listener);
    };
  }

  emit<K extends EventName>(name: K, payload: EventMap[K]): void {
    const list = this.#listeners.get(name) as readonly Listener<K>[] | undefined;
    if (list !== undefined) {
      // One try around the loop (not one per call); after a throw the loop resumes past it.
      let i = 0;
      while (i < list.length) {
        try {
          for (; i < list.length; i++) (list[i] as Listener<K>)(payload);
        } catch (err) {
          log.error(`listener for ${name} threw: ${String(err)}`);
          i++;
        }
      }
    }
    const any = this.#any;
    for (let i = 0; i < any.length; i++) {
      try {
        (any[i] as AnyListener)(name, payload);
      } catch (err) {
        log.error(`listener for ${name} threw: ${String(err)}`);
      }
    }
  }

  listenerCount(name: EventName): number {
    return this.#listeners.get(name)?.length ?? 0;
  }
}
