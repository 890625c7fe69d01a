/**
 * Builds the panel into panel/dist: index.html plus one hashed JS bundle
 * (esbuild), and reports the bundle's size and gzipped size.
 *
 *   node panel/build.ts              build
 *   node panel/build.ts --if-stale   build only when a source is newer than panel/dist
 *                                    (what `npm start` runs first)
 *
 * The output is written to a temporary folder and swapped in, so a running
 * builder never serves a half-written panel.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import * as esbuild from "esbuild";

const PANEL = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(PANEL, "..");
export const DIST = path.join(PANEL, "dist");
/** What the build reads; a change to any of these makes `--if-stale` rebuild. */
const INPUTS = [
  path.join(PANEL, "src"),
  path.join(PANEL, "index.html"),
  path.join(PANEL, "build.ts"),
  path.join(PANEL, "tsconfig.json"),
  path.join(ROOT, "translations", "panel"),
  path.join(ROOT, "package-lock.json"),
];
const STAMP = "build-info.json";

export interface PanelBuild {
  /** False when `ifStale` found the build up to date. */
  built: boolean;
  script: string;
  bytes: number;
  gzipBytes: number;
  ms: number;
}

async function newestMtime(target: string): Promise<number> {
  let stat;
  try {
    stat = await fs.stat(target);
  } catch {
    return 0;
  }
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = stat.mtimeMs;
  for (const entry of await fs.readdir(target)) newest = Math.max(newest, await newestMtime(path.join(target, entry)));
  return newest;
}

async function readStamp(): Promise<(PanelBuild & { inputsMtime: number }) | null> {
  try {
    return JSON.parse(await fs.readFile(path.join(DIST, STAMP), "utf8")) as PanelBuild & { inputsMtime: number };
  } catch {
    return null;
  }
}

/** True when panel/dist is missing or older than a source. */
export async function isStale(): Promise<boolean> {
  const stamp = await readStamp();
  if (stamp === null) return true;
  try {
    await fs.access(path.join(DIST, "index.html"));
    await fs.access(path.join(DIST, stamp.script));
  } catch {
    return true;
  }
  let newest = 0;
  for (const input of INPUTS) newest = Math.max(newest, await newestMtime(input));
  return newest > stamp.inputsMtime;
}

const LOCK = `${DIST}.lock`;
/** A lock older than this was left by a build that died. */
const STALE_LOCK_MS = 120_000;

/** One build at a time across processes (parallel test files, `npm start` next to a test run). */
async function withLock<T>(fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + STALE_LOCK_MS;
  for (;;) {
    try {
      await fs.mkdir(LOCK);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const age = await fs.stat(LOCK).then((s) => Date.now() - s.mtimeMs, () => 0);
      if (age > STALE_LOCK_MS || Date.now() > deadline) await fs.rm(LOCK, { recursive: true, force: true });
      else await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  try {
    return await fn();
  } finally {
    await fs.rm(LOCK, { recursive: true, force: true });
  }
}

export function buildPanel(opts: { ifStale?: boolean } = {}): Promise<PanelBuild> {
  return withLock(() => buildUnlocked(opts));
}

async function buildUnlocked(opts: { ifStale?: boolean }): Promise<PanelBuild> {
  const started = performance.now();
  if (opts.ifStale === true && !(await isStale())) {
    const stamp = await readStamp();
    if (stamp !== null) return { ...stamp, built: false, ms: performance.now() - started };
  }
  let inputsMtime = 0;
  for (const input of INPUTS) inputsMtime = Math.max(inputsMtime, await newestMtime(input));

  const tmp = `${DIST}.tmp-${process.pid}-${Date.now()}`;
  await fs.rm(tmp, { recursive: true, force: true });
  await fs.mkdir(tmp, { recursive: true });
  try {
    const result = await esbuild.build({
      entryPoints: { panel: path.join(PANEL, "src", "main.ts") },
      outdir: tmp,
      entryNames: "[name]-[hash]",
      bundle: true,
      format: "esm",
      platform: "browser",
      // Home Assistant's supported browsers; decorators and class fields are lowered as needed.
      target: ["chrome109", "firefox115", "safari16"],
      minify: true,
      sourcemap: "linked",
      legalComments: "external",
      tsconfig: path.join(PANEL, "tsconfig.json"),
      metafile: true,
      logLevel: "warning",
    });
    const outputs = Object.keys(result.metafile.outputs).filter((f) => f.endsWith(".js"));
    const scriptPath = outputs[0];
    if (outputs.length !== 1 || scriptPath === undefined) throw new Error(`expected one JS bundle, got ${outputs.join(", ")}`);
    const script = path.basename(scriptPath);
    const code = await fs.readFile(path.join(tmp, script));
    const template = await fs.readFile(path.join(PANEL, "index.html"), "utf8");
    if (!template.includes("<!--PANEL_SCRIPT-->")) throw new Error("panel/index.html lacks the <!--PANEL_SCRIPT--> marker");
    // Relative URL: the page works under any Home Assistant ingress prefix.
    const html = template
      .replace("<!--PANEL_SCRIPT-->", `<script type="module" src="./${script}"></script>`)
      .replace(/<!--BOOT-->[\s\S]*?<!--\/BOOT-->/, "");
    await fs.writeFile(path.join(tmp, "index.html"), html);
    const build: PanelBuild = {
      built: true,
      script,
      bytes: code.length,
      gzipBytes: gzipSync(code, { level: 9 }).length,
      ms: 0,
    };
    await fs.writeFile(path.join(tmp, STAMP), JSON.stringify({ ...build, inputsMtime }, null, 2) + "\n");
    await fs.rm(DIST, { recursive: true, force: true });
    try {
      await fs.rename(tmp, DIST);
    } catch (err) {
      // Another build swapped its output in first; it is just as fresh.
      if ((err as NodeJS.ErrnoException).code !== "ENOTEMPTY" && (err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    return { ...build, ms: performance.now() - started };
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

function kb(bytes: number): string {
  return `${(bytes / 1024).toFixed(1)} KB`;
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const ifStale = process.argv.includes("--if-stale");
  try {
    const build = await buildPanel({ ifStale });
    const verb = build.built ? "built" : "up to date";
    process.stderr.write(
      `panel ${verb}: panel/dist/${build.script} ${kb(build.bytes)}, ${kb(build.gzipBytes)} gzipped` +
        (build.built ? ` (${Math.round(build.ms)} ms)` : "") +
        "\n",
    );
  } catch (err) {
    process.stderr.write(`panel build failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  }
}
