/** The process table from /proc: who runs in which session, and on what. */
import { readFileSync, readdirSync } from "node:fs";

export interface ProcessEntry {
  pid: number;
  /** `R`, `S`, `D`, `Z` (a zombie: exited, not yet reaped), ... */
  state: string;
  pgid: number;
  sid: number;
  comm: string;
  cmdline: string;
}

export function processTable(): ProcessEntry[] {
  const out: ProcessEntry[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      // The command name may hold spaces and parentheses: it ends at the last ')'.
      const close = stat.lastIndexOf(")");
      const fields = stat.slice(close + 2).split(" ");
      const cmdline = readFileSync(`/proc/${name}/cmdline`, "utf8").replaceAll("\0", " ").trim();
      out.push({
        pid: Number(name),
        state: fields[0] ?? "?",
        pgid: Number(fields[2]),
        sid: Number(fields[3]),
        comm: stat.slice(stat.indexOf("(") + 1, close),
        cmdline,
      });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Processes still running (not zombies) that match. */
export function liveProcesses(match: (p: ProcessEntry) => boolean): ProcessEntry[] {
  return processTable().filter((p) => p.state !== "Z" && match(p));
}
