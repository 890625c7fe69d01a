/**
 * The builder's synchronous bus over its one typed event map (`EventMap`,
 * defined in src/domain/events.ts so the panel shares it).
 *
 * Listeners run inline in `emit`; one listener throwing never stops the
 * others (the error is logged). A listener that needs async work starts it
 * itself and must not block. `on` returns its own unsubscribe function.
 */
import type { EventMap, EventName } from "./domain/events.ts";
import { getLogger } from "./logger.ts";

export type { EventMap, EventName } from "./domain/events.ts";
export { JOB_LIFECYCLE_EVENTS } from "./domain/events.ts";

const log = getLogger("events");

export type Listener<K extends EventName> = (payload: EventMap[K]) => void;
export type Unsubscribe = () => void;


type AnyListener = <K extends EventName>(name: K, payload: EventMap[K]) => void;

/**
 * One event's listeners: O(1) to add and to remove (a Set of entries, one per
 * `on` call, so the same function subscribed twice is two entries). Emit
 * iterates a frozen snapshot, rebuilt on the first emit after a change: an
 * emit in progress keeps the listeners it started with, whatever they add or
 * remove meanwhile.
 */
class Listeners<F> {
  readonly #entries = new Set<{ readonly fn: F }>();
  #snapshot: readonly F[] | null = [];

  add(fn: F): Unsubscribe {
    const entry = { fn };
    this.#entries.add(entry);
    this.#snapshot = null;
    return () => {
      if (this.#entries.delete(entry)) this.#snapshot = null;
    };
  }

  get size(): number {
    return this.#entries.size;
  }

  snapshot(): readonly F[] {
    return (this.#snapshot ??= Array.from(this.#entries, (e) => e.fn));
  }
}

export class EventBus {
  readonly #listeners = new Map<EventName, Listeners<(payload: never) => void>>();
  readonly #any = new Listeners<AnyListener>();

  on<K extends EventName>(name: K, listener: Listener<K>): Unsubscribe {
    let set = this.#listeners.get(name);
    if (set === undefined) {
      set = new Listeners();
      this.#listeners.set(name, set);
    }
    return set.add(listener);
  }

  /** Subscribe to every event; the listener gets the name and payload. */
  onAny(listener: AnyListener): Unsubscribe {
    return this.#any.add(listener);
  }

  emit<K extends EventName>(name: K, payload: EventMap[K]): void {
    const list = this.#listeners.get(name)?.snapshot() as readonly Listener<K>[] | undefined;
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
    const any = this.#any.snapshot();
    for (let i = 0; i < any.length; i++) {
      try {
        (any[i] as AnyListener)(name, payload);
      } catch (err) {
        log.error(`listener for ${name} threw: ${String(err)}`);
      }
    }
  }

  listenerCount(name: EventName): number {
    return this.#listeners.get(name)?.size ?? 0;
  }
}
