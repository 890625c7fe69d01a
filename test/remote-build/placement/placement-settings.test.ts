/**
 * The `local_builds` setting on disk: the panel's choice survives restarts,
 * and a configured value (flag, variable, add-on option) wins only when it
 * changed since the last start.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { EventBus } from "../../../src/events.ts";
import { resolvePaths } from "../../../src/paths.ts";
import { Problems } from "../../../src/problems.ts";
import { PlacementSettings } from "../../../src/remote-build/placement/placement-settings.ts";
import type { LocalBuilds } from "../../../src/remote-build/placement/placement.ts";
import { tempDir } from "../../helpers/tmp.ts";

async function setup() {
  const paths = resolvePaths({ configDir: await tempDir() });
  await mkdir(paths.stateDir, { recursive: true });
  const bus = new EventBus();
  const problems = new Problems({ bus });
  const changes: LocalBuilds[] = [];
  bus.on("local_builds_changed", (e) => changes.push(e.local_builds));
  const open = async (configured?: LocalBuilds): Promise<PlacementSettings> => {
    const settings = new PlacementSettings({ file: paths.placementFile, bus, configured, problems });
    await settings.start();
    return settings;
  };
  return { paths, open, changes, problems };
}

describe("PlacementSettings", () => {
  it("is `always` with nothing stored or configured, and keeps a panel choice across restarts", async () => {
    const { open, changes } = await setup();
    const first = await open();
    expect(first.localBuilds).toBe("always");
    first.set("never");
    first.set("never");
    expect(changes).toEqual(["never"]);
    await first.stop();
    expect((await open()).localBuilds).toBe("never");
  });

  it("applies a configured value once: a later panel choice is not undone by the next start with the same value", async () => {
    const { open, paths } = await setup();
    const first = await open("fallback");
    expect(first.localBuilds).toBe("fallback");
    first.set("always");
    await first.stop();
    expect((await open("fallback")).localBuilds).toBe("always");
    // The option changed: it applies again.
    const third = await open("never");
    expect(third.localBuilds).toBe("never");
    await third.stop();
    expect(JSON.parse(await readFile(paths.placementFile, "utf8"))).toEqual({ local_builds: "never", configured: "never" });
  });

  it("moves an unreadable file aside, reports it and starts from the configured value", async () => {
    const { open, paths, problems } = await setup();
    await writeFile(paths.placementFile, JSON.stringify({ local_builds: "sometimes" }));
    expect((await open("fallback")).localBuilds).toBe("fallback");
    expect(problems.list().map((p) => p.code)).toEqual(["state_file_corrupt"]);
    expect(problems.list()[0]?.message).toContain("The local builds setting");
  });
});
