/**
 * `clean_all`: wipes a build environment in-process (no ESPHome run). Not
 * `esphome clean-all`: that empties every folder in ESPHome's data dir but
 * `storage`, and this builder keeps its own state there (its key, pairings,
 * job logs), and it also wipes the machine-wide toolchains other builds share.
 *
 * - This builder's: ESPHome's build folders, idedata caches and converted
 *   PlatformIO components in the data dir; StorageJSON stays (the panel and
 *   the legacy API read it), and so do the build servers' peers' folders.
 * - A build server's, for the peer that asked (`reset_build_env`): that
 *   peer's folder under `.remote_builds/<pin>/` (its bundles and build
 *   caches), nobody else's.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { errorMessage } from "../errors.ts";
import type { Paths } from "../paths.ts";
import { checkCleanAllScope, type StoredJob } from "./job.ts";
import type { PhaseContext, PhaseResult } from "./runner.ts";

/** ESPHome's own folders in its data dir that a build recreates. */
export const BUILD_ENVIRONMENT_FOLDERS = ["build", "idedata", "pio_components"] as const;

/** The folders a `clean_all` job removes. */
export function buildEnvironmentDirs(paths: Paths, job: Pick<StoredJob, "configuration" | "remote_peer">): string[] {
  checkCleanAllScope(job);
  if (job.remote_peer === "") return BUILD_ENVIRONMENT_FOLDERS.map((name) => path.join(paths.dataDir, name));
  return [path.join(paths.remoteBuildsDir, job.remote_peer)];
}

export async function cleanBuildEnvironment(paths: Paths, ctx: PhaseContext): Promise<PhaseResult> {
  let dirs: string[];
  try {
    dirs = buildEnvironmentDirs(paths, ctx.job);
  } catch (err) {
    return { exitCode: null, error: errorMessage(err) };
  }
  for (const dir of dirs) {
    if (ctx.signal.aborted) return { exitCode: null, error: "cancelled" };
    const exists = await fs.stat(dir).then(() => true, () => false);
    if (!exists) continue;
    ctx.onLine(`INFO Deleting ${dir}\n`);
    try {
      await fs.rm(dir, { recursive: true, force: true, maxRetries: 3 });
    } catch (err) {
      ctx.onLine(`ERROR Could not delete ${dir}: ${errorMessage(err)}\n`);
      return { exitCode: 1, error: `clean all: could not delete ${dir} (${errorMessage(err)})` };
    }
  }
  ctx.onLine("INFO Done!\n");
  return { exitCode: 0, error: null };
}
