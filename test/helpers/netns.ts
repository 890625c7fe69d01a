/**
 * Two "LAN hosts" for multicast tests: a pair of network namespaces joined by
 * a veth pair, created entirely inside the namespaces (the root namespace
 * never gets an interface, a route or a packet). Needs root and iproute2's
 * `ip netns`; `netnsUnavailableReason()` says why a test must be skipped.
 *
 * Namespaces are deleted by `destroy()`, and on process exit as a last
 * resort; deleting a namespace also deletes its end of the veth pair.
 */
import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import { existsSync } from "node:fs";
import path from "node:path";

const REPO = path.resolve(import.meta.dirname, "../..");
/** Node 24 from node_modules (the project's pinned runtime), else this process's node. */
export const NODE_BIN = existsSync(path.join(REPO, "node_modules/.bin/node"))
  ? path.join(REPO, "node_modules/.bin/node")
  : process.execPath;

function ip(args: string[]): string {
  return execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 10_000 });
}

function stderrOf(err: unknown): string {
  const e = err as { stderr?: unknown; message?: unknown };
  const text = typeof e.stderr === "string" && e.stderr !== "" ? e.stderr : String(e.message);
  return text.trim();
}

/** Null when namespaces can be made here, else a human reason to skip. */
export function netnsUnavailableReason(): string | null {
  if (process.platform !== "linux") return `network namespaces need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return "network namespaces need root (run the tests as root, as CI does)";
  try {
    ip(["-V"]);
  } catch {
    return "`ip` (iproute2) is not installed: apt-get install -y iproute2";
  }
  const probe = `esb-probe-${randomBytes(4).toString("hex")}`;
  try {
    ip(["netns", "add", probe]);
  } catch (err) {
    return `\`ip netns add\` failed (no CAP_SYS_ADMIN in this container?): ${stderrOf(err)}`;
  }
  try {
    ip(["netns", "del", probe]);
  } catch {
    // best effort
  }
  return null;
}

export interface LanPair {
  /** Namespace names. */
  nsA: string;
  nsB: string;
  /** Interface addresses (10.213.<x>.1 and .2, /24). */
  addrA: string;
  addrB: string;
  /** veth names inside each namespace. */
  devA: string;
  devB: string;
  destroy(): void;
}

const live = new Set<string>();
let exitHookInstalled = false;

function deleteNamespace(ns: string): void {
  try {
    ip(["netns", "del", ns]);
  } catch {
    // already gone
  }
  live.delete(ns);
}

/**
 * Two namespaces `esb-a-<rand>` / `esb-b-<rand>` joined by a veth pair,
 * addresses 10.213.<random x>.1/24 and .2/24, `lo` and the veth up, and a
 * 224.0.0.0/4 route on the veth so multicast has a way out inside each
 * namespace. Throws (after cleaning up) when any step fails.
 */
export function createLanPair(): LanPair {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once("exit", () => {
      for (const ns of [...live]) deleteNamespace(ns);
    });
  }
  const tag = randomBytes(3).toString("hex");
  const x = randomInt(1, 255);
  const pair: LanPair = {
    nsA: `esb-a-${tag}`,
    nsB: `esb-b-${tag}`,
    addrA: `10.213.${x}.1`,
    addrB: `10.213.${x}.2`,
    devA: "esbveth-a",
    devB: "esbveth-b",
    destroy: () => {
      deleteNamespace(pair.nsA);
      deleteNamespace(pair.nsB);
    },
  };
  try {
    ip(["netns", "add", pair.nsA]);
    live.add(pair.nsA);
    ip(["netns", "add", pair.nsB]);
    live.add(pair.nsB);
    // Created inside namespace A with its peer placed straight into B:
    // neither end ever exists in the root namespace.
    ip(["-n", pair.nsA, "link", "add", pair.devA, "type", "veth", "peer", "name", pair.devB, "netns", pair.nsB]);
    for (const [ns, dev, addr] of [
      [pair.nsA, pair.devA, pair.addrA],
      [pair.nsB, pair.devB, pair.addrB],
    ] as const) {
      ip(["-n", ns, "addr", "add", `${addr}/24`, "dev", dev]);
      ip(["-n", ns, "link", "set", "lo", "up"]);
      ip(["-n", ns, "link", "set", dev, "up"]);
      ip(["-n", ns, "route", "add", "224.0.0.0/4", "dev", dev]);
    }
  } catch (err) {
    pair.destroy();
    throw new Error(`creating the namespace pair failed: ${stderrOf(err)}`, { cause: err });
  }
  return pair;
}

/** A child process running inside a namespace: `ip netns exec <ns> <argv...>`. */
export function spawnInNetns(ns: string, argv: string[]): ChildProcessWithoutNullStreams {
  return spawn("ip", ["netns", "exec", ns, ...argv], { stdio: ["pipe", "pipe", "pipe"] });
}
