/**
 * Finds a Python >= 3.12 with `venv` to make managed ESPHome environments
 * with: `--python PATH` (ESPHOME_BUILDER_PYTHON) when given, else
 * python3.14/3.13/3.12 on PATH, pyenv's versions (`pyenv root`/versions/*,
 * else $PYENV_ROOT or ~/.pyenv), then python3. Every candidate is run (a
 * pyenv shim exists for versions that are not selected and fails when run).
 */
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { BuilderError, ErrorCode } from "../errors.ts";
import { resolveExecutable, subprocessEnv } from "./cli.ts";

export interface PythonInfo {
  /** The interpreter's path. */
  path: string;
  /** "3.13.0" */
  version: string;
}

/** What a probe learnt of a candidate: its version, or why it cannot be used. */
export type ProbeResult = { ok: true; version: string } | { ok: false; reason: string };

export interface FindPythonOptions {
  /** `--python PATH` / ESPHOME_BUILDER_PYTHON: only this one is tried. */
  explicit?: string | undefined;
  /** PATH, HOME and PYENV_ROOT come from here (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Runs a candidate (default: the real interpreter with a one-line check). */
  probe?: (exe: string) => Promise<ProbeResult>;
}

export const MIN_PYTHON: readonly [number, number] = [3, 12];

/** The fix for a machine without a usable Python, named in the error. */
export const NO_PYTHON_HELP =
  "Install Python 3.12 or newer with venv (Debian 13 / Ubuntu 24.04: apt-get install python3 python3-venv; " +
  "elsewhere: pyenv install 3.13), then restart the builder; or pass --python PATH (ESPHOME_BUILDER_PYTHON), " +
  "or point --esphome at an ESPHome you installed yourself.";

const PROBE_SCRIPT =
  "import sys\n" +
  "v = sys.version_info\n" +
  "print('%d.%d.%d' % (v[0], v[1], v[2]))\n" +
  "import venv, ensurepip\n" +
  "print('venv-ok')\n";

/** Runs the interpreter: its version, and whether it has venv and ensurepip (Debian splits them into python3-venv). */
export async function probePython(exe: string): Promise<ProbeResult> {
  const result = await execa(exe, ["-c", PROBE_SCRIPT], { reject: false, timeout: 15_000, stdin: "ignore", env: subprocessEnv("own"), extendEnv: false });
  const lines = result.stdout.trim().split("\n");
  const version = lines[0]?.trim() ?? "";
  if (!/^\d+\.\d+\.\d+$/.test(version)) {
    const why = result.stderr.trim().split("\n")[0] ?? "";
    return { ok: false, reason: `did not run${why === "" ? "" : ` (${why.slice(0, 120)})`}` };
  }
  const [major = 0, minor = 0] = version.split(".").map(Number);
  if (major < MIN_PYTHON[0] || (major === MIN_PYTHON[0] && minor < MIN_PYTHON[1])) return { ok: false, reason: `Python ${version}, older than 3.12` };
  if (lines[1]?.trim() !== "venv-ok") return { ok: false, reason: `Python ${version} without venv/ensurepip (Debian: apt-get install python3-venv)` };
  return { ok: true, version };
}

function versionKey(name: string): number[] {
  return (/^(\d+)\.(\d+)(?:\.(\d+))?/.exec(name)?.slice(1) ?? []).map((p) => Number(p));
}

async function pyenvRoot(env: NodeJS.ProcessEnv): Promise<string> {
  const pyenv = await resolveExecutable("pyenv", env.PATH ?? "");
  if (pyenv !== null) {
    const result = await execa(pyenv, ["root"], { reject: false, timeout: 10_000, stdin: "ignore", env: subprocessEnv("own", env), extendEnv: false });
    const root = result.stdout.trim();
    if (result.exitCode === 0 && root !== "") return root;
  }
  return env.PYENV_ROOT ?? path.join(env.HOME ?? os.homedir(), ".pyenv");
}

/** The candidates in the order they are tried (paths; names already looked up on PATH). */
export async function pythonCandidates(env: NodeJS.ProcessEnv): Promise<string[]> {
  const out: string[] = [];
  const onPath = env.PATH ?? "";
  for (const name of ["python3.14", "python3.13", "python3.12"]) {
    const found = await resolveExecutable(name, onPath);
    if (found !== null) out.push(found);
  }
  const root = await pyenvRoot(env);
  let versions: string[] = [];
  try {
    versions = (await fs.readdir(path.join(root, "versions"))).filter((v) => /^3\.\d+/.test(v));
  } catch {
    // no pyenv
  }
  versions.sort((a, b) => {
    const ka = versionKey(a);
    const kb = versionKey(b);
    for (let i = 0; i < 3; i++) if ((ka[i] ?? 0) !== (kb[i] ?? 0)) return (kb[i] ?? 0) - (ka[i] ?? 0);
    return 0;
  });
  for (const v of versions) {
    const [major = 0, minor = 0] = versionKey(v);
    if (major === 3 && minor >= MIN_PYTHON[1]) out.push(path.join(root, "versions", v, "bin", "python3"));
  }
  const python3 = await resolveExecutable("python3", onPath);
  if (python3 !== null) out.push(python3);
  return [...new Set(out)];
}

/** The first usable Python; a `no_python` BuilderError that lists what was tried and names the fix otherwise. */
export async function findPython(opts: FindPythonOptions = {}): Promise<PythonInfo> {
  const env = opts.env ?? process.env;
  const probe = opts.probe ?? probePython;
  const tried: string[] = [];
  if (opts.explicit !== undefined) {
    const exe = await resolveExecutable(opts.explicit, env.PATH ?? "");
    if (exe === null) {
      throw new BuilderError(ErrorCode.NoPython, `--python ${opts.explicit} is not an executable file. ${NO_PYTHON_HELP}`);
    }
    const result = await probe(exe);
    if (result.ok) return { path: exe, version: result.version };
    throw new BuilderError(ErrorCode.NoPython, `--python ${opts.explicit} cannot make ESPHome's environment: ${result.reason}. ${NO_PYTHON_HELP}`);
  }
  for (const exe of await pythonCandidates(env)) {
    const result = await probe(exe);
    if (result.ok) return { path: exe, version: result.version };
    tried.push(`${exe}: ${result.reason}`);
  }
  const what = tried.length === 0 ? "no python3.14, python3.13, python3.12, pyenv version or python3 was found" : `tried ${tried.join("; ")}`;
  throw new BuilderError(ErrorCode.NoPython, `No Python 3.12 or newer to install ESPHome with (${what}). ${NO_PYTHON_HELP}`);
}
