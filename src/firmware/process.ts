/**
 * Tracked subprocesses: each job's process runs in its own process group so a
 * cancel reaches everything it started (PlatformIO, the compiler, esptool).
 * Cancel is SIGTERM to the group, then SIGKILL after a grace period.
 */
import type { Readable } from "node:stream";
import { execa } from "execa";
import { LineSplitter, findErrorPattern } from "./output.ts";

export interface ChildHandle {
  readonly pid: number | undefined;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  /** Settles when the process has exited: never rejects. */
  readonly exited: Promise<{ exitCode: number | null; signal: string | null; spawnError: string | null }>;
}

export interface SpawnOptions {
  cwd: string;
  /** The child's whole environment (not merged with the builder's: see esphomeEnv). */
  env: Record<string, string>;
}

export type SpawnFn = (file: string, args: readonly string[], opts: SpawnOptions) => ChildHandle;

/** Spawns through execa: own process group, no stdin, streams not buffered. */
export const execaSpawn: SpawnFn = (file, args, opts) => {
  const child = execa(file, args, {
    cwd: opts.cwd,
    env: opts.env,
    extendEnv: false,
    detached: true,
    stdin: "ignore",
    buffer: false,
    reject: false,
    stripFinalNewline: false,
    cleanup: true,
  });
  const exited = child.then((result) => ({
    exitCode: result.exitCode ?? null,
    signal: result.signal ?? null,
    spawnError: result.failed && result.exitCode === undefined && result.signal === undefined
      ? (result.shortMessage ?? "the process could not be started")
      : null,
  }));
  return { pid: child.pid, stdout: child.stdout, stderr: child.stderr, exited };
};

export interface TrackedRunOptions {
  file: string;
  args: readonly string[];
  cwd: string;
  env: Record<string, string>;
  signal: AbortSignal;
  onLine: (line: string) => void;
  spawn?: SpawnFn;
  /** Time between SIGTERM and SIGKILL on cancel. */
  killGraceMs?: number;
  /** Told the process group's id right after the spawn. */
  onSpawn?: (pid: number) => void;
}

export interface TrackedRunResult {
  exitCode: number | null;
  signal: string | null;
  /** Why a run that exited 0 still failed, or why the spawn failed. */
  error: string | null;
}

export const KILL_GRACE_MS = 3000;

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is already gone
  }
}

/**
 * Runs one process to its end, feeding stdout and stderr line by line (each
 * stream split on its own, so lines never interleave mid-line) to `onLine`.
 */
export async function runTracked(opts: TrackedRunOptions): Promise<TrackedRunResult> {
  const spawn = opts.spawn ?? execaSpawn;
  if (opts.signal.aborted) return { exitCode: null, signal: null, error: "cancelled before start" };
  const child = spawn(opts.file, opts.args, { cwd: opts.cwd, env: opts.env });
  if (child.pid !== undefined) opts.onSpawn?.(child.pid);
  let errorPattern: string | null = null;
  const onLine = (line: string): void => {
    if (errorPattern === null) errorPattern = findErrorPattern(line);
    opts.onLine(line);
  };
  const drain = (stream: Readable | null): Promise<void> => {
    if (stream === null) return Promise.resolve();
    const splitter = new LineSplitter();
    return new Promise<void>((resolve) => {
      stream.on("data", (chunk: Buffer) => {
        for (const line of splitter.push(chunk)) onLine(line);
        // One read per turn of the event loop: a flooding process waits on its
        // full pipe while the builder answers everything else in between.
        stream.pause();
        setImmediate(() => {
          stream.resume();
        });
      });
      stream.on("error", () => {
        resolve();
      });
      stream.on("close", () => {
        for (const line of splitter.end()) onLine(line);
        resolve();
      });
    });
  };
  let killTimer: NodeJS.Timeout | undefined;
  const onAbort = (): void => {
    const pid = child.pid;
    if (pid === undefined) return;
    killGroup(pid, "SIGTERM");
    killTimer = setTimeout(() => {
      killGroup(pid, "SIGKILL");
    }, opts.killGraceMs ?? KILL_GRACE_MS);
  };
  opts.signal.addEventListener("abort", onAbort, { once: true });
  try {
    const [result] = await Promise.all([child.exited, drain(child.stdout), drain(child.stderr)]);
    if (result.spawnError !== null) return { exitCode: null, signal: null, error: result.spawnError };
    const error = result.exitCode === 0 ? errorPattern : null;
    return { exitCode: result.exitCode, signal: result.signal, error };
  } finally {
    opts.signal.removeEventListener("abort", onAbort);
    if (killTimer !== undefined) {
      // The group leader is gone; anything it left behind still gets the SIGKILL.
      const pid = child.pid;
      clearTimeout(killTimer);
      if (pid !== undefined) killGroup(pid, "SIGKILL");
    }
  }
}
