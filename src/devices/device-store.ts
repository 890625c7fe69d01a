/**
 * What the builder keeps about devices across restarts (`devices.json` in the
 * state folder): the addresses the owner set in the panel, and when each device
 * was last seen. Everything else about a device is learnt again after a start.
 */
import { z } from "zod";
import { JsonStore } from "../store.ts";
import type { ProblemSink } from "../problems.ts";

const fileSchema = z.object({
  version: z.literal(1).default(1),
  addresses: z.record(z.string().max(255), z.string().min(1).max(253)).default({}),
  last_seen: z.record(z.string().max(255), z.string().max(64)).default({}),
});

export type DevicesFile = z.infer<typeof fileSchema>;

export class DeviceStore {
  readonly #store: JsonStore<DevicesFile>;
  #data: DevicesFile = { version: 1, addresses: {}, last_seen: {} };

  constructor(opts: { file: string; problems?: ProblemSink; debounceMs?: number }) {
    this.#store = new JsonStore({
      file: opts.file,
      schema: fileSchema,
      title: "The device file",
      debounceMs: opts.debounceMs ?? 5_000,
      ...(opts.problems === undefined ? {} : { problems: opts.problems }),
    });
  }

  async load(): Promise<void> {
    const result = await this.#store.load();
    if (result.kind === "ok") this.#data = result.value;
  }

  address(configuration: string): string | undefined {
    return this.#data.addresses[configuration];
  }

  lastSeen(configuration: string): string | null {
    return this.#data.last_seen[configuration] ?? null;
  }

  /** Sets (or with null clears) the owner's address; written at once, so a failure is the caller's error. */
  async setAddress(configuration: string, address: string | null): Promise<void> {
    const addresses = Object.fromEntries(Object.entries(this.#data.addresses).filter(([key]) => key !== configuration));
    if (address !== null) addresses[configuration] = address;
    const next = { ...this.#data, addresses };
    await this.#store.saveNow(() => next);
    this.#data = next;
  }

  /** Last-seen times are written in the background (debounced). */
  setLastSeen(configuration: string, at: string): void {
    this.#data.last_seen[configuration] = at;
    this.#store.scheduleSave(() => this.#data);
  }

  async flush(): Promise<void> {
    await this.#store.flush();
  }
}
