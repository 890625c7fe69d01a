/**
 * Where the tests' Home Assistant lives and how it is run: a Debian root filesystem
 * (`.venv/ha-root`, made by test/setup-ha.sh) with Home Assistant Core in `/opt/ha`, started
 * with `chroot` inside a network namespace of its own (test/real-device/network.ts), so that
 * nothing it does on the network (zeroconf's mDNS included) reaches a real interface.
 *
 * Each process gets a private mount namespace (`unshare --mount`) in which /proc, /dev and
 * /sys are mounted into the root and the test's configuration folder is bound to `/config`:
 * the mounts vanish with the process, and several Home Assistants can share the root.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { ROOT } from "../helpers/builder.ts";
import { createDeviceLink, type DeviceLink } from "../real-device/network.ts";

export const HA_ROOT = process.env.TEST_HA_ROOT ?? path.join(ROOT, ".venv", "ha-root");
/** The stamp test/setup-ha.sh writes last: `suite=... version=...`. */
const STAMP = path.join(HA_ROOT, ".ha-setup");
export const hassAvailable = existsSync(STAMP) && existsSync(path.join(HA_ROOT, "opt", "ha", "bin", "hass"));

/** The Home Assistant version and Debian suite the setup installed (from its stamp). */
export function installedHa(): { version: string; suite: string } {
  const stamp = readFileSync(STAMP, "utf8");
  return { version: /version=(\S+)/.exec(stamp)?.[1] ?? "?", suite: /suite=(\S+)/.exec(stamp)?.[1] ?? "?" };
}

/** The folder inside the root that the configuration folder is bound to. */
export const CONFIG_IN_ROOT = "/config";

const MOUNT_AND_CHROOT = `
root="$1"; config="$2"; shift 2
mount -t proc proc "$root/proc" && mount --rbind /dev "$root/dev" && mount --rbind /sys "$root/sys" \\
  && mkdir -p "$root${CONFIG_IN_ROOT}" && mount --bind "$config" "$root${CONFIG_IN_ROOT}" && exec chroot "$root" "$@"`;

const running = new Set<ChildProcess>();
let hooked = false;

const ROOT_ENV = { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", HOME: "/root", LANG: "C.UTF-8", TZ: "UTC" };

/**
 * Runs `argv` (paths inside the root) in the root, in namespace `ns`, with `configDir` (a
 * path on this machine) at /config. The returned process is the command itself once it
 * has started (`ip netns exec`, `unshare` and `chroot` exec, they do not fork): signals reach it.
 */
export function spawnInRoot(ns: string, configDir: string, argv: string[]): ChildProcess {
  if (!hooked) {
    hooked = true;
    // A test that dies leaves no Home Assistant behind (its namespace goes by the link's own hook).
    process.once("exit", () => {
      for (const child of running) child.kill("SIGKILL");
    });
  }
  const child = spawn("ip", ["netns", "exec", ns, "unshare", "--mount", "--propagation", "private", "--", "sh", "-c", MOUNT_AND_CHROOT, "sh", HA_ROOT, configDir, ...argv], {
    env: ROOT_ENV,
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  child.once("exit", () => running.delete(child));
  return child;
}

/**
 * A network namespace for Home Assistant (and whatever runs beside it: devices, builders):
 * the device link of the real-device kit, with multicast on `lo` and a 224.0.0.0/4 route
 * through it. Without them zeroconf fails to send, and Home Assistant's web sessions break.
 */
export function createHaLink(): DeviceLink {
  const link = createDeviceLink();
  try {
    execFileSync("ip", ["-n", link.ns, "link", "set", "lo", "multicast", "on"], { stdio: "ignore", timeout: 10_000 });
    execFileSync("ip", ["-n", link.ns, "route", "add", "224.0.0.0/4", "dev", "lo"], { stdio: "ignore", timeout: 10_000 });
  } catch (err) {
    link.destroy();
    throw err;
  }
  return link;
}
