/**
 * Warm-cache affinity: which build server compiled each device last. That
 * build server keeps the device's build tree (`.remote_builds/<our pin>/<device>/`,
 * for a day), so the next compile there is incremental; the scheduler sends
 * the device back to it when it is eligible and idle.
 *
 * A device this machine compiled last is recorded too, and goes to an idle build server all the same.
 *
 * Plain data in `build-affinity.json`: `{configuration: {pin_sha256, at}}` (`"local"` for this machine),
 * bounded, rows that do not parse dropped one by one.
 */
import { z } from "zod";
import type { EventBus, Unsubscribe } from "../../events.ts";
import type { FirmwareJob } from "../../firmware/job.ts";
import type { ProblemSink } from "../../problems.ts";
import { JsonStore } from "../../store.ts";
import { pinSchema } from "../transport/fingerprint.ts";
import { THIS_MACHINE } from "./scheduler.ts";

/** Devices remembered at most (the oldest are forgotten first). */
export const AFFINITY_MAX_ENTRIES = 500;

const entrySchema = z.object({ pin_sha256: z.union([pinSchema, z.literal(THIS_MACHINE)]), at: z.number().int().min(0) });
type Entry = z.infer<typeof entrySchema>;
const fileSchema = z.object({ devices: z.record(z.string().max(255), z.unknown()).default({}) });
type AffinityFile = z.infer<typeof fileSchema>;

export interface BuildAffinityDeps {
  bus: EventBus;
  file: string;
  problems?: ProblemSink;
  now?: () => number;
}

export class BuildAffinity {
  readonly #deps: BuildAffinityDeps;
  readonly #store: JsonStore<AffinityFile>;
  readonly #last = new Map<string, Entry>();
  readonly #offs: Unsubscribe[] = [];

  constructor(deps: BuildAffinityDeps) {
    this.#deps = deps;
    this.#store = new JsonStore({
      file: deps.file,
      schema: fileSchema,
      debounceMs: 200,
      title: "The build-server affinity file",
      ...(deps.problems === undefined ? {} : { problems: deps.problems }),
    });
  }

  async start(): Promise<void> {
    const loaded = await this.#store.load();
    if (loaded.kind === "ok") {
      const rows = Object.entries(loaded.value.devices)
        .map(([configuration, raw]) => [configuration, entrySchema.safeParse(raw)] as const)
        .flatMap(([configuration, parsed]) => (parsed.success ? [[configuration, parsed.data] as const] : []))
        .sort((a, b) => a[1].at - b[1].at);
      for (const [configuration, entry] of rows) this.#last.set(configuration, entry);
    }
    const seen = (job: FirmwareJob): void => { this.#seen(job); };
    this.#offs.push(
      this.#deps.bus.on("job_completed", ({ job }) => { seen(job); }),
      this.#deps.bus.on("job_failed", ({ job }) => { seen(job); }),
      this.#deps.bus.on("offloader_pairing_removed", ({ pin_sha256 }) => { this.forget(pin_sha256); }),
    );
  }

  async stop(): Promise<void> {
    for (const off of this.#offs.splice(0)) off();
    await this.#store.flush();
  }

  /** Where this device was compiled last: a build server's pin or `THIS_MACHINE`; undefined when not known. */
  lastBuiltOn(configuration: string): string | undefined {
    return this.#last.get(configuration)?.pin_sha256;
  }

  /** A pairing went away: nothing goes back to it. */
  forget(pinSha256: string): void {
    let changed = false;
    for (const [configuration, entry] of this.#last) {
      if (entry.pin_sha256 !== pinSha256) continue;
      this.#last.delete(configuration);
      changed = true;
    }
    if (changed) this.#save();
  }

  /** A job ended: where its compile ran, when it completed or failed only in its upload (a build server's pin, or this machine). */
  #seen(job: FirmwareJob): void {
    if (job.remote_peer !== "" || (job.job_type !== "compile" && job.job_type !== "install")) return;
    const compiled = job.status === "completed" || (job.status === "failed" && job.phase === "upload");
    if (!compiled) return;
    const where = job.source === "remote" ? job.source_pin_sha256 : THIS_MACHINE;
    if (where === "") return;
    this.#last.delete(job.configuration);
    this.#last.set(job.configuration, { pin_sha256: where, at: (this.#deps.now ?? Date.now)() });
    while (this.#last.size > AFFINITY_MAX_ENTRIES) {
      const oldest = this.#last.keys().next().value;
      if (oldest === undefined) break;
      this.#last.delete(oldest);
    }
    this.#save();
  }

  #save(): void {
    this.#store.scheduleSave(() => ({ devices: Object.fromEntries(this.#last) }));
  }
}
