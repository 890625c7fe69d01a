/**
 * The `--device` value handed to `esphome upload/run/logs`.
 *
 * The port reaches a subprocess argv, so it is validated up front (Device
 * Builder's `_validate_port`): a typo such as `192.168.1.300` must fail with
 * `invalid_args` here rather than as a DNS error minutes into a job.
 */
import { isIP } from "node:net";
import { invalidArgs } from "../errors.ts";

/**
 * How the CLI will treat a port: `auto` (empty: let esphome pick), `ota` (the
 * magic `OTA` value: the device's configured address), `serial`, or `network`
 * (an explicit IP or hostname, also uploaded over the air).
 */
export type PortKind = "auto" | "ota" | "serial" | "network";

/** Longest serial path accepted (a file name limit, far above any real tty path). */
const MAX_SERIAL_PATH = 255;
/** Longest DNS name (RFC 1035), without the optional trailing dot. */
const MAX_HOSTNAME = 253;

const HOSTNAME_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;
/** Digits and dots only: the user meant an IPv4 address, so it must parse as one. */
const IPV4_SHAPED_RE = /^[0-9.]+$/;
/** C0 controls, DEL and C1 controls (NUL included). */
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Same order as esphome's `get_port_type`: a leading `/` or `COM` means serial
 * (so, as upstream, an upper-case host name starting `COM` counts as serial).
 */
export function classifyPort(port: string): PortKind {
  if (port === "") return "auto";
  if (port === "OTA") return "ota";
  if (port.startsWith("/") || port.startsWith("COM")) return "serial";
  return "network";
}

export function isSerialPort(port: string): boolean {
  return classifyPort(port) === "serial";
}

const ACCEPTED =
  'expected "" (auto), "OTA", a serial port (/dev/... or COMn), an IPv4/IPv6 address or a host name';

/** Returns the port unchanged when acceptable; otherwise throws `invalid_args`. */
export function validatePort(port: unknown): string {
  if (typeof port !== "string") {
    throw invalidArgs(`port must be a string (${ACCEPTED})`);
  }
  const shown = JSON.stringify(port);
  const kind = classifyPort(port);
  switch (kind) {
    case "auto":
    case "ota":
      return port;
    case "serial":
      if (port.length > MAX_SERIAL_PATH) {
        throw invalidArgs(`invalid port ${shown}: serial port path longer than ${MAX_SERIAL_PATH} characters`);
      }
      if (CONTROL_RE.test(port)) {
        throw invalidArgs(`invalid port ${shown}: serial port path contains control characters`);
      }
      return port;
    case "network":
      return validateNetworkPort(port, shown);
  }
}

function validateNetworkPort(port: string, shown: string): string {
  if (isIP(port) !== 0) return port;
  // IP-shaped input that failed to parse is a typo, never a host name to look up.
  if (IPV4_SHAPED_RE.test(port)) {
    throw invalidArgs(`invalid port ${shown}: not a valid IPv4 address (${ACCEPTED})`);
  }
  if (port.includes(":")) {
    throw invalidArgs(`invalid port ${shown}: not a valid IPv6 address (${ACCEPTED})`);
  }
  const host = port.endsWith(".") ? port.slice(0, -1) : port;
  if (host.length > MAX_HOSTNAME) {
    throw invalidArgs(`invalid port ${shown}: host name longer than ${MAX_HOSTNAME} characters`);
  }
  if (!HOSTNAME_RE.test(host)) {
    throw invalidArgs(`invalid port ${shown}: ${ACCEPTED}`);
  }
  return port;
}

/**
 * The `--device` an upload gets. ESPHome resolves `OTA` from the YAML's network block
 * (`use_address`, else `<name>.local`); a host-platform YAML has none, so ESPHome cannot
 * ("no remote device"), and the builder names the device's address instead. That is what
 * Home Assistant's update entity sends through the legacy API (`/upload` with port `OTA`).
 */
export function uploadTarget(port: string, device: { platform: string | null; address: string } | undefined): string {
  return port === "OTA" && device?.platform === "host" ? device.address : port;
}
