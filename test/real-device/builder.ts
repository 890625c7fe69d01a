/**
 * A builder process running the real ESPHome (`node src/main.ts --esphome <real>`), on
 * the loopback without mDNS, for a whole suite (started in `beforeAll`, stopped in
 * `afterAll`), and a way to run one job through its API and keep what it streamed.
 */
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import type { FirmwareJob } from "../../src/firmware/job.ts";
import { ApiClient, type Frame } from "../helpers/api-client.ts";
import { NODE_BIN } from "../helpers/netns.ts";
import { REAL_ESPHOME, ROOT } from "./esphome.ts";

export interface RealBuilder {
  child: ChildProcess;
  port: number;
  peerLinkPort: number;
  api: ApiClient;
  stderr: string[];
  /** SIGTERM (the builder cancels its jobs and their process groups), SIGKILL after 10 s. */
  stop(): Promise<void>;
}

export interface RealBuilderOptions {
  label?: string;
  extraArgs?: string[];
  env?: Record<string, string>;
  /** The ESPHome executable (default: the pinned real one). */
  esphome?: string;
  /**
   * Run inside this network namespace (e.g. beside a device and a Home Assistant), listening on
   * all of its addresses at `port`; the tests reach it at `reachAt` (the namespace's address).
   */
  netns?: { ns: string; reachAt: string; port: number };
}

export async function startRealBuilder(configDir: string, opts: RealBuilderOptions = {}): Promise<RealBuilder> {
  const args = [
    path.join(ROOT, "src", "main.ts"),
    "--config-dir", configDir,
    ...(opts.netns === undefined ? ["--port", "0"] : ["--host", "0.0.0.0", "--port", String(opts.netns.port)]),
    "--peer-link-port", "0",
    "--peer-link-host", "127.0.0.1",
    "--esphome", opts.esphome ?? REAL_ESPHOME,
    "--no-mdns",
    "--label", opts.label ?? "real-esphome",
    "--log-level", "warning",
    ...(opts.extraArgs ?? []),
  ];
  const [command, argv] = opts.netns === undefined ? [NODE_BIN, args] : ["ip", ["netns", "exec", opts.netns.ns, NODE_BIN, ...args]];
  const child = spawn(command, argv, { env: { ...process.env, ...opts.env }, stdio: ["ignore", "pipe", "pipe"] });
  const stderr: string[] = [];
  child.stderr.on("data", (d: Buffer) => stderr.push(d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => { resolve(); }));
  const listening = await new Promise<{ port: number; peer_link_port: number }>((resolve, reject) => {
    let buf = "";
    child.stdout.on("data", (d: Buffer) => {
      buf += d.toString();
      const line = buf.split("\n").find((l) => l.includes('"listening"'));
      if (line !== undefined) resolve(JSON.parse(line) as { port: number; peer_link_port: number });
    });
    void exited.then(() => { reject(new Error(`builder exited: ${stderr.join("")}`)); });
  });
  const api = await ApiClient.connect(listening.port, opts.netns === undefined ? {} : { host: opts.netns.reachAt });
  return {
    child,
    port: listening.port,
    peerLinkPort: listening.peer_link_port,
    api,
    stderr,
    stop: async () => {
      api.close();
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const forced = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(forced);
    },
  };
}

/** One item of a job's stream, in the order it came. */
export type Streamed = { kind: "output"; line: string } | { kind: "progress"; progress: number };

export interface JobRun {
  job: FirmwareJob;
  streamed: Streamed[];
  result: { status: string; exit_code: number | null; error: string | null };
  final: FirmwareJob;
  ms: number;
}

/** Runs a job command and follows it to its end (`firmware/follow_job`). */
export async function runJob(api: ApiClient, command: string, args: Record<string, unknown>, timeoutMs: number, onStream?: (s: Streamed, job: FirmwareJob) => void): Promise<JobRun> {
  const t0 = performance.now();
  const job = await api.call<FirmwareJob>(command, args);
  const streamed: Streamed[] = [];
  const follow = api.stream("firmware/follow_job", { job_id: job.job_id });
  let seen = 0;
  const collect = (f: Frame): void => {
    const data = f.data as { line?: string; progress?: number } | undefined;
    const item: Streamed | null =
      f.event === "output" && typeof data?.line === "string" ? { kind: "output", line: data.line }
      : f.event === "progress" && typeof data?.progress === "number" ? { kind: "progress", progress: data.progress }
      : null;
    if (item === null) return;
    streamed.push(item);
    onStream?.(item, job);
  };
  const resultFrame = await follow.until((f) => {
    for (; seen < follow.frames.length; seen++) collect(follow.frames[seen] as Frame);
    return f.event === "result";
  }, timeoutMs);
  for (; seen < follow.frames.length; seen++) collect(follow.frames[seen] as Frame);
  const ms = performance.now() - t0;
  const final = await api.call<FirmwareJob>("firmware/get_job", { job_id: job.job_id });
  return { job, streamed, result: resultFrame.data as JobRun["result"], final, ms };
}

/** The streamed output as one text (for `toContain`). */
export function outputText(run: Pick<JobRun, "streamed">): string {
  return run.streamed.map((s) => (s.kind === "output" ? s.line : "")).join("");
}

/** Pairs offloader `a` with build server `b` through both panels' API and waits until `a` sees `b` connected and idle; returns b's pin. */
export async function pairBuilders(a: RealBuilder, b: RealBuilder): Promise<string> {
  await b.api.call("remote_build/set_pairing_window", { open: true });
  const preview = await a.api.call<{ pin_sha256: string }>("remote_build/preview_pair", { hostname: "127.0.0.1", port: b.peerLinkPort });
  await a.api.call("remote_build/request_pair", { hostname: "127.0.0.1", port: b.peerLinkPort, pin_sha256: preview.pin_sha256 });
  const id = (await a.api.call<{ dashboard_id: string }>("remote_build/get_identity")).dashboard_id;
  await b.api.call("remote_build/approve_peer", { dashboard_id: id });
  const deadline = Date.now() + 20_000;
  for (;;) {
    const s = await a.api.call<{ pairings: { connected: boolean; idle: boolean | null }[] }>("remote_build/get_offloader_settings");
    if (s.pairings[0]?.connected === true && s.pairings[0].idle === true) return preview.pin_sha256;
    if (Date.now() > deadline) throw new Error("the offloader did not see the build server connected and idle");
    await new Promise((r) => setTimeout(r, 50));
  }
}
