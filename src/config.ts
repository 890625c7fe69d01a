/**
 * The builder's settings: command-line flags, their environment variables,
 * and (in the add-on) the Supervisor's options file. Defaults live here and
 * nowhere else.
 */
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import os from "node:os";
import { isatty } from "node:tty";
import { parseArgs } from "node:util";
import { z } from "zod";
import { normaliseAllowedHost } from "./hostnames.ts";
import { BuilderError, ErrorCode } from "./errors.ts";
import { parsePairingSource } from "./remote-build/build-server/pairing-key.ts";
import { parseConnectBackTimings, type ConnectBackTimings } from "./remote-build/build-server/connect-back.ts";

export interface BuilderConfig {
  configDir: string;
  dataDir: string | undefined;
  host: string;
  port: number;
  peerLinkPort: number;
  /** Listen address of the peer link (Noise-authenticated, so all interfaces by default). */
  peerLinkHost: string;
  esphome: string;
  /**
   * Managed ESPHome (no `--esphome` given): the builder makes and uses its own environments
   * in `<data-dir>/esphome/<version>/`. Undefined/false: `esphome` is run as given.
   */
  managedEsphome?: boolean | undefined;
  /** Managed ESPHome: the Python to make environments with (`--python`); found on PATH/pyenv otherwise. */
  python?: string | undefined;
  /** Managed ESPHome in the add-on: the image's own ESPHome, the default version (served, never removed). */
  bundledEsphome?: string | undefined;
  label: string;
  /** Add-on without a label (the `label` option empty): start() takes the Home Assistant host's name from the Supervisor. */
  labelFromSupervisor?: boolean | undefined;
  mdns: boolean;
  logLevel: "debug" | "info" | "warning" | "error";
  compileConcurrency: number;
  uploadConcurrency: number;
  /**
   * Where this builder compiles its own jobs (`always`, `fallback`, `never`);
   * undefined when not configured (the stored panel choice, else `always`).
   */
  localBuilds?: LocalBuildsOption | undefined;
  /** How long a job that was building on a build server at restart waits for it to reconnect. */
  remoteRestoreGraceSeconds: number;
  /** Connect-back dialer timings from ESPHOME_BUILDER_CONNECT_BACK_TIMINGS (tests, troubleshooting; no flag). */
  connectBackTimings?: Partial<ConnectBackTimings> | undefined;
  addon: boolean;
  /** Host names browsers may use for this builder besides IP addresses, localhost and this machine's name (DNS-rebinding guard). */
  allowedHosts: readonly string[];
  /** Reverse proxies whose X-Forwarded-Host is believed. */
  trustedProxies: readonly string[];
  /** Standalone: HTTP Basic credentials every request must carry (none = open to whoever can connect). */
  username?: string | undefined;
  password?: string | undefined;
  // ---- Home Assistant (optional so hand-built configs in tests stay short) ----
  /** Direct mode: Home Assistant's base URL (`http://host:8123`); needs `haToken`. */
  haUrl?: string | undefined;
  /** Direct mode: a long-lived access token. */
  haToken?: string | undefined;
  /** Add-on mode: the Supervisor's token (`SUPERVISOR_TOKEN`). */
  supervisorToken?: string | undefined;
  /** Add-on mode: the Supervisor's base URL (default `http://supervisor`; tests point it at a stand-in). */
  supervisorUrl?: string | undefined;
  /** Add-on mode: the only peers the listener serves fully (the Supervisor's ingress proxy). */
  ingressAddresses?: readonly string[] | undefined;
  /** Add-on mode: ask the Supervisor for the ingress port instead of using `port`. */
  portFromSupervisor?: boolean | undefined;
  /** Read automation commands (JSON lines) from stdin. */
  stdinCommands?: boolean | undefined;
  /** Add-on option: the build-server (receiver) switch; applied when it changes. Undefined = not set. */
  buildServer?: boolean | undefined;
  /** Announce the legacy dashboard API to Home Assistant's ESPHome integration (Supervisor discovery). */
  dashboardIntegration?: boolean | undefined;
  /** As a build server: ESPHome versions kept for peers that run other ones (0: never installs any; default 3). */
  buildServerVersions?: number | undefined;
  /** As a build server: disk those versions may take together, in GB (default 8). */
  buildServerVersionsDiskGb?: number | undefined;
  // ---- devices (src/devices/; optional so hand-built configs in tests stay short) ----
  /** Seconds between probes of an online device (retries and back-off follow from it). Default 60. */
  devicePollSeconds?: number | undefined;
  /** Device probes at once. Default 8. */
  deviceProbeConcurrency?: number | undefined;
  /** Minutes an install waits for its offline device before it fails. Default 1440 (a day). */
  deviceWaitMinutes?: number | undefined;
  // ---- headless build server (src/remote-build/build-server/remote-build-only.ts) ----
  /** `--remote-build-only`: a headless build server (build server forced on, panel on loopback only, first pairing by a printed key). */
  remoteBuildOnly?: boolean | undefined;
  /** `--allow-pairing-source`: IP addresses or CIDR blocks that may pair with the printed key (empty: any). */
  allowPairingSources?: readonly string[] | undefined;
}

export const DEVICE_DEFAULTS = { pollSeconds: 60, probeConcurrency: 8, waitMinutes: 1440 } as const;

/** Flags that take a number within bounds. */
type BoundedFlag = "build-server-versions" | "build-server-versions-disk" | "device-poll-interval" | "device-wait";

const portSchema = z.coerce.number().int().min(0).max(65535);

/** The `local_builds` values (the same list as LOCAL_BUILDS in src/domain/policy.ts; test/config.test.ts holds them equal). */
export const LOCAL_BUILDS_OPTIONS = ["always", "fallback", "never"] as const;
export type LocalBuildsOption = (typeof LOCAL_BUILDS_OPTIONS)[number];

/** Flag -> environment variable. */
export const ENV_NAMES = {
  "config-dir": "ESPHOME_BUILDER_CONFIG_DIR",
  "data-dir": "ESPHOME_BUILDER_DATA_DIR",
  host: "ESPHOME_BUILDER_HOST",
  port: "ESPHOME_BUILDER_PORT",
  "peer-link-port": "ESPHOME_BUILDER_PEER_LINK_PORT",
  "peer-link-host": "ESPHOME_BUILDER_PEER_LINK_HOST",
  esphome: "ESPHOME_BUILDER_ESPHOME",
  python: "ESPHOME_BUILDER_PYTHON",
  label: "ESPHOME_BUILDER_LABEL",
  "no-mdns": "ESPHOME_BUILDER_NO_MDNS",
  "log-level": "ESPHOME_BUILDER_LOG_LEVEL",
  "compile-concurrency": "ESPHOME_BUILDER_COMPILE_CONCURRENCY",
  "upload-concurrency": "ESPHOME_BUILDER_UPLOAD_CONCURRENCY",
  "remote-restore-grace": "ESPHOME_BUILDER_REMOTE_RESTORE_GRACE",
  "local-builds": "ESPHOME_BUILDER_LOCAL_BUILDS",
  "ha-url": "ESPHOME_BUILDER_HA_URL",
  "ha-token": "ESPHOME_BUILDER_HA_TOKEN",
  "ingress-address": "ESPHOME_BUILDER_INGRESS_ADDRESS",
  "stdin-commands": "ESPHOME_BUILDER_STDIN_COMMANDS",
  username: "ESPHOME_BUILDER_USERNAME",
  password: "ESPHOME_BUILDER_PASSWORD",
  "allowed-hosts": "ESPHOME_BUILDER_ALLOWED_HOSTS",
  "trusted-proxies": "ESPHOME_BUILDER_TRUSTED_PROXIES",
  "build-server-versions": "ESPHOME_BUILDER_BUILD_SERVER_VERSIONS",
  "build-server-versions-disk": "ESPHOME_BUILDER_BUILD_SERVER_VERSIONS_DISK",
  "device-poll-interval": "ESPHOME_BUILDER_DEVICE_POLL_INTERVAL",
  "device-probe-concurrency": "ESPHOME_BUILDER_DEVICE_PROBE_CONCURRENCY",
  "device-wait": "ESPHOME_BUILDER_DEVICE_WAIT",
  "remote-build-only": "ESPHOME_BUILDER_REMOTE_BUILD_ONLY",
  "allow-pairing-source": "ESPHOME_BUILDER_ALLOW_PAIRING_SOURCE",
} as const;

/** Whether a listen address is only reachable from this machine. */
export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** The add-on image's ESPHome (Dockerfile: a venv at /opt/esphome). */
export const BUNDLED_ESPHOME = "/opt/esphome/bin/esphome";

/** The Supervisor's ingress proxy address (Home Assistant's add-on docs). */
export const SUPERVISOR_INGRESS_ADDRESS = "172.30.32.2";

export const USAGE = `Usage: esphome-builder [options]

  --config-dir DIR           device YAML folder (default ./config; add-on: /config/esphome)
  --data-dir DIR             ESPHome data and builder state (default <config-dir>/.esphome; add-on: /data)
  --host H                   HTTP listen address (default 127.0.0.1)
  --password P               ask browsers and clients for this password (HTTP Basic); prefer the
                             ESPHOME_BUILDER_PASSWORD variable, which ps does not show
  --username U               the user name that goes with it (default esphome)
  --allowed-hosts N[,N]      names browsers may open the panel by besides IP addresses, localhost and
                             this machine's name (e.g. builder.lan or *.lan); others are refused
  --trusted-proxies A[,B]    reverse proxies (IP addresses) whose X-Forwarded-Host is believed
  --port N                   HTTP port, 0 = any free port (default 6052)
  --peer-link-port N         peer-link port for build servers, 0 = any free (default 6055)
  --peer-link-host H         peer-link listen address (default 0.0.0.0: paired builders reach it over the LAN)
  --esphome PATH             the ESPHome executable to run as is (default: the builder's own managed
                             ESPHome in <data-dir>/esphome/<version>/, installed with pip on first start)
  --python PATH              the Python >= 3.12 to make managed ESPHome environments with
                             (default: python3.14/3.13/3.12 on PATH, pyenv's versions, python3)
  --label TEXT               this builder's name shown to peers (default or empty: the host name)
  --no-mdns                  do not advertise or browse with mDNS
  --log-level LEVEL          debug, info, warning or error (default info)
  --compile-concurrency N    compiles at once (default 1)
  --upload-concurrency N     uploads at once (default 4)
  --ha-url URL               Home Assistant to report to, e.g. http://homeassistant.local:8123 (needs --ha-token)
  --ha-token TOKEN           a long-lived access token of that Home Assistant
  --stdin-commands           read automation commands (JSON lines) from stdin (on by default in the add-on)
  --ingress-address A[,B]    add-on: the peers served as ingress (default 172.30.32.2)
  --remote-restore-grace S   after a restart, seconds a remote build waits for its build server (default 30)
  --local-builds MODE        compile here: always, fallback (only while no build server is connected)
                             or never (wait for a build server); default always, or the panel's choice
  --build-server-versions N  as a build server: ESPHome versions kept for peers that run others (default 3;
                             0 = never install one; used under the version policies exact and exact_required)
  --build-server-versions-disk GB  disk those versions may take together (default 8); least recently used go first
  --device-poll-interval S   seconds between probes of an online device (default 60, 1 to 3600)
  --device-probe-concurrency N  device probes at once (default 8, 1 to 64)
  --device-wait M            minutes an install waits for its offline device before it fails (default 1440, 0.1 to 10080)
  --remote-build-only        a headless build server: compiles for paired builders, the panel stays on this
                             machine (--host must be a loopback address); started with no paired builder it
                             prints a one-time pairing key, valid 15 minutes for one pairing, and exits if
                             nothing paired by then
  --allow-pairing-source A[,B]  with --remote-build-only: only these IP addresses or CIDR blocks
                             (192.168.1.0/24) may pair with the key (default: any source that has the key)
  -h, --help                 show this help

Every flag has an environment variable: ESPHOME_BUILDER_<FLAG> (for example ESPHOME_BUILDER_PORT).
`;

const addonOptionsSchema = z
  .object({
    log_level: z.enum(["debug", "info", "warning", "error"]).optional(),
    label: z.string().max(64).optional(),
    compile_concurrency: z.number().int().min(1).max(8).optional(),
    build_server: z.boolean().optional(),
    local_builds: z.enum(LOCAL_BUILDS_OPTIONS).optional(),
    device_wait_hours: z.number().int().min(1).max(168).optional(),
    home_assistant_dashboard_integration: z.boolean().optional(),
  })
  .loose();

function fail(message: string): never {
  throw new BuilderError(ErrorCode.InvalidArgs, message);
}

export function parseConfig(argv: readonly string[], env: NodeJS.ProcessEnv): BuilderConfig | "help" {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        "config-dir": { type: "string" },
        "data-dir": { type: "string" },
        host: { type: "string" },
        port: { type: "string" },
        "peer-link-port": { type: "string" },
        "peer-link-host": { type: "string" },
        esphome: { type: "string" },
        python: { type: "string" },
        label: { type: "string" },
        "no-mdns": { type: "boolean" },
        "log-level": { type: "string" },
        "compile-concurrency": { type: "string" },
        "upload-concurrency": { type: "string" },
        "remote-restore-grace": { type: "string" },
        "local-builds": { type: "string" },
        "ha-url": { type: "string" },
        "ha-token": { type: "string" },
        "ingress-address": { type: "string" },
        "stdin-commands": { type: "boolean" },
        username: { type: "string" },
        password: { type: "string" },
        "allowed-hosts": { type: "string" },
        "trusted-proxies": { type: "string" },
        "build-server-versions": { type: "string" },
        "build-server-versions-disk": { type: "string" },
        "device-poll-interval": { type: "string" },
        "device-probe-concurrency": { type: "string" },
        "device-wait": { type: "string" },
        "remote-build-only": { type: "boolean" },
        "allow-pairing-source": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    fail(`${(err as Error).message}\n\n${USAGE}`);
  }
  const flags = parsed.values;
  if (flags.help === true) return "help";
  const pick = (name: Exclude<keyof typeof ENV_NAMES, "no-mdns" | "stdin-commands" | "remote-build-only">): string | undefined => {
    const value = flags[name];
    return typeof value === "string" ? value : env[ENV_NAMES[name]];
  };
  const number = (name: "port" | "peer-link-port", fallback: number): number => {
    const raw = pick(name);
    if (raw === undefined) return fallback;
    const result = portSchema.safeParse(raw);
    if (!result.success || raw.trim() === "") fail(`--${name} must be a port number from 0 to 65535, got '${raw}'`);
    return result.data;
  };
  const grace = (): number => {
    const raw = pick("remote-restore-grace");
    if (raw === undefined) return 30;
    const n = Number(raw);
    if (raw.trim() === "" || !Number.isFinite(n) || n < 0 || n > 3600) fail(`--remote-restore-grace must be a number of seconds from 0 to 3600, got '${raw}'`);
    return n;
  };
  const localBuilds = (fallback: LocalBuildsOption | undefined): LocalBuildsOption | undefined => {
    const raw = pick("local-builds");
    if (raw === undefined) return fallback;
    const value = raw.trim().toLowerCase();
    const known = LOCAL_BUILDS_OPTIONS.find((v) => v === value);
    if (known === undefined) fail(`--local-builds must be always, fallback or never, got '${raw}'`);
    return known;
  };
  const bounded = (name: BoundedFlag, fallback: number, min: number, max: number, opts: { unit?: string; integer?: boolean } = {}): number => {
    const raw = pick(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    const integer = opts.integer === true;
    if (raw.trim() === "" || !Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
      fail(`--${name} must be a ${integer ? "whole number" : "number"}${opts.unit === undefined ? "" : ` of ${opts.unit}`} from ${min} to ${max}, got '${raw}'`);
    }
    return n;
  };
  const count = (name: "compile-concurrency" | "upload-concurrency" | "device-probe-concurrency", fallback: number): number => {
    const raw = pick(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1 || n > 64) fail(`--${name} must be a whole number from 1 to 64, got '${raw}'`);
    return n;
  };

  const addon = typeof env.SUPERVISOR_TOKEN === "string" && env.SUPERVISOR_TOKEN !== "";
  let options: z.infer<typeof addonOptionsSchema> = {};
  if (addon) {
    const file = env.ESPHOME_BUILDER_ADDON_OPTIONS ?? "/data/options.json";
    try {
      options = addonOptionsSchema.parse(JSON.parse(readFileSync(file, "utf8")));
    } catch (err) {
      fail(`Could not read the add-on options in ${file}: ${(err as Error).message}`);
    }
  }

  const logLevel = pick("log-level") ?? options.log_level ?? "info";
  if (logLevel !== "debug" && logLevel !== "info" && logLevel !== "warning" && logLevel !== "error") {
    fail(`--log-level must be debug, info, warning or error, got '${logLevel}'`);
  }
  const noMdnsEnv = env[ENV_NAMES["no-mdns"]];
  const envFlag = (name: "stdin-commands" | "remote-build-only"): boolean | undefined => {
    if (flags[name] === true) return true;
    const raw = env[ENV_NAMES[name]];
    return raw === undefined || raw === "" ? undefined : raw !== "0" && raw.toLowerCase() !== "false";
  };
  const haUrl = pick("ha-url");
  const haToken = pick("ha-token");
  if ((haUrl === undefined) !== (haToken === undefined)) fail("--ha-url and --ha-token go together: give both or neither");
  if (haUrl !== undefined) {
    let url: URL;
    try {
      url = new URL(haUrl);
    } catch {
      fail(`--ha-url must be a URL such as http://homeassistant.local:8123, got '${haUrl}'`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") fail(`--ha-url must start with http:// or https://, got '${haUrl}'`);
  }
  if (haToken !== undefined && !/^[\x21-\x7e]{1,4096}$/.test(haToken)) fail("--ha-token must be a token without spaces");
  const ingress = pick("ingress-address");
  const ingressAddresses = ingress === undefined ? [SUPERVISOR_INGRESS_ADDRESS] : ingress.split(",").map((a) => a.trim()).filter((a) => a !== "");
  for (const address of ingressAddresses) if (isIP(address) === 0) fail(`--ingress-address must list IP addresses, got '${address}'`);
  const list = (name: "allowed-hosts" | "trusted-proxies"): string[] =>
    (pick(name) ?? "").split(",").map((a) => a.trim()).filter((a) => a !== "");
  const allowedHosts = list("allowed-hosts").map((entry) => {
    const normal = normaliseAllowedHost(entry);
    if (normal === null) fail(`--allowed-hosts must list host names such as builder.lan or *.lan, got '${entry}'`);
    return normal;
  });
  const trustedProxies = list("trusted-proxies");
  for (const address of trustedProxies) if (isIP(address) === 0) fail(`--trusted-proxies must list IP addresses, got '${address}'`);
  const password = pick("password");
  const username = pick("username");
  if (password !== undefined) {
    if (addon) fail("--password is for a builder on its own: in the add-on, Home Assistant signs users in");
    if (password === "") fail("--password must not be empty");
  }
  if (username !== undefined && password === undefined) fail("--username needs --password");
  if (username !== undefined && (username === "" || username.includes(":"))) fail("--username must be non-empty and without ':'");
  const esphome = pick("esphome");
  const python = pick("python");
  if (esphome !== undefined && esphome.trim() === "") fail("--esphome must name the ESPHome executable, got ''");
  if (python !== undefined && esphome !== undefined) fail("--python is for the builder's managed ESPHome: with --esphome PATH nothing is installed, so leave one out");
  if (python !== undefined && python.trim() === "") fail("--python must name a Python 3.12+ executable, got ''");
  const stdinTty = isatty(0);
  const remoteBuildOnly = envFlag("remote-build-only") === true;
  const allowPairingSources = (pick("allow-pairing-source") ?? "").split(",").map((a) => a.trim()).filter((a) => a !== "");
  for (const entry of allowPairingSources) {
    if (parsePairingSource(entry) === null) fail(`--allow-pairing-source must list IP addresses or CIDR blocks such as 192.168.1.0/24, got '${entry}'`);
  }
  if (allowPairingSources.length > 0 && !remoteBuildOnly) fail("--allow-pairing-source goes with --remote-build-only (it limits who may pair with the printed key)");
  const host = pick("host") ?? (addon ? "0.0.0.0" : "127.0.0.1");
  if (remoteBuildOnly) {
    if (addon) fail("--remote-build-only is for a builder on its own: in the add-on, turn the build server on with the build_server option and pair in the panel");
    if (!isLoopbackHost(host)) fail(`--remote-build-only keeps the panel on this machine: --host must be a loopback address such as 127.0.0.1, got '${host}' (paired builders reach the build server on --peer-link-host)`);
  }
  let connectBackTimings: Partial<ConnectBackTimings> | undefined;
  try {
    connectBackTimings = parseConnectBackTimings(env.ESPHOME_BUILDER_CONNECT_BACK_TIMINGS);
  } catch (err) {
    fail((err as Error).message);
  }
  // An empty label (the add-on's default option) is no label: the host's name is used.
  const label = [pick("label"), options.label].map((l) => l?.trim()).find((l) => l !== undefined && l !== "");
  return {
    configDir: pick("config-dir") ?? (addon ? "/config/esphome" : "./config"),
    dataDir: pick("data-dir") ?? (addon ? "/data" : undefined),
    host,
    port: number("port", 6052),
    peerLinkPort: number("peer-link-port", 6055),
    peerLinkHost: pick("peer-link-host") ?? "0.0.0.0",
    esphome: esphome ?? (addon ? BUNDLED_ESPHOME : "esphome"),
    managedEsphome: esphome === undefined,
    python,
    bundledEsphome: addon ? (env.ESPHOME_BUILDER_BUNDLED_ESPHOME ?? BUNDLED_ESPHOME) : undefined,
    label: label ?? os.hostname(),
    // In the add-on the container's host name is not Home Assistant's: the Supervisor knows that one.
    labelFromSupervisor: addon && label === undefined,
    mdns: !(flags["no-mdns"] === true || (noMdnsEnv !== undefined && noMdnsEnv !== "" && noMdnsEnv !== "0")),
    logLevel,
    compileConcurrency: count("compile-concurrency", options.compile_concurrency ?? 1),
    uploadConcurrency: count("upload-concurrency", 4),
    remoteRestoreGraceSeconds: grace(),
    connectBackTimings,
    localBuilds: localBuilds(options.local_builds),
    addon,
    allowedHosts,
    trustedProxies,
    username: password === undefined ? undefined : (username ?? "esphome"),
    password,
    haUrl: haUrl?.replace(/\/+$/, ""),
    haToken,
    supervisorToken: addon ? env.SUPERVISOR_TOKEN : undefined,
    supervisorUrl: (env.ESPHOME_BUILDER_SUPERVISOR_URL ?? "http://supervisor").replace(/\/+$/, ""),
    ingressAddresses,
    // The Supervisor picks the ingress port (`ingress_port: 0` with host networking) unless --port says otherwise.
    portFromSupervisor: addon && pick("port") === undefined,
    stdinCommands: envFlag("stdin-commands") ?? (addon && !stdinTty),
    buildServer: options.build_server,
    dashboardIntegration: options.home_assistant_dashboard_integration ?? true,
    buildServerVersions: bounded("build-server-versions", 3, 0, 16, { integer: true }),
    buildServerVersionsDiskGb: bounded("build-server-versions-disk", 8, 0, 4096),
    devicePollSeconds: bounded("device-poll-interval", DEVICE_DEFAULTS.pollSeconds, 1, 3600, { unit: "seconds" }),
    deviceProbeConcurrency: count("device-probe-concurrency", DEVICE_DEFAULTS.probeConcurrency),
    remoteBuildOnly,
    allowPairingSources,
    deviceWaitMinutes: bounded("device-wait", options.device_wait_hours === undefined ? DEVICE_DEFAULTS.waitMinutes : options.device_wait_hours * 60, 0.1, 10_080, { unit: "minutes" }),
  };
}
