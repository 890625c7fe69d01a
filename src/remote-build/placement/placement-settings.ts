/**
 * The `local_builds` setting, kept in `<state>/placement.json`: changed in the
 * panel, and by the flag, its variable or the add-on option when the
 * configured value changed since the last start (so a restart does not undo a
 * choice made in the panel).
 */
import { z } from "zod";
import { LOCAL_BUILDS, type LocalBuilds } from "../../domain/policy.ts";
import type { EventBus } from "../../events.ts";
import { getLogger } from "../../logger.ts";
import type { ProblemSink } from "../../problems.ts";
import { JsonStore } from "../../store.ts";

const log = getLogger("placement");

const fileSchema = z.object({
  local_builds: z.enum(LOCAL_BUILDS),
  /** The configured value (flag, variable, add-on option) last applied; null when none was given. */
  configured: z.enum(LOCAL_BUILDS).nullable().default(null),
});
type PlacementFile = z.infer<typeof fileSchema>;

export const DEFAULT_LOCAL_BUILDS: LocalBuilds = "always";

export interface PlacementSettingsDeps {
  file: string;
  bus: EventBus;
  /** The flag/variable/add-on option; undefined when not given. */
  configured: LocalBuilds | undefined;
  problems?: ProblemSink;
}

export class PlacementSettings {
  readonly #deps: PlacementSettingsDeps;
  readonly #store: JsonStore<PlacementFile>;
  #value: LocalBuilds;
  #configured: LocalBuilds | null = null;

  constructor(deps: PlacementSettingsDeps) {
    this.#deps = deps;
    this.#value = deps.configured ?? DEFAULT_LOCAL_BUILDS;
    this.#store = new JsonStore({
      file: deps.file,
      schema: fileSchema,
      debounceMs: 50,
      title: "The local builds setting",
      ...(deps.problems === undefined ? {} : { problems: deps.problems }),
    });
  }

  async start(): Promise<void> {
    const loaded = await this.#store.load();
    const configured = this.#deps.configured ?? null;
    if (loaded.kind === "ok") {
      this.#value = loaded.value.local_builds;
      this.#configured = loaded.value.configured;
    }
    if (configured !== null && configured !== this.#configured) {
      if (loaded.kind === "ok" && loaded.value.local_builds !== configured) log.info(`local_builds is now ${configured} (configured)`);
      this.#value = configured;
      this.#configured = configured;
      await this.#store.saveNow(() => this.#data());
    }
  }

  async stop(): Promise<void> {
    await this.#store.flush();
  }

  get localBuilds(): LocalBuilds {
    return this.#value;
  }

  set(value: LocalBuilds): void {
    if (value === this.#value) return;
    this.#value = value;
    this.#store.scheduleSave(() => this.#data());
    this.#deps.bus.emit("local_builds_changed", { local_builds: value });
  }

  #data(): PlacementFile {
    return { local_builds: this.#value, configured: this.#configured };
  }
}
