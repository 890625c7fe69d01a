/**
 * A build server's ESPHome versions: at most K environments and a disk
 * budget, the least recently used removed first, never one a running job
 * holds. Real environments (src/esphome/environments.ts: a real venv and a
 * real pip each), installed from a package folder made here whose `esphome`
 * packages are tiny (a console script that answers `esphome version`), so
 * the test needs no network and takes seconds per version.
 */
import { execFileSync } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { subprocessEnv } from "../../../src/esphome/cli.ts";
import { Environments } from "../../../src/esphome/environments.ts";
import { findPython } from "../../../src/esphome/python-finder.ts";
import { BuildServerVersions } from "../../../src/remote-build/build-server/versions.ts";
import { pythonUnavailableReason } from "../../helpers/esphome-versions.ts";
import { missingTool } from "../../helpers/tools.ts";
import { tempDir, waitFor } from "../../helpers/tmp.ts";
import { createJob } from "../../../src/firmware/job.ts";
import { runEsphome } from "../../../src/firmware/local-runner.ts";
import { resolvePaths } from "../../../src/paths.ts";

/** Writes a wheel of a package named esphome at `version` whose `esphome version` prints `Version: <version>`. */
const WHEEL_SCRIPT = `
import base64, hashlib, sys, zipfile
out, version = sys.argv[1], sys.argv[2]
files = {
    "esphome_stub.py": f"def main():\\n    print('Version: {version}')\\n",
    f"esphome-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\\nName: esphome\\nVersion: {version}\\n",
    f"esphome-{version}.dist-info/WHEEL": "Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    f"esphome-{version}.dist-info/entry_points.txt": "[console_scripts]\\nesphome = esphome_stub:main\\n",
}
record = []
for name, text in files.items():
    digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
    record.append(f"{name},sha256={digest},{len(text.encode())}")
record.append(f"esphome-{version}.dist-info/RECORD,,")
files[f"esphome-{version}.dist-info/RECORD"] = "\\n".join(record) + "\\n"
with zipfile.ZipFile(f"{out}/esphome-{version}-py3-none-any.whl", "w") as z:
    for name, text in files.items():
        z.writestr(name, text)
`;

let python = "";
let wheels = "";
let skip = false;

beforeAll(async () => {
  const reason = await pythonUnavailableReason();
  skip = missingTool(reason === null, `a Python 3.12+ with venv (${reason ?? ""})`);
  if (skip) return;
  python = (await findPython()).path;
  wheels = await fs.mkdtemp(path.join((await fs.realpath("/tmp")), "esb-wheels-"));
  for (const v of ["1.0.0", "1.0.1", "1.0.2", "1.0.3"]) execFileSync(python, ["-c", WHEEL_SCRIPT, wheels, v]);
}, 60_000);

async function versions(opts: { limit: number; budgetBytes?: number }) {
  const root = path.join(await tempDir(), "venvs");
  const environments = new Environments({
    root,
    limit: opts.limit,
    python: () => findPython(),
    env: () => ({ ...subprocessEnv("own"), PIP_NO_INDEX: "1", PIP_FIND_LINKS: wheels }),
  });
  await environments.start();
  const lines: string[] = [];
  const server = new BuildServerVersions({ environments, diskBudgetBytes: opts.budgetBytes ?? 1e12 });
  const use = async (version: string): Promise<void> => {
    const held = await server.acquire(version, { onLine: (l) => lines.push(l) });
    expect(execFileSync(held.esphome, ["version"], { encoding: "utf8" })).toBe(`Version: ${version}\n`);
    held.release();
  };
  const installed = async (): Promise<string[]> => (await environments.list()).map((e) => e.version).sort();
  return { server, environments, use, installed, lines };
}

describe("BuildServerVersions", () => {
  it("keeps at most K versions, removing the least recently used", async (ctx) => {
    if (skip) ctx.skip();
    const v = await versions({ limit: 2 });
    await v.use("1.0.0");
    await v.use("1.0.1");
    expect(await v.installed()).toEqual(["1.0.0", "1.0.1"]);
    // 1.0.0 is used again: now 1.0.1 is the least recently used.
    await v.use("1.0.0");
    await v.use("1.0.2");
    expect(await v.installed()).toEqual(["1.0.0", "1.0.2"]);
  }, 120_000);

  it("removes the least recently used past the disk budget (saying so in the job's output), never one a running job holds", async (ctx) => {
    if (skip) ctx.skip();
    const v = await versions({ limit: 8 });
    const running = await v.server.acquire("1.0.0", { onLine: () => undefined });
    const one = (await v.environments.diskUsage()).total_bytes;
    // Room for one and a half: 1.0.1 makes two, but 1.0.0 is held by a running job and stays.
    const tight = new BuildServerVersions({ environments: v.environments, diskBudgetBytes: Math.floor(one * 1.5) });
    (await tight.acquire("1.0.1", { onLine: (l) => v.lines.push(l) })).release();
    expect(await v.installed()).toEqual(["1.0.0", "1.0.1"]);
    running.release();
    // Room for two and a half: 1.0.2 makes three, and 1.0.0 (used longest ago) goes.
    const roomy = new BuildServerVersions({ environments: v.environments, diskBudgetBytes: Math.floor(one * 2.5) });
    (await roomy.acquire("1.0.2", { onLine: (l) => v.lines.push(l) })).release();
    expect(await v.installed()).toEqual(["1.0.1", "1.0.2"]);
    expect(v.lines.join("")).toMatch(/\*\*\* removed ESPHome 1\.0\.0 \(\d+ MiB\): the build server's ESPHome environments took \d+ MiB, more than the \d+ MiB budget, and it was used least recently \*\*\*\n/);
    expect(v.lines.join("")).not.toContain("removed ESPHome 1.0.1");
  }, 180_000);

  it("a version that cannot be installed rejects with pip's reason and holds nothing", async (ctx) => {
    if (skip) ctx.skip();
    const v = await versions({ limit: 2 });
    await expect(v.server.acquire("9.9.9", { onLine: () => undefined })).rejects.toThrow(/Installing ESPHome 9\.9\.9 failed: pip install .*No matching distribution found for esphome==9\.9\.9/);
    expect(await v.installed()).toEqual([]);
    expect((await v.environments.list()).some((e) => e.in_use)).toBe(false);
    expect(v.server.enabled).toBe(true);
  }, 120_000);

  it("in a job: the runner installs the version, reports it in the output, and runs that ESPHome; a cancel during the install ends the job at once", async (ctx) => {
    if (skip) ctx.skip();
    const v = await versions({ limit: 4 });
    const paths = resolvePaths({ configDir: await tempDir() });
    const job = { ...createJob({ configuration: "kitchen.yaml", job_type: "compile", target_esphome_version: "1.0.3" }, new Date()) };
    const run = async (signal: AbortSignal) => {
      const lines: string[] = [];
      const result = await runEsphome({ esphome: "/nonexistent/esphome", paths, versions: v.server }, { job, phase: "compile", signal, onLine: (l) => lines.push(l) }, ["version"]);
      return { result, text: lines.join("") };
    };
    const cancel = new AbortController();
    const cancelled = run(cancel.signal);
    setTimeout(() => { cancel.abort(); }, 200);
    const t = Date.now();
    expect((await cancelled).result).toEqual({ exitCode: null, error: "cancelled" });
    expect(Date.now() - t).toBeLessThan(3000);
    // The install went on; the next job finds the version there.
    await waitFor(async () => (await v.installed()).includes("1.0.3"), 120_000, "the install to finish");
    const done = await run(new AbortController().signal);
    expect(done.result).toEqual({ exitCode: 0, error: null });
    expect(done.text).toContain("*** provisioning ESPHome 1.0.3 for this build ***\n");
    expect(done.text).toMatch(/\*\*\* ESPHome 1\.0\.3 ready \(\d+\.\d s\) \*\*\*\n/);
    // The environment's own ESPHome ran (not the builder's, which does not exist here).
    expect(done.text).toContain("Version: 1.0.3");
    expect((await v.environments.list()).every((e) => !e.in_use)).toBe(true);
  }, 180_000);

  it("in a job on a builder that does not install versions: failure_reason provision, with the reason", async () => {
    const paths = resolvePaths({ configDir: await tempDir() });
    const job = createJob({ configuration: "kitchen.yaml", job_type: "compile", target_esphome_version: "1.0.3" }, new Date());
    const result = await runEsphome({ esphome: "/nonexistent/esphome", paths }, { job, phase: "compile", signal: new AbortController().signal, onLine: () => undefined }, ["version"]);
    expect(result).toEqual({ exitCode: null, error: "could not provide ESPHome 1.0.3: this builder does not install other ESPHome versions (it runs the one given with --esphome)", failureReason: "provision" });
  });

  it("is off with a limit of 0", async (ctx) => {
    if (skip) ctx.skip();
    const v = await versions({ limit: 0 });
    expect(v.server.enabled).toBe(false);
  });
});
