/**
 * Serial ports of this machine for the port picker, read from sysfs the way
 * pyserial's `list_ports_linux` does (no native module, no udev dependency).
 *
 * Only ports with a device node under `/dev` are returned: in a container
 * (the HA add-on) sysfs shows every host port, but only mapped ones can be
 * opened.
 */
import fsp from "node:fs/promises";
import path from "node:path";

import type { SerialPort } from "../api/wire.ts";

export type { SerialPort };

/** tty names that can be real UARTs; virtual consoles and ptys are never offered. */
const PORT_NAME_RE = /^tty(?:USB|ACM|AMA|S)\d+$/;
/** FTDI, Prolific, Silicon Labs CP210x, WCH CH34x. */
const BRIDGE_VIDS = new Set([0x0403, 0x067b, 0x10c4, 0x1a86]);
const ESPRESSIF_VID = 0x303a;
/** How far above the tty's device dir the USB device dir may sit (usb-serial port dir, then interface). */
const MAX_USB_HOPS = 4;

export function serialPortHint(vid: number | null): SerialPort["hint"] {
  if (vid === ESPRESSIF_VID) return "esp";
  if (vid !== null && BRIDGE_VIDS.has(vid)) return "bridge";
  return null;
}

async function readAttr(dir: string, name: string): Promise<string | null> {
  try {
    const text = (await fsp.readFile(path.join(dir, name), "utf8")).trim();
    return text === "" ? null : text;
  } catch {
    return null;
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await fsp.stat(p);
    return true;
  } catch {
    return false;
  }
}

function parseHexId(text: string | null): number | null {
  return text !== null && /^[0-9a-f]{4}$/i.test(text) ? Number.parseInt(text, 16) : null;
}

/**
 * The 8250 driver registers a fixed number of `ttyS*` (often 4 or 32) whether
 * or not a UART exists. The serial core reports their `type` as 0
 * (PORT_UNKNOWN); where `type` is unreadable, a port whose device sits under
 * the `serial8250` platform device is treated as a placeholder (real UARTs
 * hang off pnp/pci/amba nodes). pyserial's "subsystem is platform" rule is not
 * used: since Linux 6.x placeholders sit on the `serial-base` bus instead.
 */
async function isPlaceholderUart(ttyDir: string, devicePath: string): Promise<boolean> {
  const type = await readAttr(ttyDir, "type");
  if (type !== null) return type === "0";
  return devicePath.split(path.sep).some((part) => part === "serial8250" || part.startsWith("serial8250:"));
}

interface UsbInfo {
  vid: number | null;
  pid: number | null;
  product: string | null;
  manufacturer: string | null;
}

/**
 * The USB device dir is the nearest ancestor of the tty's device holding
 * `idVendor` (ttyACM: device = interface, one hop; ttyUSB: device =
 * usb-serial port dir, two hops). Stays inside `sysRoot`.
 */
async function findUsbInfo(devicePath: string, sysRoot: string): Promise<UsbInfo | null> {
  let dir = devicePath;
  for (let hop = 0; hop <= MAX_USB_HOPS; hop++) {
    const vidText = await readAttr(dir, "idVendor");
    if (vidText !== null) {
      return {
        vid: parseHexId(vidText),
        pid: parseHexId(await readAttr(dir, "idProduct")),
        product: await readAttr(dir, "product"),
        manufacturer: await readAttr(dir, "manufacturer"),
      };
    }
    const parent = path.dirname(dir);
    if (!parent.startsWith(sysRoot + path.sep)) break;
    dir = parent;
  }
  return null;
}

async function probe(name: string, sysRoot: string, devRoot: string): Promise<SerialPort | null> {
  const ttyDir = path.join(sysRoot, "class", "tty", name);
  let devicePath: string;
  try {
    devicePath = await fsp.realpath(path.join(ttyDir, "device"));
  } catch {
    return null; // no `device` link: a virtual tty
  }
  const port = path.join(devRoot, name);
  if (!(await exists(port))) return null;
  if (name.startsWith("ttyS") && (await isPlaceholderUart(ttyDir, devicePath))) return null;

  const usb = await findUsbInfo(devicePath, sysRoot);
  if (usb === null) {
    return { port, desc: port, vid: null, pid: null, hint: null };
  }
  return {
    port,
    desc: usb.product ?? usb.manufacturer ?? port,
    vid: usb.vid,
    pid: usb.pid,
    hint: serialPortHint(usb.vid),
  };
}

/**
 * Lists serial ports, naturally sorted by path (ttyUSB2 before ttyUSB10).
 * Returns [] off Linux or without sysfs; never throws. `sysRoot`/`devRoot`
 * (default `/sys`, `/dev`) let tests use a fake tree, which also bypasses the
 * platform check.
 */
export async function listSerialPorts(opts: { sysRoot?: string; devRoot?: string } = {}): Promise<SerialPort[]> {
  if (opts.sysRoot === undefined && process.platform !== "linux") return [];
  const devRoot = opts.devRoot ?? "/dev";
  let sysRoot: string;
  let names: string[];
  try {
    // Canonical root so the ancestor walk can compare resolved paths.
    sysRoot = await fsp.realpath(opts.sysRoot ?? "/sys");
    names = await fsp.readdir(path.join(sysRoot, "class", "tty"));
  } catch {
    return [];
  }
  const ports = await Promise.all(
    names.filter((n) => PORT_NAME_RE.test(n)).map((n) => probe(n, sysRoot, devRoot).catch(() => null)),
  );
  return ports
    .filter((p): p is SerialPort => p !== null)
    .sort((a, b) => a.port.localeCompare(b.port, "en", { numeric: true }));
}
