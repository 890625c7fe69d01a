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
      for (let i = 0; i < list.length; i++) {
        try {
          (list[i] as Listener<K>)(payload);
        } catch (err) {
          log.error(`listener for ${name} threw: ${String(err)}`);
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
