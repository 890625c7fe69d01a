/**
 * Managed ESPHome environments: one Python virtual environment per ESPHome
 * version under `<data-dir>/esphome/`, made on demand, at most `limit` kept
 * (least recently used removed first). The interface other parts use (the
 * managed ESPHome of the panel, and build servers that serve an offloader's
 * version):
 *
 * ```ts
 * interface EsphomeEnvironments {
 *   readonly limit: number;                                  // K: environments kept (a bundled one not counted)
 *   start(): Promise<void>;                                  // clears half-built folders, loads last-used times
 *   ensure(version: string, opts?: EnsureOptions): Promise<ReadyEnvironment>; // {version, esphome: executable}
 *   list(): Promise<EnvironmentInfo[]>;                      // newest use first
 *   remove(version: string): Promise<boolean>;              // false when there was none
 *   diskUsage(): Promise<DiskUsage>;                         // bytes per environment and in all
 *   touch(version: string): void;                            // LRU: mark as used now
 *   hold(version: string): () => void;                       // in use by a job: never removed until released
 *   stop(): Promise<void>;                                   // stops a running pip (its half-built venv is removed)
 * }
 * ```
 *
 * Layout and crash safety: a venv is built in `.venvs/<version>-<nonce>/`
 * (venvs are not relocatable, so it never moves), its marker file
 * `esphome-builder.json` is written last, and only then is it published as
 * `<version>` by renaming a symlink into place (atomic). A folder no published
 * link points to is a build that did not finish (or a removal that did not):
 * `start()` deletes it, so a half-built venv is never used.
 */
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import { z } from "zod";
import { BuilderError, ErrorCode, errorMessage } from "../errors.ts";
import { getLogger } from "../logger.ts";
import type { SpawnFn } from "../firmware/process.ts";
import { JsonStore, atomicWrite } from "../store.ts";
import type { PythonInfo } from "./python-finder.ts";
import { provisionVenv, type ProvisionPhase } from "./provisioner.ts";
import { folderBytes } from "./folder-bytes.ts";
import { VERSION_PATTERN, validateVersion } from "./release-numbers.ts";

export { VERSION_PATTERN, compareVersionsDesc, isPrerelease, validateVersion } from "./release-numbers.ts";

const log = getLogger("esphome-envs");

export interface ReadyEnvironment {
  version: string;
  /** The `esphome` executable of the environment. */
  esphome: string;
}

export interface EnsureOptions {
  /** Each line pip and venv print while provisioning (with its terminator). */
  onLine?: (line: string) => void;
  /** Provisioning progress: a phase and a percentage (see provisioner.ts for how it is computed). */
  onProgress?: (progress: { percent: number; phase: ProvisionPhase }) => void;
}

export interface EnvironmentInfo {
  version: string;
  /** Where it lives: `<data-dir>/esphome/<version>`, or the image's own for a bundled one. */
  path: string;
  esphome: string;
  /** The image's bundled ESPHome (add-on): never removed, not counted against the limit. */
  bundled: boolean;
  /** Python version of the venv ("3.13.0"), null when unknown (bundled). */
  python_version: string | null;
  created_at: string | null;
  /** Last time a job (or a switch) used it; null when never. */
  last_used: string | null;
  /** Held by a running job. */
  in_use: boolean;
}

export interface DiskUsage {
  total_bytes: number;
  environments: { version: string; bytes: number }[];
}

export interface EsphomeEnvironments {
  readonly limit: number;
  start(): Promise<void>;
  ensure(version: string, opts?: EnsureOptions): Promise<ReadyEnvironment>;
  list(): Promise<EnvironmentInfo[]>;
  remove(version: string): Promise<boolean>;
  diskUsage(): Promise<DiskUsage>;
  touch(version: string): void;
  hold(version: string): () => void;
  stop(): Promise<void>;
}

const MARKER = "esphome-builder.json";
const markerSchema = z.object({ version: z.string(), python: z.string(), python_version: z.string(), created_at: z.string() });
type Marker = z.infer<typeof markerSchema>;
const usageSchema = z.object({ last_used: z.record(z.string(), z.string()) });

export interface EnvironmentsDeps {
  /** `<data-dir>/esphome`. */
  root: string;
  /** Environments kept (default 2); a bundled one is not counted. */
  limit?: number;
  /** Finds the Python to make venvs with (asked only when one is needed); throws `no_python`. */
  python: () => Promise<PythonInfo>;
  /** pip constraints for a version (the project's lock for the pinned one), or null. */
  constraintsFor?: (version: string) => string | null;
  /** The add-on image's ESPHome: served as is, never removed. */
  bundled?: ReadyEnvironment;
  /** Environment for venv and pip (pip's own index settings, PIP_INDEX_URL, pass through). */
  env?: () => Record<string, string>;
  spawn?: SpawnFn;
  now?: () => Date;
}

interface Inflight {
  promise: Promise<ReadyEnvironment>;
  observers: Set<EnsureOptions>;
}

export class Environments implements EsphomeEnvironments {
  readonly limit: number;
  readonly #deps: EnvironmentsDeps;
  readonly #venvs: string;
  readonly #usage: JsonStore<z.infer<typeof usageSchema>>;
  #lastUsed = new Map<string, string>();
  readonly #holds = new Map<string, number>();
  readonly #inflight = new Map<string, Inflight>();
  /** One pip at a time: a second version waits for the first. */
  #chain: Promise<unknown> = Promise.resolve();
  readonly #sizes = new Map<string, number>();
  /** Aborted by stop(): a pip that runs is stopped and its half-built venv removed. */
  readonly #abort = new AbortController();

  constructor(deps: EnvironmentsDeps) {
    this.#deps = deps;
    this.limit = deps.limit ?? 2;
    this.#venvs = path.join(deps.root, ".venvs");
    this.#usage = new JsonStore({ file: path.join(deps.root, "environments.json"), schema: usageSchema, title: "The ESPHome environments' use times", debounceMs: 100 });
  }

  get root(): string {
    return this.#deps.root;
  }

  async start(): Promise<void> {
    await fs.mkdir(this.#venvs, { recursive: true });
    const loaded = await this.#usage.load();
    if (loaded.kind === "ok") this.#lastUsed = new Map(Object.entries(loaded.value.last_used));
    // Published links whose venv is not whole are unpublished; venvs no link points to are removed.
    const live = new Set<string>();
    for (const name of await fs.readdir(this.#deps.root)) {
      const full = path.join(this.#deps.root, name);
      if (name.startsWith(".link-")) {
        await fs.rm(full, { force: true });
        continue;
      }
      if (!VERSION_PATTERN.test(name)) continue;
      const target = await this.#target(name);
      if (target !== null && (await this.#marker(target)) !== null) live.add(path.basename(target));
      else {
        log.warning(`ESPHome environment ${name} is not complete (a provisioning or removal was interrupted): removing it`);
        await fs.rm(full, { recursive: true, force: true });
      }
    }
    for (const name of await fs.readdir(this.#venvs)) {
      if (live.has(name)) continue;
      log.info(`removing an unfinished ESPHome environment: ${path.join(this.#venvs, name)}`);
      await fs.rm(path.join(this.#venvs, name), { recursive: true, force: true });
    }
    // A lower limit than last time, or a removal a crash interrupted: back to the limit.
    await this.#evict(null);
  }

  /** The real venv folder a published version points to, null when there is none. */
  async #target(version: string): Promise<string | null> {
    const link = path.join(this.#deps.root, version);
    try {
      const stat = await fs.lstat(link);
      if (!stat.isSymbolicLink()) return null;
      const target = path.resolve(this.#deps.root, await fs.readlink(link));
      if (path.dirname(target) !== this.#venvs) return null;
      return target;
    } catch {
      return null;
    }
  }

  async #marker(venv: string): Promise<Marker | null> {
    try {
      const parsed = markerSchema.safeParse(JSON.parse(await fs.readFile(path.join(venv, MARKER), "utf8")));
      return parsed.success ? parsed.data : null;
    } catch {
      return null;
    }
  }

  async #ready(version: string): Promise<ReadyEnvironment | null> {
    const target = await this.#target(version);
    if (target === null) return null;
    const marker = await this.#marker(target);
    if (marker?.version !== version) return null;
    return { version, esphome: path.join(target, "bin", "esphome") };
  }

  ensure(version: string, opts: EnsureOptions = {}): Promise<ReadyEnvironment> {
    validateVersion(version);
    const bundled = this.#deps.bundled;
    if (bundled?.version === version) {
      this.touch(version);
      return Promise.resolve(bundled);
    }
    const running = this.#inflight.get(version);
    if (running !== undefined) {
      running.observers.add(opts);
      return running.promise;
    }
    const observers = new Set<EnsureOptions>([opts]);
    const promise = (async () => {
      const ready = await this.#ready(version);
      if (ready !== null) return ready;
      const next = this.#chain.then(() => this.#provision(version, observers));
      this.#chain = next.catch(() => undefined);
      return next;
    })().then(
      (ready) => {
        this.#inflight.delete(version);
        this.touch(version);
        return ready;
      },
      (err: unknown) => {
        this.#inflight.delete(version);
        throw err;
      },
    );
    this.#inflight.set(version, { promise, observers });
    return promise;
  }

  async #provision(version: string, observers: Set<EnsureOptions>): Promise<ReadyEnvironment> {
    const again = await this.#ready(version);
    if (again !== null) return again;
    const emitLine = (line: string): void => { for (const o of observers) o.onLine?.(line); };
    const emitProgress = (p: { percent: number; phase: ProvisionPhase }): void => { for (const o of observers) o.onProgress?.(p); };
    emitProgress({ percent: 0, phase: "python" });
    const python = await this.#deps.python();
    emitLine(`Using Python ${python.version} (${python.path})\n`);
    await fs.mkdir(this.#venvs, { recursive: true });
    const venv = path.join(this.#venvs, `${version}-${randomBytes(4).toString("hex")}`);
    try {
      await provisionVenv({
        python: python.path,
        venv,
        version,
        constraints: this.#deps.constraintsFor?.(version) ?? null,
        env: this.#deps.env?.() ?? {},
        signal: this.#abort.signal,
        onLine: emitLine,
        onProgress: emitProgress,
        ...(this.#deps.spawn === undefined ? {} : { spawn: this.#deps.spawn }),
      });
      const marker: Marker = { version, python: python.path, python_version: python.version, created_at: (this.#deps.now?.() ?? new Date()).toISOString() };
      await atomicWrite(path.join(venv, MARKER), JSON.stringify(marker, null, 1) + "\n");
      const tmpLink = path.join(this.#deps.root, `.link-${version}-${randomBytes(4).toString("hex")}`);
      await fs.symlink(path.relative(this.#deps.root, venv), tmpLink);
      const old = await this.#target(version);
      await fs.rename(tmpLink, path.join(this.#deps.root, version));
      if (old !== null && old !== venv) await fs.rm(old, { recursive: true, force: true });
    } catch (err) {
      await fs.rm(venv, { recursive: true, force: true }).catch(() => undefined);
      throw err instanceof BuilderError ? err : new BuilderError(ErrorCode.ProvisionFailed, `Installing ESPHome ${version} failed: ${errorMessage(err)}`, { cause: err });
    }
    this.#sizes.delete(version);
    emitProgress({ percent: 100, phase: "done" });
    this.touch(version);
    await this.#evict(version);
    return { version, esphome: path.join(venv, "bin", "esphome") };
  }

  /** Removes the least recently used environments past the limit (never a held one or `keep`). */
  async #evict(keep: string | null): Promise<void> {
    const envs = (await this.list()).filter((e) => !e.bundled);
    if (envs.length <= this.limit) return;
    // list() is newest use first: the tail goes.
    const candidates = envs.filter((e) => e.version !== keep && !e.in_use).reverse();
    let excess = envs.length - this.limit;
    for (const env of candidates) {
      if (excess <= 0) break;
      log.info(`removing ESPHome ${env.version}: more than ${this.limit} environments, it was used least recently`);
      if (await this.remove(env.version)) excess -= 1;
    }
  }

  async list(): Promise<EnvironmentInfo[]> {
    const out: EnvironmentInfo[] = [];
    let names: string[] = [];
    try {
      names = await fs.readdir(this.#deps.root);
    } catch {
      // no environments yet
    }
    for (const name of names) {
      if (!VERSION_PATTERN.test(name)) continue;
      const target = await this.#target(name);
      if (target === null) continue;
      const marker = await this.#marker(target);
      if (marker?.version !== name) continue;
      out.push({
        version: name,
        path: path.join(this.#deps.root, name),
        esphome: path.join(target, "bin", "esphome"),
        bundled: false,
        python_version: marker.python_version,
        created_at: marker.created_at,
        last_used: this.#lastUsed.get(name) ?? null,
        in_use: (this.#holds.get(name) ?? 0) > 0,
      });
    }
    const bundled = this.#deps.bundled;
    if (bundled !== undefined) {
      out.push({
        version: bundled.version,
        path: path.dirname(path.dirname(bundled.esphome)),
        esphome: bundled.esphome,
        bundled: true,
        python_version: null,
        created_at: null,
        last_used: this.#lastUsed.get(bundled.version) ?? null,
        in_use: (this.#holds.get(bundled.version) ?? 0) > 0,
      });
    }
    // Newest use first; never used ones by creation time.
    const key = (e: EnvironmentInfo): string => e.last_used ?? e.created_at ?? "";
    return out.sort((a, b) => key(b).localeCompare(key(a)));
  }

  async remove(version: string): Promise<boolean> {
    validateVersion(version);
    if (this.#deps.bundled?.version === version) {
      throw new BuilderError(ErrorCode.InvalidArgs, `ESPHome ${version} is the one the add-on image brings; it cannot be removed`);
    }
    if ((this.#holds.get(version) ?? 0) > 0) {
      throw new BuilderError(ErrorCode.Busy, `ESPHome ${version} is in use by a running job; remove it when the job has finished`);
    }
    const target = await this.#target(version);
    const link = path.join(this.#deps.root, version);
    try {
      await fs.lstat(link);
    } catch {
      return false;
    }
    // Unpublish first (atomic), then delete: an interrupted removal leaves an unreferenced folder start() cleans.
    await fs.rm(link, { recursive: true, force: true });
    if (target !== null) await fs.rm(target, { recursive: true, force: true });
    this.#sizes.delete(version);
    this.#lastUsed.delete(version);
    this.#saveUsage();
    return true;
  }

  async diskUsage(): Promise<DiskUsage> {
    const environments: { version: string; bytes: number }[] = [];
    for (const env of await this.list()) {
      if (env.bundled) continue;
      let bytes = this.#sizes.get(env.version);
      if (bytes === undefined) {
        bytes = await folderBytes(path.dirname(path.dirname(env.esphome)));
        this.#sizes.set(env.version, bytes);
      }
      environments.push({ version: env.version, bytes });
    }
    return { total_bytes: environments.reduce((n, e) => n + e.bytes, 0), environments };
  }

  /** Stops a provisioning that runs (its folder is removed) and waits for it. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await Promise.allSettled([...this.#inflight.values()].map((i) => i.promise));
    await this.flush();
  }

  touch(version: string): void {
    this.#lastUsed.set(version, (this.#deps.now?.() ?? new Date()).toISOString());
    this.#saveUsage();
  }

  hold(version: string): () => void {
    this.#holds.set(version, (this.#holds.get(version) ?? 0) + 1);
    this.touch(version);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.#holds.get(version) ?? 1) - 1;
      if (n <= 0) this.#holds.delete(version);
      else this.#holds.set(version, n);
    };
  }

  #saveUsage(): void {
    this.#usage.scheduleSave(() => ({ last_used: Object.fromEntries(this.#lastUsed) }));
  }

  async flush(): Promise<void> {
    await this.#usage.flush();
  }
}
