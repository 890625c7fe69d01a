/**
 * A build server's ESPHome versions for its peers: one environment per
 * version (the managed environments, under `<data-dir>/.remote_builds/venvs/`,
 * upstream's place for them), at most K of them (the environments' own
 * limit) and within a disk budget, the least recently used removed first.
 * An environment a running job holds is never removed.
 */
import { errorMessage } from "../../errors.ts";
import type { EsphomeVersions } from "../../firmware/local-runner.ts";
import { getLogger } from "../../logger.ts";

const log = getLogger("build-server-versions");

/**
 * What this needs of the managed ESPHome environments (src/esphome/, the
 * `EsphomeEnvironments` interface): structurally the same methods.
 */
export interface VersionEnvironments {
  readonly limit: number;
  ensure(version: string, opts?: { onLine?: (line: string) => void }): Promise<{ version: string; esphome: string }>;
  /** Newest use first. */
  list(): Promise<readonly { version: string; bundled: boolean; in_use: boolean }[]>;
  remove(version: string): Promise<boolean>;
  diskUsage(): Promise<{ total_bytes: number; environments: readonly { version: string; bytes: number }[] }>;
  hold(version: string): () => void;
}

export interface BuildServerVersionsDeps {
  environments: VersionEnvironments;
  /** Bytes all environments may take together; past it the least recently used go. */
  diskBudgetBytes: number;
}

export class BuildServerVersions implements EsphomeVersions {
  readonly #deps: BuildServerVersionsDeps;

  constructor(deps: BuildServerVersionsDeps) {
    this.#deps = deps;
  }

  /** Whether other versions can be installed at all (a limit of 0 turns it off). */
  get enabled(): boolean {
    return this.#deps.environments.limit > 0;
  }

  async acquire(version: string, opts: { onLine: (line: string) => void }): Promise<{ esphome: string; release: () => void }> {
    const envs = this.#deps.environments;
    // Held before it exists, so the budget below (another job's install) never removes it under us.
    const release = envs.hold(version);
    try {
      const ready = await envs.ensure(version, { onLine: opts.onLine });
      await this.#keepWithinBudget(version, opts.onLine);
      return { esphome: ready.esphome, release };
    } catch (err) {
      release();
      throw err;
    }
  }

  /**
   * Removes the least recently used environments (never a held one, never
   * `keep`) while all of them take more than the budget.
   */
  async #keepWithinBudget(keep: string, onLine: (line: string) => void): Promise<void> {
    const envs = this.#deps.environments;
    const budget = this.#deps.diskBudgetBytes;
    let usage = await envs.diskUsage();
    if (usage.total_bytes <= budget) return;
    const candidates = (await envs.list()).filter((e) => !e.bundled && !e.in_use && e.version !== keep).reverse();
    for (const env of candidates) {
      if (usage.total_bytes <= budget) return;
      const bytes = usage.environments.find((e) => e.version === env.version)?.bytes ?? 0;
      try {
        if (await envs.remove(env.version)) {
          const line = `removed ESPHome ${env.version} (${mib(bytes)}): the build server's ESPHome environments took ${mib(usage.total_bytes)}, more than the ${mib(budget)} budget, and it was used least recently`;
          log.info(line);
          onLine(`*** ${line} ***\n`);
        }
      } catch (err) {
        log.warning(`could not remove ESPHome ${env.version}: ${errorMessage(err)}`);
      }
      usage = await envs.diskUsage();
    }
    if (usage.total_bytes > budget) log.warning(`the ESPHome environments take ${mib(usage.total_bytes)}, over the ${mib(budget)} budget, and the rest are in use`);
  }
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
}
