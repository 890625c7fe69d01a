/**
 * The ESPHome the builder's jobs run: its own managed environments (the
 * default), or the executable `--esphome PATH` names (nothing managed then).
 *
 * Managed: at start the selected version (the pinned one, the add-on image's
 * bundled one, or what a user chose last) is made ready in the background
 * while the API and panel are already up; jobs wait for it (`ready()`) and run
 * after. Installing another version is a background task too: running jobs
 * keep the environment they started with (held, so never removed under them)
 * and the next job takes the new one. State changes go out as
 * `esphome_state_changed`, provisioning output as `esphome_provision_output`.
 */
import { z } from "zod";
import type { EsphomeEnvironmentView, EsphomeStatus, EsphomeTaskState } from "../domain/esphome.ts";
import type { EsphomeVersionsView } from "../api/wire.ts";
import { BuilderError, ErrorCode, errorMessage, isBuilderError } from "../errors.ts";
import type { EventBus } from "../events.ts";
import { getLogger } from "../logger.ts";
import { JsonStore } from "../store.ts";
import type { EsphomeLease, EsphomeSource } from "./cli.ts";
import { validateVersion, type Environments, type EsphomeEnvironments, type ReadyEnvironment } from "./environments.ts";
import { advance, beginProvisioning, idle, markFailed, markReady } from "./managed-state.ts";
import type { IndexAnswer } from "./package-index.ts";

const log = getLogger("esphome");

/** Provisioning output kept for the panel's log view. */
export const PROVISION_LOG_LINES = 2000;
/** How long the package index's answer is reused. */
export const VERSIONS_TTL_MS = 10 * 60_000;
/** How often the newest release is looked up for the "newer version" entity. */
export const LATEST_CHECK_MS = 6 * 3600_000;

/** The user's choice; null (or no file) follows the default: the pin, or the add-on image's ESPHome. */
const selectionSchema = z.object({ selected: z.string().nullable() });

export interface ManagedEsphomeDeps {
  bus: EventBus;
  /** `--esphome PATH`: run this, manage nothing. */
  external?: string;
  /** The environments (managed mode). */
  environments?: Environments;
  /** Where the chosen version is remembered (managed mode). */
  selectionFile?: string;
  /** The version the project pins (addon/requirements.txt). */
  pinned: string | null;
  /** The first start's version: the add-on image's bundled one, else the pinned one. */
  defaultVersion: string | null;
  /** The package index's releases. */
  versions: () => Promise<IndexAnswer>;
  /** The external executable's version (`esphome version`). */
  probe: (esphome: string) => Promise<string | null>;
  now?: () => number;
}

interface Waiter {
  resolve: () => void;
}

export class ManagedEsphome implements EsphomeSource {
  readonly #deps: ManagedEsphomeDeps;
  readonly #selection: JsonStore<z.infer<typeof selectionSchema>> | undefined;
  #state: EsphomeTaskState = idle();
  #current: ReadyEnvironment | null = null;
  #selected: string | null;
  #views: EsphomeEnvironmentView[] = [];
  #diskBytes = 0;
  #latest: string | null = null;
  #versionsCache: { at: number; answer: IndexAnswer } | null = null;
  readonly #log: string[] = [];
  #waiters: Waiter[] = [];
  #seq = 0;
  #switchedSeq = 0;
  #latestTimer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(deps: ManagedEsphomeDeps) {
    this.#deps = deps;
    this.#selected = deps.external === undefined ? deps.defaultVersion : null;
    this.#selection = deps.selectionFile === undefined ? undefined : new JsonStore({ file: deps.selectionFile, schema: selectionSchema, title: "The chosen ESPHome version", debounceMs: 0 });
  }

  /**
   * The environments (managed mode; null with `--esphome`): a build server that provisions the
   * version an offloader asks for uses these, so there is one pip at a time and one limit.
   */
  get environments(): EsphomeEnvironments | null {
    return this.#deps.environments ?? null;
  }

  get managed(): boolean {
    return this.#deps.external === undefined;
  }

  /** Starts the first provisioning in the background; resolves before it ends. */
  async start(): Promise<void> {
    const external = this.#deps.external;
    if (external !== undefined) {
      void this.#deps.probe(external).then((version) => {
        if (version === null) {
          log.warning(`ESPHome CLI '${external}' was not found or did not answer; jobs will fail until it is installed or --esphome names another`);
          this.#state = markFailed(null, ErrorCode.Unavailable, `ESPHome CLI '${external}' was not found or did not answer`);
        } else {
          log.info(`ESPHome ${version} (${external}, not managed: --esphome)`);
          this.#current = { version, esphome: external };
          this.#state = markReady(version);
        }
        this.#changed();
      });
      return;
    }
    const envs = this.#envs();
    await envs.start();
    const loaded = await this.#selection?.load();
    const chosen = loaded?.kind === "ok" ? loaded.value.selected : null;
    if (chosen !== null && validVersion(chosen)) this.#selected = chosen;
    await this.#refresh();
    const selected = this.#selected;
    if (selected === null) {
      this.#state = markFailed(null, ErrorCode.ProvisionFailed, "No ESPHome version is pinned (addon/requirements.txt) or chosen: choose one under ESPHome");
      this.#wake();
    } else {
      this.#startProvisioning(selected, false);
    }
    this.#latestTimer = setInterval(() => { void this.#checkLatest(); }, LATEST_CHECK_MS);
    this.#latestTimer.unref();
    void this.#checkLatest();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#latestTimer !== undefined) clearInterval(this.#latestTimer);
    this.#wake();
    if (this.managed) {
      await this.#envs().stop();
      await this.#envs().flush();
      await this.#selection?.flush();
    }
  }

  #envs(): Environments {
    const envs = this.#deps.environments;
    if (envs === undefined) throw new Error("managed ESPHome without environments");
    return envs;
  }

  /** Whether a job can run now: there is an ESPHome, or there will be none and the job should fail saying why. */
  ready(): boolean {
    if (this.#current !== null) return true;
    return this.#state.status === "failed" || this.#stopped;
  }

  async acquire(): Promise<EsphomeLease> {
    const external = this.#deps.external;
    if (external !== undefined) return { command: external, release: () => undefined };
    while (this.#current === null && this.#state.status !== "failed" && !this.#stopped) {
      await new Promise<void>((resolve) => { this.#waiters.push({ resolve }); });
    }
    const current = this.#current;
    if (current === null) {
      const why = this.#state.status === "failed" ? this.#state.message : "the builder is stopping";
      throw new BuilderError(ErrorCode.Unavailable, `No ESPHome to run: ${why}`);
    }
    const release = this.#envs().hold(current.version);
    this.#refreshSoon();
    return {
      command: current.esphome,
      release: () => {
        release();
        this.#refreshSoon();
      },
    };
  }

  /** The version the next job runs, null while none is ready. */
  currentVersion(): string | null {
    return this.#current?.version ?? null;
  }

  /** The newest release the package index offers (null until known). */
  latestVersion(): string | null {
    return this.#latest;
  }

  status(): EsphomeStatus {
    return {
      mode: this.managed ? "managed" : "external",
      current_version: this.#current?.version ?? null,
      selected_version: this.#selected,
      pinned_version: this.#deps.pinned,
      latest_version: this.#latest,
      state: this.#state,
      environments: this.#views,
      disk_bytes: this.#diskBytes,
      limit: this.#deps.environments?.limit ?? 0,
    };
  }

  /** Provisioning output so far (the last 2000 lines). */
  provisionLog(): string[] {
    return [...this.#log];
  }

  /** Installs `version` (if needed) in the background and makes it the one the next job uses. */
  install(version: string): EsphomeStatus {
    if (!this.managed) throw new BuilderError(ErrorCode.Unavailable, "ESPHome is not managed by this builder (--esphome PATH names it): install another version there, or start without --esphome");
    validateVersion(version);
    if (this.#state.status === "provisioning" && this.#state.version === version) return this.status();
    this.#startProvisioning(version, true);
    return this.status();
  }

  async remove(version: string): Promise<EsphomeStatus> {
    if (!this.managed) throw new BuilderError(ErrorCode.Unavailable, "ESPHome is not managed by this builder (--esphome PATH names it)");
    validateVersion(version);
    if (this.#current?.version === version) {
      throw new BuilderError(ErrorCode.Busy, `ESPHome ${version} is the one jobs use now: switch to another version before removing it`);
    }
    if (!(await this.#envs().remove(version))) throw new BuilderError(ErrorCode.NotFound, `ESPHome ${version} is not installed`);
    await this.#refresh();
    this.#changed();
    return this.status();
  }

  /** What the package index offers, newest first; pre-releases only with `prereleases`. */
  async versions(prereleases: boolean): Promise<EsphomeVersionsView> {
    const answer = await this.#indexAnswer();
    const installed = new Set(this.#views.map((v) => v.version));
    const versions = answer.versions
      .filter((v) => prereleases || !v.prerelease)
      .map((v) => ({ ...v, installed: installed.has(v.version), current: v.version === this.#current?.version }));
    return { index: answer.index, latest: versions[0]?.version ?? null, versions };
  }

  async #indexAnswer(): Promise<IndexAnswer> {
    const now = (this.#deps.now ?? Date.now)();
    const cached = this.#versionsCache;
    if (cached !== null && now - cached.at < VERSIONS_TTL_MS) return cached.answer;
    const answer = await this.#deps.versions();
    this.#versionsCache = { at: now, answer };
    const latest = answer.versions.find((v) => !v.prerelease)?.version ?? null;
    if (latest !== this.#latest) {
      this.#latest = latest;
      this.#changed();
    }
    return answer;
  }

  async #checkLatest(): Promise<void> {
    try {
      await this.#indexAnswer();
    } catch (err) {
      log.info(`could not learn the newest ESPHome release: ${errorMessage(err)}`);
    }
  }

  /** `chosen`: a user's install/switch, remembered (the default itself is remembered as "follow the default"). */
  #startProvisioning(version: string, chosen: boolean): void {
    const seq = ++this.#seq;
    this.#state = beginProvisioning(version);
    this.#log.length = 0;
    this.#changed();
    log.info(`ESPHome ${version}: making its environment ready`);
    this.#envs()
      .ensure(version, {
        onLine: (line) => {
          this.#log.push(line);
          if (this.#log.length > PROVISION_LOG_LINES) this.#log.shift();
          this.#deps.bus.emit("esphome_provision_output", { version, line });
        },
        onProgress: ({ percent, phase }) => {
          const next = advance(this.#state, version, percent, phase);
          if (next !== this.#state) {
            this.#state = next;
            this.#changed();
          }
        },
      })
      .then(
        async (ready) => {
          if (seq > this.#switchedSeq) {
            this.#switchedSeq = seq;
            this.#current = ready;
            this.#selected = version;
            if (chosen) {
              const remembered = version === this.#deps.defaultVersion ? null : version;
              this.#selection?.scheduleSave(() => ({ selected: remembered }));
            }
            log.info(`ESPHome ${version} is ready (${ready.esphome}); the next job uses it`);
          }
          if (this.#state.status === "provisioning" && this.#state.version === version) this.#state = markReady(version);
          await this.#refresh();
          this.#changed();
          this.#wake();
        },
        async (err: unknown) => {
          const code = isBuilderError(err) ? err.code : ErrorCode.ProvisionFailed;
          const message = errorMessage(err);
          log.error(`ESPHome ${version} could not be installed: ${message}`);
          if (this.#state.status === "provisioning" && this.#state.version === version) this.#state = markFailed(version, code, message);
          await this.#refresh().catch(() => undefined);
          this.#changed();
          this.#wake();
        },
      );
  }

  #refreshTimer: NodeJS.Timeout | undefined;

  /** In-use marks changed: the views follow shortly (coalesced). */
  #refreshSoon(): void {
    this.#refreshTimer ??= setTimeout(() => {
      this.#refreshTimer = undefined;
      void this.#refresh().then(() => { this.#changed(); }, () => undefined);
    }, 50);
    this.#refreshTimer.unref();
  }

  async #refresh(): Promise<void> {
    if (!this.managed) return;
    const envs = this.#envs();
    const [list, usage] = await Promise.all([envs.list(), envs.diskUsage()]);
    const bytes = new Map(usage.environments.map((e) => [e.version, e.bytes]));
    this.#views = list.map((e) => ({
      version: e.version,
      path: e.path,
      bundled: e.bundled,
      python_version: e.python_version,
      created_at: e.created_at,
      last_used: e.last_used,
      in_use: e.in_use,
      current: e.version === this.#current?.version,
      bytes: bytes.get(e.version) ?? null,
    }));
    this.#diskBytes = usage.total_bytes;
  }

  #changed(): void {
    this.#deps.bus.emit("esphome_state_changed", { status: this.status() });
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.resolve();
  }
}

function validVersion(version: string): boolean {
  try {
    validateVersion(version);
    return true;
  } catch {
    return false;
  }
}
