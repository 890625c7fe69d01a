/**
 * Configuration names: the YAML file name of a device, relative to the config
 * dir. They arrive from API clients and end up in file paths and in esphome's
 * argv, so they are checked to be a plain leaf file the scanner could list:
 * never a path, never the secrets file, never a dot-file (`.esphome` state).
 */
import path from "node:path";
import { invalidArgs } from "../errors.ts";

/** File systems limit one name to 255 bytes; counted in UTF-8 bytes, not characters. */
const MAX_NAME_BYTES = 255;
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/;
/** Compared case-insensitively: on macOS/Windows `Secrets.yaml` opens the secrets file. */
const SECRETS_NAMES = new Set(["secrets.yaml", "secrets.yml"]);

/** True for `secrets.yaml` / `secrets.yml` in any letter case. */
export function isSecretsFileName(name: string): boolean {
  return SECRETS_NAMES.has(name.toLowerCase());
}

/** Returns the name unchanged when it is a valid configuration file name; otherwise throws `invalid_args`. */
export function validateConfigurationName(value: unknown): string {
  if (typeof value !== "string") throw invalidArgs("configuration must be a string");
  if (value === "") throw invalidArgs("configuration must not be empty");
  const shown = JSON.stringify(value);
  const bad = (why: string) => invalidArgs(`invalid configuration ${shown}: ${why}`);
  if (Buffer.byteLength(value, "utf8") > MAX_NAME_BYTES) {
    throw invalidArgs(`invalid configuration: longer than ${MAX_NAME_BYTES} bytes`);
  }
  if (CONTROL_RE.test(value)) throw bad("contains NUL or control characters");
  if (value.includes("/") || value.includes("\\")) {
    throw bad("must be a file name in the config folder, not a path");
  }
  if (value.includes("..")) throw bad('must not contain ".."');
  // Separators are already gone; this catches Windows drive forms like `C:x.yaml`.
  if (path.isAbsolute(value) || path.win32.isAbsolute(value) || /^[A-Za-z]:/.test(value)) {
    throw bad("must not be an absolute path");
  }
  if (value.startsWith(".")) throw bad('must not start with "."');
  if (!value.endsWith(".yaml") && !value.endsWith(".yml")) throw bad('must end with ".yaml" or ".yml"');
  if (isSecretsFileName(value)) throw bad("the secrets file is not a device configuration");
  return value;
}

/**
 * Absolute path of a configuration inside `configDir`. Validation already
 * rules out traversal; the containment check is a second, independent guard.
 */
export function resolveConfigurationPath(configDir: string, name: string): string {
  const valid = validateConfigurationName(name);
  const root = path.resolve(configDir);
  const resolved = path.resolve(root, valid);
  if (path.dirname(resolved) !== root || path.basename(resolved) !== valid) {
    throw invalidArgs(`invalid configuration ${JSON.stringify(name)}: resolves outside the config folder`);
  }
  return resolved;
}
