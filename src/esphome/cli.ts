/**
 * The ESPHome command lines the builder runs, and the environment they get.
 * These are a contract (DESIGN §4): the stand-in CLI's tests and the real
 * CLI's argument parser check exactly these.
 */
import { constants, promises as fs } from "node:fs";
import path from "node:path";
import { BuilderError, ErrorCode, errorMessage } from "../errors.ts";

/** Added to every ESPHome subprocess: colours stay on through a pipe, Python does not buffer, UTF-8 everywhere. */
export const ESPHOME_ENV: Readonly<Record<string, string>> = {
  PLATFORMIO_FORCE_ANSI: "true",
  FORCE_COLOR: "1",
  CLICOLOR_FORCE: "1",
  PYTHONUNBUFFERED: "1",
  PYTHONUTF8: "1",
  PYTHONIOENCODING: "utf-8",
};

/**
 * The builder's own settings (its password, Home Assistant token, ...) and the
 * Supervisor's credentials. No ESPHome process sees them: a YAML can read any
 * variable with `!env_var`, and a build server compiles YAML its peers wrote.
 */
export function isBuilderSecret(name: string): boolean {
  return name.startsWith("ESPHOME_BUILDER_") || name === "SUPERVISOR_TOKEN" || name === "HASSIO_TOKEN";
}

/**
 * What a build of a paired peer's YAML sees of this machine's environment:
 * what finding programs, certificates and caches, locales and proxies need,
 * and ESPHome's own settings (ESPHOME_*, never the builder's). The owner's
 * other variables stay with the owner's builds.
 */
const PEER_ENV_NAMES: ReadonlySet<string> = new Set([
  "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM",
  "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "LD_LIBRARY_PATH",
  "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
  "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
  "PLATFORMIO_CORE_DIR", "PLATFORMIO_CACHE_DIR", "XDG_CACHE_HOME", "CCACHE_DIR", "CCACHE_MAXSIZE",
]);

function peerMaySee(name: string): boolean {
  return PEER_ENV_NAMES.has(name) || name.startsWith("LC_") || name.startsWith("ESPHOME_");
}

/** Whose YAML a process works on: the owner's, or a paired peer's (a build server's remote jobs). */
export type EnvScope = "own" | "peer";

/** `base` (the builder's environment) without the builder's secrets, narrowed further for a peer's YAML. */
export function subprocessEnv(scope: EnvScope = "own", base: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(base)) {
    if (value === undefined || isBuilderSecret(name)) continue;
    if (scope === "peer" && !peerMaySee(name)) continue;
    env[name] = value;
  }
  return env;
}

/**
 * The whole environment of a job's ESPHome process (it is not merged with the
 * builder's): `subprocessEnv`, ESPHome's output settings and `ESPHOME_DATA_DIR`.
 */
export function esphomeEnv(dataDir: string, scope: EnvScope = "own", base: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return { ...subprocessEnv(scope, base), ...ESPHOME_ENV, ESPHOME_DATA_DIR: dataDir };
}

export function compileArgs(yaml: string): string[] {
  return ["--dashboard", "compile", yaml];
}

/** `port` is never empty here: an empty port means OTA, so the CLI never prompts. */
export function uploadArgs(yaml: string, port: string, file?: string): string[] {
  const args = ["--dashboard", "upload", yaml, "--device", port === "" ? "OTA" : port];
  if (file !== undefined) args.push("--file", file);
  return args;
}

export function runArgs(yaml: string, port: string): string[] {
  return ["--dashboard", "run", yaml, "--no-logs", "--device", port === "" ? "OTA" : port];
}

/** Streams a device's logs over its native API (`--device` an address; never a serial port here). */
export function logsArgs(yaml: string, address: string): string[] {
  return ["--dashboard", "logs", yaml, "--device", address];
}

export function cleanArgs(yaml: string): string[] {
  return ["--dashboard", "clean", yaml];
}

export function bundleArgs(yaml: string, out: string): string[] {
  return ["bundle", yaml, "-o", out];
}

export function versionArgs(): string[] {
  return ["version"];
}

export function missingEsphomeError(esphome: string): BuilderError {
  return new BuilderError(
    ErrorCode.Unavailable,
    `ESPHome CLI not found: '${esphome}' is not an executable file or on PATH. ` +
      "Install ESPHome (pip install esphome) or pass --esphome PATH (env ESPHOME_BUILDER_ESPHOME).",
  );
}

/** Resolves the ESPHome executable like a shell would; null when there is none. */
export async function resolveExecutable(command: string, envPath = process.env.PATH ?? ""): Promise<string | null> {
  const candidates = command.includes("/")
    ? [path.resolve(command)]
    : envPath.split(path.delimiter).filter((dir) => dir !== "").map((dir) => path.join(dir, command));
  for (const candidate of candidates) {
    try {
      await fs.access(candidate, constants.X_OK);
      const stat = await fs.stat(candidate);
      if (stat.isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/** An ESPHome executable a run may use until it calls `release()` (a managed environment is held meanwhile). */
export interface EsphomeLease {
  command: string;
  readonly release: () => void;
}

/** Where runners get the ESPHome to run: the managed one (src/esphome/managed.ts). */
export interface EsphomeSource {
  /** The executable for one run; waits while the first environment is provisioned; throws when there is none. */
  acquire(): Promise<EsphomeLease>;
  /** False while the first environment is provisioned (acquire would wait). */
  ready(): boolean;
}

/** A path or command name as given (`--esphome`), or the managed source. */
export type EsphomeCommand = string | EsphomeSource;

/** The executable to run for `esphome` (release it when the run ends), or why there is none. */
export async function leaseEsphome(esphome: EsphomeCommand): Promise<{ executable: string; release: () => void } | { error: string }> {
  let lease: EsphomeLease;
  if (typeof esphome === "string") {
    lease = { command: esphome, release: () => undefined };
  } else {
    try {
      lease = await esphome.acquire();
    } catch (err) {
      return { error: errorMessage(err) };
    }
  }
  const executable = await resolveExecutable(lease.command);
  if (executable === null) {
    lease.release();
    return { error: missingEsphomeError(lease.command).message };
  }
  return { executable, release: lease.release };
}
