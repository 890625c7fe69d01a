/**
 * Runs the add-on image with podman the way Home Assistant's Supervisor runs an
 * add-on container (supervisor/docker/app.py and docker/manager.py, 2026-08),
 * from the same config.yaml: host network when `host_network`, stdin open when
 * `stdin`, no init process of the engine's when `init: false`, /data and the
 * `map` mounts, the environment (SUPERVISOR_TOKEN, HASSIO_TOKEN, TZ), the
 * `supervisor`/`hassio` host entries, seccomp unconfined, OOM score 200, the
 * container named `addon_<slug>` with the slug (dashes) as its host name, and a
 * stop that waits `timeout` seconds before killing.
 *
 * Left out: the Supervisor's DNS server and read-only /dev bind mount (not
 * used by the builder), AppArmor (not on these machines).
 */
import { execFile, spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

/** The parts of config.yaml the Supervisor turns into container options. */
export interface AddonManifest {
  slug: string;
  timeout?: number;
  init?: boolean;
  stdin?: boolean;
  host_network?: boolean;
  map?: ({ type: string; path?: string; read_only?: boolean } | string)[];
}

export interface SupervisorRunOptions {
  /** podman with its global options (storage, runtime). */
  podman: readonly string[];
  /** `--ulimit` options this machine allows. */
  ulimits: readonly string[];
  image: string;
  manifest: AddonManifest;
  /** Host folders for the add-on's /data and for Home Assistant's configuration. */
  dataDir: string;
  homeAssistantConfigDir: string;
  token: string;
  /** The Supervisor's address on its network (the `supervisor` host entry). */
  supervisorAddress: string;
}

/** The mount target of each `map` entry the builder uses, by type. */
function mapTarget(entry: { type: string; path?: string } | string): { type: string; target: string; readOnly: boolean } {
  if (typeof entry === "string") {
    const [type = "", mode] = entry.split(":");
    return { type, target: `/${type}`, readOnly: mode !== "rw" };
  }
  const defaults: Record<string, string> = { homeassistant_config: "/homeassistant", config: "/config", share: "/share", ssl: "/ssl" };
  return { type: entry.type, target: entry.path ?? defaults[entry.type] ?? `/${entry.type}`, readOnly: (entry as { read_only?: boolean }).read_only ?? true };
}

export function supervisorRunArgs(opts: SupervisorRunOptions): string[] {
  const { manifest } = opts;
  const name = `addon_${manifest.slug}`;
  const args = ["run", "--rm", "--name", name, "--hostname", manifest.slug.replaceAll("_", "-")];
  if (manifest.stdin === true) args.push("--interactive");
  if (manifest.host_network === true) args.push("--network", "host");
  // `init: false`: no engine init; the image's own entry point is PID 1.
  args.push(manifest.init === false ? "--init=false" : "--init");
  args.push("--add-host", `supervisor:${opts.supervisorAddress}`, "--add-host", `hassio:${opts.supervisorAddress}`);
  args.push("--env", `SUPERVISOR_TOKEN=${opts.token}`, "--env", `HASSIO_TOKEN=${opts.token}`, "--env", "TZ=Etc/UTC");
  args.push("--volume", `${opts.dataDir}:/data:rw`);
  for (const entry of manifest.map ?? []) {
    const { type, target, readOnly } = mapTarget(entry);
    if (type !== "homeassistant_config") throw new Error(`the image check maps only homeassistant_config; config.yaml maps ${type} too`);
    args.push("--volume", `${opts.homeAssistantConfigDir}:${target}:${readOnly ? "ro" : "rw"}`);
  }
  args.push("--security-opt", "seccomp=unconfined", "--oom-score-adj", "200", ...opts.ulimits, opts.image);
  return args;
}

export interface RunningAddon {
  name: string;
  child: ChildProcessWithoutNullStreams;
  stdout: string[];
  stderr: string[];
  exited: Promise<number | null>;
  /** Writes one line to the add-on's stdin, as `hassio.addon_stdin` does. */
  writeStdin(line: string): void;
  /** Stops it as the Supervisor does (SIGTERM, SIGKILL after the add-on's timeout); resolves with the milliseconds it took. */
  stop(): Promise<number>;
  /** Removes the container whatever its state (cleanup). */
  remove(): Promise<void>;
}

export function startAddon(opts: SupervisorRunOptions): RunningAddon {
  const [podman = "podman", ...global] = opts.podman;
  const args = supervisorRunArgs(opts);
  const name = `addon_${opts.manifest.slug}`;
  const child = spawn(podman, [...global, ...args], { stdio: ["pipe", "pipe", "pipe"] });
  const stdout: string[] = [];
  const stderr: string[] = [];
  child.stdout.on("data", (d: Buffer) => stdout.push(d.toString("utf8")));
  child.stderr.on("data", (d: Buffer) => stderr.push(d.toString("utf8")));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => { resolve(code); }));
  const timeout = opts.manifest.timeout ?? 10;
  return {
    name,
    child,
    stdout,
    stderr,
    exited,
    writeStdin: (line) => { child.stdin.write(`${line}\n`); },
    stop: async () => {
      const started = Date.now();
      await run(podman, [...global, "stop", "--time", String(timeout), name], { timeout: (timeout + 30) * 1000 });
      await exited;
      return Date.now() - started;
    },
    remove: async () => {
      await run(podman, [...global, "rm", "--force", "--time", "0", name]).catch(() => undefined);
      child.kill("SIGKILL");
    },
  };
}

/** Runs a command in a throwaway container of the image (for looking inside it). */
export async function inImage(podman: readonly string[], ulimits: readonly string[], image: string, script: string): Promise<string> {
  const [bin = "podman", ...global] = podman;
  const { stdout } = await run(bin, [...global, "run", "--rm", "--network", "none", ...ulimits, "--entrypoint", "/bin/bash", image, "-c", script], { maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}
