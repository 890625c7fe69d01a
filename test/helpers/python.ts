/**
 * The Python interpreter tests use for real Python parts (noiseprotocol,
 * esphome-dashboard-api): `.venv/bin/python` made by `npm run test:setup`, else
 * `python3`. `TEST_PYTHON` overrides it. The real ESPHome has its own venv
 * (`.venv/esphome`, see test/real-device/esphome.ts).
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const VENV_PYTHON = path.join(ROOT, ".venv", "bin", "python");

export function testPython(override?: string): string {
  return override ?? process.env.TEST_PYTHON ?? (existsSync(VENV_PYTHON) ? VENV_PYTHON : "python3");
}
