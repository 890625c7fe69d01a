/**
 * Finding a Python >= 3.12 for managed ESPHome, with real interpreters: a
 * machine whose PATH and pyenv hold only Python 3.11 gets the documented
 * error naming what to install; 3.13 on PATH or in pyenv's versions is found;
 * `--python` is used alone.
 */
import { existsSync } from "node:fs";
import { mkdir, symlink, writeFile, chmod } from "node:fs/promises";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { BuilderError } from "../../src/errors.ts";
import { NO_PYTHON_HELP, findPython, probePython, pythonCandidates } from "../../src/esphome/python-finder.ts";
import { missingTool } from "../helpers/tools.ts";
import { tempDir } from "../helpers/tmp.ts";
import { pythonAt } from "../helpers/pythons.ts";

const py311 = pythonAt("3.11");
const py313 = pythonAt("3.13") ?? pythonAt("3.12");
const skip = missingTool(py311 !== null && py313 !== null, "a real Python 3.11 and a Python 3.12+ (pyenv's versions or on PATH)");

/** A machine of its own: PATH, HOME and PYENV_ROOT in a temp folder, nothing else. */
async function machine(opts: { path?: Record<string, string>; pyenv?: Record<string, string> }): Promise<NodeJS.ProcessEnv> {
  const root = await tempDir("python-finder-");
  const bin = path.join(root, "bin");
  await mkdir(bin);
  for (const [name, target] of Object.entries(opts.path ?? {})) await symlink(target, path.join(bin, name));
  const pyenvRoot = path.join(root, "pyenv");
  for (const [version, target] of Object.entries(opts.pyenv ?? {})) {
    await mkdir(path.join(pyenvRoot, "versions", version, "bin"), { recursive: true });
    await symlink(target, path.join(pyenvRoot, "versions", version, "bin", "python3"));
  }
  return { PATH: bin, HOME: root, PYENV_ROOT: pyenvRoot };
}

describe.skipIf(skip)("finding a Python for managed ESPHome", () => {
  let p311 = "";
  let p313 = "";
  beforeAll(() => {
    p311 = py311 ?? "";
    p313 = py313 ?? "";
  });

  it("probes a real interpreter: its version and that it has venv", async () => {
    const good = await probePython(p313);
    expect(good.ok).toBe(true);
    const old = await probePython(p311);
    expect(old.ok).toBe(false);
    expect(old.ok ? "" : old.reason).toMatch(/^Python 3\.11\.\d+, older than 3\.12$/);
  });

  it("with only Python 3.11 anywhere: no_python, listing what it tried and naming what to install", async () => {
    const env = await machine({ path: { python3: p311, "python3.11": p311 }, pyenv: { "3.11.7": p311 } });
    const err = await findPython({ env }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BuilderError);
    expect((err as BuilderError).code).toBe("no_python");
    const message = (err as BuilderError).message;
    expect(message).toContain("No Python 3.12 or newer");
    expect(message).toContain(`${env.PATH}/python3: Python 3.11`);
    expect(message).toContain(NO_PYTHON_HELP);
    expect(message).toContain("apt-get install python3 python3-venv");
    expect(message).toContain("--python PATH");
  });

  it("with nothing at all: says none was found", async () => {
    const env = await machine({});
    await expect(findPython({ env })).rejects.toThrow(/no python3\.14, python3\.13, python3\.12, pyenv version or python3 was found/);
  });

  it("takes python3.13 on PATH before python3", async () => {
    const env = await machine({ path: { python3: p311, "python3.13": p313 } });
    const found = await findPython({ env });
    expect(found.path).toBe(path.join(env.PATH ?? "", "python3.13"));
    expect(found.version).toMatch(/^3\.1[2-9]\.\d+$/);
  });

  it("finds pyenv's versions, newest first, and skips a shim that does not run", async () => {
    const env = await machine({ pyenv: { "3.11.7": p311, "3.13.0": p313 } });
    // A pyenv-style shim on PATH for a version that is not selected: it exists and fails when run.
    const shim = path.join(env.PATH ?? "", "python3.12");
    await writeFile(shim, "#!/bin/sh\necho \"pyenv: python3.12: command not found\" >&2\nexit 127\n");
    await chmod(shim, 0o755);
    expect(await pythonCandidates(env)).toEqual([shim, path.join(env.PYENV_ROOT ?? "", "versions", "3.13.0", "bin", "python3")]);
    const found = await findPython({ env });
    expect(found.path).toBe(path.join(env.PYENV_ROOT ?? "", "versions", "3.13.0", "bin", "python3"));
  });

  it("--python is used alone: a good one is taken, a 3.11 or a missing file is refused with the fix", async () => {
    const env = await machine({ path: { python3: p311 } });
    expect((await findPython({ env, explicit: p313 })).path).toBe(p313);
    await expect(findPython({ env, explicit: p311 })).rejects.toThrow(/--python .* cannot make ESPHome's environment: Python 3\.11\.\d+, older than 3\.12/);
    const missing = path.join(env.HOME ?? "", "nope", "python3");
    expect(existsSync(missing)).toBe(false);
    const err = (await findPython({ env, explicit: missing }).catch((e: unknown) => e)) as BuilderError;
    expect(err.code).toBe("no_python");
    expect(err.message).toContain("is not an executable file");
  });
});
