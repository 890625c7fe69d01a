/**
 * Real ESPHome versions for tests, installed once and shared: the managed
 * environments (src/esphome/environments.ts, real venv and real pip) under
 * `.venv/esphome-versions/` (`ESPHOME_TEST_VERSIONS` overrides it), kept
 * between runs. Every test that needs ESPHome X asks here, so a CI run
 * installs each version once however many tests use it.
 *
 * A builder under test gets one with `seedEnvironment`: its own environments
 * folder receives a link to the shared venv in the layout the managed
 * environments publish (`<version>` -> `.venvs/<name>`), so the builder finds
 * the version ready and uses it exactly as one it installed itself.
 */
import { mkdirSync, promises as fs, realpathSync } from "node:fs";
import path from "node:path";
import { Environments, type ReadyEnvironment } from "../../src/esphome/environments.ts";
import { subprocessEnv } from "../../src/esphome/cli.ts";
import { findPython } from "../../src/esphome/python-finder.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
/** Resolved: a venv's scripts name their Python by this path, so it must not go through a worktree's `.venv` link. */
export const SHARED_VERSIONS_ROOT = ((): string => {
  const root = process.env.ESPHOME_TEST_VERSIONS ?? path.join(ROOT, ".venv", "esphome-versions");
  mkdirSync(root, { recursive: true });
  return realpathSync(root);
})();

let shared: Environments | undefined;

/** ESPHome `version` from the shared test cache, installed (real pip) the first time any test asks. */
export async function sharedEsphomeVersion(version: string, onLine?: (line: string) => void): Promise<ReadyEnvironment> {
  // Many versions may be kept: tests ask for few, and each costs one install per machine.
  shared ??= new Environments({ root: SHARED_VERSIONS_ROOT, limit: 8, python: () => findPython(), env: () => subprocessEnv("own") });
  await shared.start();
  const ready = await shared.ensure(version, onLine === undefined ? {} : { onLine });
  await shared.flush();
  return ready;
}

/** Whether a Python that can make ESPHome environments is here (null), else why not. */
export async function pythonUnavailableReason(): Promise<string | null> {
  try {
    await findPython();
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/**
 * Makes `ready` (from `sharedEsphomeVersion`) an environment of the managed
 * environments at `root`, before the builder that owns `root` starts.
 */
export async function seedEnvironment(root: string, ready: ReadyEnvironment): Promise<void> {
  const venv = await fs.realpath(path.dirname(path.dirname(ready.esphome)));
  const name = `${ready.version}-shared`;
  await fs.mkdir(path.join(root, ".venvs"), { recursive: true });
  await fs.symlink(venv, path.join(root, ".venvs", name));
  await fs.symlink(path.join(".venvs", name), path.join(root, ready.version));
}
