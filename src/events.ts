/**
 * The builder's synchronous bus over its one typed event map (`EventMap`,
 * defined in src/api/wire.ts so the panel shares it).
 *
 * Listeners run inline in `emit`; one listener throwing never stops the
 * others (the error is logged). A listener that needs async work starts it
 * itself and must not block. `on` returns its own unsubscribe function.
 */
import type { EventMap, EventName } from "./api/wire.ts";
import { getLogger } from "./logger.ts";

export type { EventMap, EventName } from "./api/wire.ts";
export { JOB_LIFECYCLE_EVENTS } from "./api/wire.ts";

const log = getLogger("events");

export type Listener<K extends EventName> = (payload: EventMap[K]) => void;
export type Unsubscribe = () => void;


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
