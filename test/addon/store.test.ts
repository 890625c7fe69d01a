/**
 * The repository as Home Assistant's Supervisor reads it when a user adds its
 * URL to the add-on store (supervisor/store/data.py, apps/build.py,
 * apps/model.py and utils/common.py, 2026-08):
 *
 * - `repository.{yaml,yml,json}` (the first one a recursive search finds) must
 *   exist with a `name`, else the repository is refused and its clone deleted;
 * - every `config.{yaml,yml,json}` outside dot-folders and `rootfs` is an
 *   add-on, and its folder is the build context: here only the root one;
 * - the image is the `Dockerfile` (or `Dockerfile.<arch>`) in that folder, a
 *   real file (BuildKit refuses a symlinked one);
 * - a `build.{yaml,yml,json}` anywhere below it (recursive search) would be
 *   read as the deprecated build file, and one without `build_from` makes the
 *   Supervisor pass an Alpine base: there must be none;
 * - the store page reads DOCS.md, icon.png, logo.png, CHANGELOG.md and the
 *   README.md from the add-on folder.
 *
 * And the image's panel stage copies everything outside panel/ that the panel
 * imports, and installs every package it imports.
 */
import { execFileSync } from "node:child_process";
import { existsSync, lstatSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { ROOT } from "../helpers/builder.ts";

const CONFIG_SUFFIXES = [".yaml", ".yml", ".json"];

/** The files a clone of the repository holds (tracked, plus new files git does not ignore). */
function repositoryFiles(): string[] {
  const out = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard", "-z"], { cwd: ROOT, encoding: "utf8" });
  return out.split("\0").filter((f) => f !== "" && existsSync(path.join(ROOT, f)));
}

/** Files named `<stem>.<yaml|yml|json>` anywhere, as the Supervisor's `glob("**\/<stem>.*")` finds them. */
function named(files: string[], stem: string): string[] {
  return files.filter((f) => {
    const base = path.posix.basename(f);
    return CONFIG_SUFFIXES.some((suffix) => base === `${stem}${suffix}`);
  });
}

/** One Dockerfile instruction per entry (continuation lines joined, comments dropped). */
export function dockerInstructions(text: string): string[] {
  const instructions: string[] = [];
  let current = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (current === "" && (line === "" || line.startsWith("#"))) continue;
    if (line.startsWith("#")) continue;
    if (line.endsWith("\\")) {
      current += `${line.slice(0, -1).trimEnd()} `;
      continue;
    }
    instructions.push(current + line);
    current = "";
  }
  return instructions;
}

/** The instructions of the stage named `name` (`FROM ... AS name` up to the next FROM). */
export function stage(instructions: string[], name: string): string[] {
  const start = instructions.findIndex((i) => new RegExp(`^FROM\\s+\\S+\\s+AS\\s+${name}$`, "i").test(i));
  if (start < 0) return [];
  const end = instructions.findIndex((i, n) => n > start && /^FROM\s/i.test(i));
  return instructions.slice(start, end < 0 ? undefined : end);
}

/** Sources of the COPY instructions that copy from the build context (not `--from`). */
export function contextCopies(instructions: string[]): string[] {
  const sources: string[] = [];
  for (const instruction of instructions) {
    if (!/^COPY\s/i.test(instruction)) continue;
    const words = instruction.split(/\s+/).slice(1);
    if (words.some((w) => w.startsWith("--from"))) continue;
    const args = words.filter((w) => !w.startsWith("--"));
    sources.push(...args.slice(0, -1).map((s) => s.replace(/\/$/, "")));
  }
  return sources;
}

const IMPORT_RE = /(?:\bfrom\s*|\bimport\s*\(?\s*)["']([^"']+)["']/g;

/** Every module specifier in a TypeScript source (static, side-effect and dynamic imports, re-exports). */
export function importsOf(source: string): string[] {
  return [...source.replace(/\/\*[\s\S]*?\*\//g, "").matchAll(IMPORT_RE)].map((m) => m[1] ?? "");
}

/** Relative imports of the panel that resolve outside panel/ (followed through those files too), and its bare imports. */
function panelImports(files: string[]): { outside: string[]; packages: string[] } {
  const outside = new Set<string>();
  const packages = new Set<string>();
  const queue = files.filter((f) => f.startsWith("panel/") && !f.startsWith("panel/dist/") && /\.(ts|js)$/.test(f));
  const seen = new Set<string>();
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const spec of importsOf(readFileSync(path.join(ROOT, file), "utf8"))) {
      if (spec.startsWith("node:")) continue;
      if (!spec.startsWith(".")) {
        packages.add(spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : (spec.split("/")[0] ?? spec));
        continue;
      }
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec));
      if (!target.startsWith("panel/")) outside.add(target);
      if (/\.(ts|js)$/.test(target)) queue.push(target);
    }
  }
  return { outside: [...outside].sort(), packages: [...packages].sort() };
}

const files = repositoryFiles();
const dockerfile = readFileSync(path.join(ROOT, "Dockerfile"), "utf8");
const instructions = dockerInstructions(dockerfile);

describe("the repository as the Supervisor's add-on store reads it", () => {
  it("has one repository file, at the root, with a name (and a valid url and maintainer)", () => {
    expect(named(files, "repository")).toEqual(["repository.yaml"]);
    const repository = parseYaml(readFileSync(path.join(ROOT, "repository.yaml"), "utf8")) as Record<string, unknown>;
    expect(typeof repository.name === "string" && repository.name !== "").toBe(true);
    if (repository.url !== undefined) expect(() => new URL(repository.url as string)).not.toThrow();
    if (repository.maintainer !== undefined) expect(repository.maintainer).toBeTypeOf("string");
  });

  it("has exactly one add-on, at the root (no other config.yaml/yml/json outside dot-folders and rootfs)", () => {
    const addons = named(files, "config").filter((f) => !f.split("/").some((part) => part.startsWith(".") || part === "rootfs"));
    expect(addons).toEqual(["config.yaml"]);
  });

  it("has no build.yaml/yml/json anywhere (the deprecated build file; without build_from it means an Alpine base)", () => {
    expect(named(files, "build")).toEqual([]);
  });

  it("builds the Dockerfile next to config.yaml: a real file, FROM the Debian base it names by default", () => {
    expect(lstatSync(path.join(ROOT, "Dockerfile")).isFile()).toBe(true);
    // Per-arch Dockerfiles would win over it for their arch.
    expect(files.filter((f) => /^Dockerfile\./.test(f))).toEqual([]);
    expect(files.filter((f) => path.posix.basename(f).startsWith("Dockerfile") && f !== "Dockerfile")).toEqual([]);
    expect(dockerfile).toMatch(/^ARG BUILD_FROM=ghcr\.io\/home-assistant\/base-debian:\S+$/m);
    expect(instructions.filter((i) => /^FROM\s/i.test(i)).every((i) => /^FROM\s+(\$\{BUILD_FROM\}|npm|modules)(\s|$)/i.test(i))).toBe(true);
  });

  it("keeps the store page's files where the Supervisor reads them", () => {
    for (const file of ["README.md", "DOCS.md", "CHANGELOG.md", "icon.png", "logo.png", "translations/en.yaml"]) {
      expect(files, file).toContain(file);
    }
    const png = (file: string): { width: number; height: number } => {
      const bytes = readFileSync(path.join(ROOT, file));
      expect(bytes.subarray(0, 8).toString("hex"), `${file} is a PNG`).toBe("89504e470d0a1a0a");
      return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
    };
    // The store's sizes: a square icon, a logo wider than high.
    const icon = png("icon.png");
    expect(icon.width).toBe(icon.height);
    const logo = png("logo.png");
    expect(logo.width).toBeGreaterThan(logo.height);
    // The changelog has an entry for the version config.yaml declares.
    const { version } = parseYaml(readFileSync(path.join(ROOT, "config.yaml"), "utf8")) as { version: string };
    expect(readFileSync(path.join(ROOT, "CHANGELOG.md"), "utf8")).toContain(`## ${version}`);
  });

  it("copies into the build only what exists and .dockerignore lets through", () => {
    const ignored = readFileSync(path.join(ROOT, ".dockerignore"), "utf8").split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"));
    const isIgnored = (file: string): boolean =>
      ignored.some((pattern) => {
        const bare = pattern.replace(/^\//, "");
        if (bare.startsWith("**/")) return file.split("/").includes(bare.slice(3));
        if (bare.startsWith("*.")) return file.endsWith(bare.slice(1));
        return file === bare || file.startsWith(`${bare}/`);
      });
    // What must stay out of the context: installed packages, the venv, git, local state.
    for (const out of ["node_modules", "panel/node_modules", ".venv", ".git", "config", "panel/dist"]) expect(isIgnored(out), out).toBe(true);
    const sources = contextCopies(instructions);
    expect(sources.length).toBeGreaterThan(0);
    for (const source of sources) {
      expect(existsSync(path.join(ROOT, source)), `COPY ${source}: no such file`).toBe(true);
      expect(isIgnored(source), `COPY ${source}: .dockerignore leaves it out`).toBe(false);
    }
  });

  it("copies every file outside panel/ that the panel imports into the panel stage, and installs every package it imports", () => {
    const panelStage = stage(instructions, "panel");
    expect(panelStage.length).toBeGreaterThan(0);
    const copied = contextCopies(panelStage);
    const { outside, packages } = panelImports(files);
    // The panel does import outside panel/ (the wire shapes, the translations); each must be copied.
    expect(outside.length).toBeGreaterThan(0);
    for (const file of outside) {
      expect(copied.some((source) => file === source || file.startsWith(`${source}/`)), `${file} is imported by the panel but not copied into its stage`).toBe(true);
    }
    // Packages: the run-time dependencies (the stage starts from `modules`, npm ci --omit=dev) and the ones it installs.
    const pkg = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { dependencies: Record<string, string> };
    expect(panelStage[0]).toMatch(/^FROM\s+modules\s/i);
    const installed = new Set([...Object.keys(pkg.dependencies), ...[...panelStage.join("\n").matchAll(/"(@?[a-z0-9][a-z0-9._/-]*)@\$\(locked /g)].map((m) => m[1] ?? "")]);
    for (const name of packages) expect(installed.has(name), `the panel imports ${name}, which its stage does not install`).toBe(true);
  });
});

describe("the ESPHome the image installs", () => {
  it("is pinned in one place, addon/requirements.txt, which the image, the lock and the tests use", () => {
    const requirementLines = (file: string): string[] => readFileSync(path.join(ROOT, file), "utf8").split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"));
    const pins = requirementLines("addon/requirements.txt");
    expect(pins).toHaveLength(1);
    expect(pins[0]).toMatch(/^esphome==\d+\.\d+\.\d+$/);
    // The lock of everything else was made for that ESPHome and does not pin ESPHome itself.
    const lockText = readFileSync(path.join(ROOT, "addon", "constraints.txt"), "utf8");
    expect(lockText, "addon/constraints.txt is stale: run bash addon/lock-requirements.sh").toContain(`addon/lock-requirements.sh from ${pins[0] ?? ""}\n`);
    expect(requirementLines("addon/constraints.txt").every((l) => /^[A-Za-z0-9._-]+==\S+$/.test(l))).toBe(true);
    expect(requirementLines("addon/constraints.txt").some((l) => l.toLowerCase().startsWith("esphome=="))).toBe(false);
    // The tests install the same file (test/setup-esphome.sh reads it); nothing else names an ESPHome version.
    expect(readFileSync(path.join(ROOT, "test", "setup-esphome.sh"), "utf8")).toMatch(/^PIN=addon\/requirements\.txt$/m);
    const tests = requirementLines("test/requirements.txt");
    expect(tests.filter((l) => /^esphome\s*([=<>!~;[]|$)/i.test(l))).toEqual([]);
    expect(dockerfile).toContain("-r /tmp/esphome/requirements.txt -c /tmp/esphome/constraints.txt");
    expect(dockerfile).not.toMatch(/esphome==/i);
  });
});

describe("the Dockerfile helpers of this test", () => {
  it("read instructions, stages, copies and imports as written", () => {
    const text = "ARG X=1\nFROM a AS one\n# c\nCOPY --chown=1 x y /z/\nRUN a \\\n  b\nFROM b AS two\nCOPY --from=one /a /b\nCOPY src/ ./src\n";
    const all = dockerInstructions(text);
    expect(all).toEqual(["ARG X=1", "FROM a AS one", "COPY --chown=1 x y /z/", "RUN a b", "FROM b AS two", "COPY --from=one /a /b", "COPY src/ ./src"]);
    expect(stage(all, "one")).toEqual(["FROM a AS one", "COPY --chown=1 x y /z/", "RUN a b"]);
    expect(stage(all, "three")).toEqual([]);
    expect(contextCopies(stage(all, "two"))).toEqual(["src"]);
    expect(importsOf('import a from "./a.ts";\nexport { b } from "../b.ts";\nimport "lit";\nconst c = await import("./c.ts");\n/* import "x" */')).toEqual(["./a.ts", "../b.ts", "lit", "./c.ts"]);
  });
});
