/**
 * A network namespace for real devices, reached from this (the root) namespace by
 * a veth pair of its own: `esbr-<tag>` here, `esbd-<tag>` inside, a random /29 in
 * 10.214.0.0/16 (here .1, the namespace .2, and .3 left empty: an address nothing
 * answers). A device program listens on 0.0.0.0, so it runs inside the namespace
 * and only this link can reach it; the real interfaces never see a packet from it
 * (the namespace has no other interface and no default route). IPv6 is off on both
 * ends, so the link makes no traffic of its own.
 *
 * `destroy()` deletes the namespace (and with it both veth ends); a last-resort
 * exit hook does the same for links a test left behind.
 */
import { execFileSync } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import { writeFileSync } from "node:fs";

function ip(args: string[]): string {
  return execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 10_000 });
}

export interface DeviceLink {
  /** Namespace name, `esb-dev-<tag>`. */
  ns: string;
  /** This namespace's end (what a builder outside reaches the devices from). */
  hostAddress: string;
  /** The namespace's address: where its devices listen. */
  deviceAddress: string;
  /** An address on the link that nothing answers (an unreachable device). */
  unusedAddress: string;
  destroy(): void;
}

const live = new Set<string>();
let hooked = false;

function remove(ns: string): void {
  try {
    ip(["netns", "del", ns]);
  } catch {
    // already gone
  }
  live.delete(ns);
}

/** A /29 in 10.214.0.0/16 that no interface here has an address in. */
function freeBlock(): number {
  const used = ip(["-4", "-o", "addr", "show"]);
  for (let attempt = 0; attempt < 50; attempt++) {
    const block = randomInt(0, 8192) * 8;
    const prefix = `10.214.${block >> 8}.`;
    const low = block & 0xff;
    const taken = [...used.matchAll(/inet (10\.214\.\d+\.)(\d+)\//g)].some((m) => m[1] === prefix && Number(m[2]) >= low && Number(m[2]) < low + 8);
    if (!taken) return block;
  }
  throw new Error("no free /29 in 10.214.0.0/16");
}

function ipv6Off(dev: string, ns?: string): void {
  const file = `/proc/sys/net/ipv6/conf/${dev}/disable_ipv6`;
  try {
    if (ns === undefined) writeFileSync(file, "1");
    else execFileSync("ip", ["netns", "exec", ns, "sh", "-c", `echo 1 > ${file}`], { stdio: "ignore", timeout: 10_000 });
  } catch {
    // no IPv6 in this kernel: nothing to turn off
  }
}

export function createDeviceLink(): DeviceLink {
  if (!hooked) {
    hooked = true;
    process.once("exit", () => {
      for (const ns of [...live]) remove(ns);
    });
  }
  const tag = randomBytes(3).toString("hex");
  const block = freeBlock();
  const base = `10.214.${block >> 8}.`;
  const low = block & 0xff;
  const hostDev = `esbr-${tag}`;
  const nsDev = `esbd-${tag}`;
  const link: DeviceLink = {
    ns: `esb-dev-${tag}`,
    hostAddress: `${base}${low + 1}`,
    deviceAddress: `${base}${low + 2}`,
    unusedAddress: `${base}${low + 3}`,
    destroy: () => {
      remove(link.ns);
    },
  };
  try {
    ip(["netns", "add", link.ns]);
    live.add(link.ns);
    ip(["link", "add", hostDev, "type", "veth", "peer", "name", nsDev, "netns", link.ns]);
    ipv6Off(hostDev);
    ipv6Off(nsDev, link.ns);
    ip(["addr", "add", `${link.hostAddress}/29`, "dev", hostDev]);
    ip(["link", "set", hostDev, "up"]);
    ip(["-n", link.ns, "addr", "add", `${link.deviceAddress}/29`, "dev", nsDev]);
    ip(["-n", link.ns, "link", "set", "lo", "up"]);
    ip(["-n", link.ns, "link", "set", nsDev, "up"]);
  } catch (err) {
    // The root end goes with the namespace only once it was moved there: delete it by name too.
    try {
      ip(["link", "del", hostDev]);
    } catch {
      // never created, or gone with the namespace
    }
    link.destroy();
    throw new Error(`creating the device namespace failed: ${String((err as { stderr?: unknown }).stderr ?? err)}`, { cause: err });
  }
  return link;
}
