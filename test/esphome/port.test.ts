import { describe, expect, it } from "vitest";
import { BuilderError, ErrorCode } from "../../src/errors.ts";
import { classifyPort, isSerialPort, uploadTarget, validatePort, type PortKind } from "../../src/esphome/port.ts";

describe("classifyPort", () => {
  const cases: [string, PortKind][] = [
    ["", "auto"],
    ["OTA", "ota"],
    ["/dev/ttyUSB0", "serial"],
    ["/dev/serial/by-id/usb-Espressif_USB_JTAG_serial_debug_unit-if00", "serial"],
    ["COM3", "serial"],
    ["192.168.1.10", "network"],
    ["kitchen.local", "network"],
    ["ota", "network"], // only the exact magic value means "the configured address"
  ];
  it.each(cases)("%j is %s", (port, kind) => {
    expect(classifyPort(port)).toBe(kind);
  });

  it("isSerialPort is true only for serial paths", () => {
    expect(isSerialPort("/dev/ttyACM0")).toBe(true);
    expect(isSerialPort("COM12")).toBe(true);
    expect(isSerialPort("OTA")).toBe(false);
    expect(isSerialPort("10.0.0.2")).toBe(false);
  });
});

describe("validatePort", () => {
  const accepted = [
    "",
    "OTA",
    "/dev/ttyUSB0",
    "/dev/cu.usbserial-0001",
    "/dev/serial/by-id/usb-Silicon_Labs_CP2102 USB_to_UART-if00-port0",
    "COM3",
    "192.168.1.10",
    "0.0.0.0",
    "::1",
    "fe80::1ff:fe23:4567:890a",
    "2001:db8::8a2e:370:7334",
    "kitchen",
    "kitchen.local",
    "kitchen.local.", // one trailing dot is the absolute DNS form
    "Living-Room.example.com",
    "a".repeat(63) + ".local",
    "esp-" + "0123456789",
  ];
  it.each(accepted)("accepts %j unchanged", (port) => {
    expect(validatePort(port)).toBe(port);
  });

  const rejected: [unknown, RegExp][] = [
    [undefined, /port must be a string/],
    [42, /port must be a string/],
    [null, /port must be a string/],
    ["192.168.1.300", /not a valid IPv4 address/],
    ["1.2.3", /not a valid IPv4 address/],
    ["1.2.3.4.5", /not a valid IPv4 address/],
    ["12345", /not a valid IPv4 address/],
    ["fe80::zz", /not a valid IPv6 address/],
    ["[::1]", /invalid port "\[::1\]"/],
    ["kitchen..local", /invalid port/],
    ["kitchen.local..", /invalid port/],
    ["-kitchen", /invalid port/],
    ["kitchen-", /invalid port/],
    ["kitchen_1.local", /invalid port/],
    ["a".repeat(64) + ".local", /invalid port/],
    ["a.".repeat(127) + "ab", /longer than 253/],
    [" OTA", /invalid port/],
    ["host name", /invalid port/],
    ["kitchen.local;rm -rf /", /invalid port/],
    ["--help", /invalid port/],
    ["/dev/ttyUSB0\u0000", /control characters/],
    ["/dev/tty\nUSB0", /control characters/],
    ["COM3\t", /control characters/],
    ["/" + "x".repeat(255), /longer than 255/],
  ];
  it.each(rejected)("rejects %j", (port, message) => {
    let caught: unknown;
    try {
      validatePort(port);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(BuilderError);
    expect((caught as BuilderError).code).toBe(ErrorCode.InvalidArgs);
    expect((caught as BuilderError).message).toMatch(message);
  });

  it("names the bad value and what is accepted", () => {
    expect(() => validatePort("kitchen_1")).toThrow(
      'invalid port "kitchen_1": expected "" (auto), "OTA", a serial port (/dev/... or COMn), an IPv4/IPv6 address or a host name',
    );
  });
});

describe("uploadTarget", () => {
  it("names a host-platform device's address for OTA, which ESPHome cannot resolve from its YAML", () => {
    expect(uploadTarget("OTA", { platform: "host", address: "127.0.0.1" })).toBe("127.0.0.1");
  });

  it("leaves OTA to ESPHome for every other platform, and explicit ports and auto alone", () => {
    expect(uploadTarget("OTA", { platform: "esp32", address: "kitchen.local" })).toBe("OTA");
    expect(uploadTarget("OTA", undefined)).toBe("OTA");
    expect(uploadTarget("", { platform: "host", address: "127.0.0.1" })).toBe("");
    expect(uploadTarget("10.0.0.7", { platform: "host", address: "127.0.0.1" })).toBe("10.0.0.7");
    expect(uploadTarget("/dev/ttyUSB0", { platform: "host", address: "127.0.0.1" })).toBe("/dev/ttyUSB0");
  });
});
