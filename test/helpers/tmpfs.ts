/**
 * A real small disk for disk-full tests: a tmpfs mounted in a mount namespace
 * of its own (`unshare --mount`, which needs root), so the machine's mount
 * table never changes. A `sleep` holds the namespace open; this process (and
 * a builder it starts) reach the tmpfs through `/proc/<pid>/root/<dir>`, the
 * namespace's view of the folder. Killing the holder after the test unmounts
 * it and frees its memory.
 */
import { spawn, execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { open, readdir, rm, stat, statfs, truncate } from "node:fs/promises";
import path from "node:path";
import { onTestFinished } from "vitest";
import { tempDir } from "./tmp.ts";

/** Null when a tmpfs in a private mount namespace can be made here, else why not. */
export function tmpfsUnavailableReason(): string | null {
  if (process.platform !== "linux") return `mount namespaces need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return "mounting a tmpfs needs root (run the tests as root, as CI does)";
  if (!existsSync("/usr/bin/unshare") && !existsSync("/bin/unshare")) return "`unshare` (util-linux) is not installed";
  return null;
}

export interface SmallDisk {
  /** The tmpfs, as this process (and any process) reaches it. */
  readonly root: string;
  /** Pid of the process holding the namespace. */
  readonly holder: number;
  /** Writes a filler file until the disk answers ENOSPC. */
  fill(): Promise<void>;
  /** Deletes the filler: space is back. */
  free(): Promise<void>;
  /** Gives back this many bytes of the filler (whole pages: tmpfs counts 4 KiB pages). */
  release(bytes: number): Promise<void>;
  /** Remounts the tmpfs read-only (or back to read-write). */
  setReadOnly(readOnly: boolean): void;
  /** Bytes still free. */
  available(): Promise<number>;
  /** Temp files (`.<name>.<hex>.tmp`) anywhere on the disk. */
  tempFiles(): Promise<string[]>;
}

const FILLER = ".filler";

/** Mounts a tmpfs of `sizeKiB` in a new mount namespace; it goes away after the test. */
export async function smallDisk(sizeKiB: number): Promise<SmallDisk> {
  const dir = await tempDir("esphome-tmpfs-");
  const holder = spawn(
    "unshare",
    ["--mount", "--propagation", "private", "sh", "-c", 'mount -t tmpfs -o "size=$1k,mode=0755" tmpfs "$2" && echo mounted && exec sleep 3600', "sh", String(sizeKiB), dir],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const pid = holder.pid;
  if (pid === undefined) throw new Error("could not start unshare");
  const stderr: string[] = [];
  holder.stderr.on("data", (d: Buffer) => stderr.push(d.toString()));
  await new Promise<void>((resolve, reject) => {
    holder.stdout.on("data", (d: Buffer) => {
      if (d.toString().includes("mounted")) resolve();
    });
    holder.on("exit", (code) => { reject(new Error(`mounting the tmpfs failed (${code}): ${stderr.join("")}`)); });
  });
  onTestFinished(async () => {
    if (holder.exitCode !== null || holder.signalCode !== null) return;
    const exited = new Promise((r) => holder.once("exit", r));
    holder.kill("SIGKILL");
    await exited;
  });
  const root = `/proc/${pid}/root${dir}`;
  const filler = path.join(root, FILLER);
  return {
    root,
    holder: pid,
    fill: async () => {
      const handle = await open(filler, "a");
      const chunk = Buffer.alloc(64 * 1024, 0x55);
      try {
        for (;;) {
          try {
            await handle.write(chunk);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
            // The last partial page: smaller writes until not even one byte fits.
            for (let size = chunk.length >> 1; size >= 1; size >>= 1) {
              try {
                for (;;) await handle.write(chunk.subarray(0, size));
              } catch (inner) {
                if ((inner as NodeJS.ErrnoException).code !== "ENOSPC") throw inner;
              }
            }
            return;
          }
        }
      } finally {
        await handle.close();
      }
    },
    free: async () => {
      await rm(filler, { force: true });
    },
    release: async (bytes) => {
      const { size } = await stat(filler);
      await truncate(filler, Math.max(0, size - bytes));
    },
    setReadOnly: (readOnly) => {
      execFileSync("nsenter", ["--target", String(pid), "--mount", "mount", "-o", `remount,${readOnly ? "ro" : "rw"}`, dir], { stdio: "pipe" });
    },
    available: async () => {
      const s = await statfs(root);
      return s.bavail * s.bsize;
    },
    tempFiles: async () => {
      const found: string[] = [];
      const walk = async (d: string): Promise<void> => {
        for (const entry of await readdir(d, { withFileTypes: true })) {
          const p = path.join(d, entry.name);
          if (entry.isDirectory()) await walk(p);
          else if (entry.name.endsWith(".tmp")) found.push(path.relative(root, p));
        }
      };
      await walk(root);
      return found;
    },
  };
}
