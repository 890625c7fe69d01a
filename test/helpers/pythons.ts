/**
 * Real Python interpreters of a given minor version on this machine (pyenv's
 * versions, or /usr/bin, /usr/local/bin), for tests of how the builder picks
 * one. Each candidate is run: pyenv shims exist for versions not selected.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";

export function pythonAt(minor: string): string | null {
  const candidates: string[] = [];
  const root = process.env.PYENV_ROOT ?? path.join(os.homedir(), ".pyenv");
  try {
    for (const v of readdirSync(path.join(root, "versions")).filter((n) => n.startsWith(`${minor}.`)).sort().reverse()) {
      candidates.push(path.join(root, "versions", v, "bin", `python${minor}`));
    }
  } catch {
    // no pyenv
  }
  candidates.push(`/usr/bin/python${minor}`, `/usr/local/bin/python${minor}`);
  for (const exe of candidates) {
    if (!existsSync(exe)) continue;
    const run = spawnSync(exe, ["-c", "import sys, venv, ensurepip; print('%d.%d' % sys.version_info[:2])"], { encoding: "utf8", timeout: 15_000 });
    if (run.status === 0 && run.stdout.trim() === minor) return exe;
  }
  return null;
}
