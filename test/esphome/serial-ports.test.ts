import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { listSerialPorts, serialPortHint } from "../../src/esphome/serial-ports.ts";

/*
 * A fake sysfs shaped like the kernel's: /sys/class/tty/<name> is a relative
 * symlink into /sys/devices/..., whose `device` link points at the parent
 * device (the usb-serial port dir for ttyUSB, the USB interface for ttyACM).
 */
let root: string;
let sys: string;
let dev: string;

beforeEach(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), "esphome-serial-"));
  sys = path.join(root, "sys");
  dev = path.join(root, "dev");
  await fs.mkdir(path.join(sys, "class", "tty"), { recursive: true });
  await fs.mkdir(path.join(sys, "bus", "usb-serial"), { recursive: true });
  await fs.mkdir(path.join(sys, "bus", "usb"), { recursive: true });
  await fs.mkdir(dev, { recursive: true });
});

afterEach(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

/** Relative symlink `from -> to`, as sysfs uses. */
async function link(from: string, to: string): Promise<void> {
  await fs.mkdir(path.dirname(from), { recursive: true });
  await fs.symlink(path.relative(path.dirname(from), to), from);
}

async function attrs(dir: string, values: Record<string, string>): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  for (const [name, value] of Object.entries(values)) await fs.writeFile(path.join(dir, name), `${value}\n`);
}

/** Registers a tty class device under `parent` (absolute, inside sys) and its /dev node. */
async function tty(name: string, parent: string, opts: { devNode?: boolean; type?: string } = {}): Promise<void> {
  const classDir = path.join(parent, "tty", name);
  await fs.mkdir(classDir, { recursive: true });
  await link(path.join(classDir, "device"), parent);
  if (opts.type !== undefined) await attrs(classDir, { type: opts.type });
  await link(path.join(sys, "class", "tty", name), classDir);
  if (opts.devNode ?? true) await fs.writeFile(path.join(dev, name), "");
}

const USB_ROOT = "devices/pci0000:00/0000:00:14.0/usb1";

async function usbDevice(busPath: string, ids: Record<string, string>): Promise<{ device: string; iface: string }> {
  const device = path.join(sys, USB_ROOT, busPath);
  await attrs(device, { bNumInterfaces: " 1", ...ids });
  const iface = path.join(device, `${busPath}:1.0`);
  await fs.mkdir(iface, { recursive: true });
  await link(path.join(iface, "subsystem"), path.join(sys, "bus", "usb"));
  return { device, iface };
}

/** A usb-serial driver (cp210x, ftdi_sio, ch341): ttyUSBn hangs off a port dir below the interface. */
async function usbSerial(name: string, busPath: string, ids: Record<string, string>, opts: { devNode?: boolean } = {}) {
  const { iface } = await usbDevice(busPath, ids);
  await attrs(iface, { interface: ids.product ?? "" });
  const portDir = path.join(iface, name);
  await fs.mkdir(portDir, { recursive: true });
  await link(path.join(portDir, "subsystem"), path.join(sys, "bus", "usb-serial"));
  await tty(name, portDir, opts);
}

/** A CDC-ACM device (Espressif USB-Serial/JTAG, RP2040): ttyACMn hangs off the interface itself. */
async function usbAcm(name: string, busPath: string, ids: Record<string, string>) {
  const { iface } = await usbDevice(busPath, ids);
  await tty(name, iface);
}

describe("listSerialPorts (fake sysfs)", () => {
  it("reports a CP210x bridge with its product, ids and the bridge hint", async () => {
    await usbSerial("ttyUSB0", "1-1", {
      idVendor: "10c4",
      idProduct: "ea60",
      product: "CP2102N USB to UART Bridge Controller",
      manufacturer: "Silicon Labs",
      serial: "0001",
    });
    expect(await listSerialPorts({ sysRoot: sys, devRoot: dev })).toEqual([
      {
        port: path.join(dev, "ttyUSB0"),
        desc: "CP2102N USB to UART Bridge Controller",
        vid: 0x10c4,
        pid: 0xea60,
        hint: "bridge",
      },
    ]);
  });

  it("reports Espressif native USB-Serial/JTAG (303a:1001) with the esp hint", async () => {
    await usbAcm("ttyACM0", "1-2", {
      idVendor: "303a",
      idProduct: "1001",
      product: "USB JTAG/serial debug unit",
      manufacturer: "Espressif",
    });
    expect(await listSerialPorts({ sysRoot: sys, devRoot: dev })).toEqual([
      { port: path.join(dev, "ttyACM0"), desc: "USB JTAG/serial debug unit", vid: 0x303a, pid: 0x1001, hint: "esp" },
    ]);
  });

  it("gives an unknown vendor no hint, and falls back to manufacturer, then the path, for desc", async () => {
    await usbAcm("ttyACM1", "1-3", { idVendor: "2e8a", idProduct: "000a", manufacturer: "Raspberry Pi" });
    await usbAcm("ttyACM2", "1-4", { idVendor: "1234", idProduct: "zzzz" });
    expect(await listSerialPorts({ sysRoot: sys, devRoot: dev })).toEqual([
      { port: path.join(dev, "ttyACM1"), desc: "Raspberry Pi", vid: 0x2e8a, pid: 0x000a, hint: null },
      { port: path.join(dev, "ttyACM2"), desc: path.join(dev, "ttyACM2"), vid: 0x1234, pid: null, hint: null },
    ]);
  });

  it("recognises every bridge vendor", () => {
    for (const vid of [0x0403, 0x067b, 0x10c4, 0x1a86]) expect(serialPortHint(vid)).toBe("bridge");
    expect(serialPortHint(0x303a)).toBe("esp");
    expect(serialPortHint(0x2e8a)).toBeNull();
    expect(serialPortHint(null)).toBeNull();
  });

  it("keeps a real on-board UART but skips serial8250 placeholders", async () => {
    // Real 16550A on a PC (type 4), on the newer serial-base layout.
    await tty("ttyS0", path.join(sys, "devices/pnp0/00:01/00:01:0/00:01:0.0"), { type: "4" });
    // Placeholder reported by the serial core as PORT_UNKNOWN.
    await tty("ttyS1", path.join(sys, "devices/platform/serial8250/serial8250:0/serial8250:0.1"), { type: "0" });
    // Older kernels: no readable type, device is the serial8250 platform device itself.
    await tty("ttyS2", path.join(sys, "devices/platform/serial8250"));
    // Raspberry Pi PL011 (amba), no USB ids.
    await tty("ttyAMA0", path.join(sys, "devices/platform/soc/fe201000.serial"));

    expect(await listSerialPorts({ sysRoot: sys, devRoot: dev })).toEqual([
      { port: path.join(dev, "ttyAMA0"), desc: path.join(dev, "ttyAMA0"), vid: null, pid: null, hint: null },
      { port: path.join(dev, "ttyS0"), desc: path.join(dev, "ttyS0"), vid: null, pid: null, hint: null },
    ]);
  });

  it("skips virtual ttys, other tty kinds, and ports without a /dev node", async () => {
    const virtualDir = path.join(sys, "devices/virtual/tty");
    for (const name of ["tty0", "console", "ptmx", "ttyUSB7"]) {
      await fs.mkdir(path.join(virtualDir, name), { recursive: true });
      await link(path.join(sys, "class", "tty", name), path.join(virtualDir, name));
      await fs.writeFile(path.join(dev, name), "");
    }
    // A Bluetooth rfcomm port has a device, but is not a flashing target.
    await tty("rfcomm0", path.join(sys, "devices/virtual/bluetooth/hci0"));
    // A USB adapter the container was not given (sysfs shows it, /dev does not).
    await usbSerial("ttyUSB3", "1-5", { idVendor: "1a86", idProduct: "7523", product: "USB Serial" }, { devNode: false });
    expect(await listSerialPorts({ sysRoot: sys, devRoot: dev })).toEqual([]);
  });

  it("sorts ports naturally", async () => {
    for (const [i, name] of ["ttyUSB10", "ttyUSB2", "ttyACM0"].entries()) {
      await usbSerial(name, `1-${i + 1}`, { idVendor: "0403", idProduct: "6001", product: "FT232R USB UART" });
    }
    const ports = await listSerialPorts({ sysRoot: sys, devRoot: dev });
    expect(ports.map((p) => path.basename(p.port))).toEqual(["ttyACM0", "ttyUSB2", "ttyUSB10"]);
  });

  it("returns [] when sysfs is missing or has no tty class", async () => {
    expect(await listSerialPorts({ sysRoot: path.join(root, "nope"), devRoot: dev })).toEqual([]);
    await fs.rm(path.join(sys, "class"), { recursive: true });
    expect(await listSerialPorts({ sysRoot: sys, devRoot: dev })).toEqual([]);
  });
});

describe("listSerialPorts (this machine)", () => {
  it("returns a well-formed list without throwing", async () => {
    const ports = await listSerialPorts();
    expect(Array.isArray(ports)).toBe(true);
    for (const p of ports) {
      expect(p.port.startsWith("/dev/")).toBe(true);
      expect(typeof p.desc).toBe("string");
      expect(["esp", "bridge", null]).toContain(p.hint);
    }
  });
});
