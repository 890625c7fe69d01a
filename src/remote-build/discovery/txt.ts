/**
 * The TXT record of `_esphomebuilder._tcp` and what a browsed service may
 * become: encoding ours within DNS's limits, and reading others' fields with
 * every value validated and length-capped (nothing learned by mDNS is trusted;
 * see discovery.ts). Pure functions.
 */
import { isIP } from "node:net";
import type { DiscoveredHost } from "../../domain/remote-build.ts";
import { invalidArgs } from "../../errors.ts";
import { record } from "../../mdns/bonjour.ts";
import { isPin, parsePin } from "../transport/pin.ts";

/** bonjour-service's `type` for `_esphomebuilder._tcp.local` (with `protocol: "tcp"`). */
export const SERVICE_TYPE = "esphomebuilder";
export const SERVICE_PROTOCOL = "tcp";
/** At most this many discovered builders are kept; further new names are ignored. */
export const MAX_DISCOVERED_HOSTS = 64;
/** Longest string taken from a TXT value (in code points). */
export const MAX_TXT_STRING = 128;
/** At most this many addresses are kept per discovered builder. */
export const MAX_HOST_ADDRESSES = 16;
const MAX_TXT_ENTRIES = 128;
/** A DNS character-string holds at most 255 bytes (`key=value`). */
const MAX_TXT_ENTRY_BYTES = 255;
/** A DNS label (the instance name) holds at most 63 bytes. */
const MAX_LABEL_BYTES = 63;
const MAX_HOSTNAME_CHARS = 255;

const PORT_RE = /^[0-9]{1,5}$/;
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/gu;
// eslint-disable-next-line no-control-regex
const HAS_CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/u;

/** The TXT record this builder advertises. */
export interface DiscoveryTxt {
  server_version: string;
  esphome_version: string;
  friendly_name: string;
  /** Only while the peer-link listener is bound; always together with `remote_build_port`. */
  pin_sha256?: string;
  /** The port the peer-link listener actually bound. */
  remote_build_port?: number;
}

/** A TXT record read from the network, validated. */
export interface DecodedTxt {
  server_version: string;
  esphome_version: string;
  friendly_name: string;
  /** 64 lowercase hex digits, else null. */
  pin_sha256: string | null;
  /** 1..65535, else null. */
  remote_build_port: number | null;
}

// ---------------------------------------------------------------------------
// Pure helpers

function utf8Length(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

/** Drop control characters and keep at most `maxChars` code points. */
function cleanString(value: string, maxChars = MAX_TXT_STRING): string {
  const stripped = value.replace(CONTROL_RE, "");
  const points = Array.from(stripped);
  return points.length <= maxChars ? stripped : points.slice(0, maxChars).join("");
}

/** Trim whole code points until `key=value` fits one DNS character-string. */
function fitEntry(key: string, value: string): string {
  const budget = MAX_TXT_ENTRY_BYTES - utf8Length(key) - 1;
  if (utf8Length(value) <= budget) return value;
  const points = Array.from(value);
  while (points.length > 0 && utf8Length(points.join("")) > budget) points.pop();
  return points.join("");
}

export function isValidPort(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 1 && value <= 65535;
}

/**
 * The TXT key/values to publish. Strings are stripped of control characters
 * and capped (128 code points, and 255 bytes per `key=value`). A pin must be
 * 64 lowercase hex digits and the port 1..65535, and they come together
 * (both while the peer-link listener is bound, neither otherwise).
 */
export function encodeTxt(txt: DiscoveryTxt): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of ["server_version", "esphome_version", "friendly_name"] as const) {
    const value: unknown = txt[key];
    if (typeof value !== "string") throw invalidArgs(`TXT ${key} must be a string`);
    out[key] = fitEntry(key, cleanString(value));
  }
  const hasPin = txt.pin_sha256 !== undefined;
  const hasPort = txt.remote_build_port !== undefined;
  if (hasPin !== hasPort) throw invalidArgs("TXT pin_sha256 and remote_build_port go together");
  if (txt.pin_sha256 !== undefined && txt.remote_build_port !== undefined) {
    if (!isPin(txt.pin_sha256)) throw invalidArgs("TXT pin_sha256 must be a pin in canonical form: 64 lowercase hex digits");
    if (!isValidPort(txt.remote_build_port)) throw invalidArgs("TXT remote_build_port must be 1..65535");
    out.pin_sha256 = txt.pin_sha256;
    out.remote_build_port = String(txt.remote_build_port);
  }
  return out;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Bytes as UTF-8, or undefined when they are not valid UTF-8. */
function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/** A TXT value (string or bytes) as text; undefined for anything else or invalid UTF-8. */
function valueText(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (value instanceof Uint8Array) return decodeUtf8(value);
  return undefined;
}

/**
 * Key -> value from a TXT record in either form bonjour-service gives:
 * the raw entries (`rawTxt`: an array of `key=value` byte strings) or the
 * decoded object (`txt`). Keys are case-insensitive and the first
 * occurrence wins (RFC 6763 §6.4); a value that is not valid UTF-8 counts
 * as absent; an entry without `=` has no value.
 */
function txtEntries(record: unknown): Map<string, string | undefined> {
  const entries = new Map<string, string | undefined>();
  const put = (key: string, value: string | undefined): void => {
    const k = key.toLowerCase();
    if (k === "" || entries.has(k)) return;
    entries.set(k, value);
  };
  if (Array.isArray(record)) {
    for (const item of record.slice(0, MAX_TXT_ENTRIES)) {
      const bytes = typeof item === "string" ? Buffer.from(item, "utf8") : item instanceof Uint8Array ? item : undefined;
      if (bytes === undefined) continue;
      const eq = bytes.indexOf(0x3d);
      const keyBytes = eq === -1 ? bytes : bytes.subarray(0, eq);
      const key = decodeUtf8(keyBytes);
      if (key === undefined) continue;
      put(key, eq === -1 ? undefined : decodeUtf8(bytes.subarray(eq + 1)));
    }
  } else if (record !== null && typeof record === "object") {
    for (const [key, value] of Object.entries(record).slice(0, MAX_TXT_ENTRIES)) {
      put(key, valueText(value));
    }
  }
  return entries;
}

/** Validate a TXT record from the network (raw entries or bonjour-service's decoded object). */
export function decodeTxt(record: unknown): DecodedTxt {
  const entries = txtEntries(record);
  const str = (key: string): string => {
    const value = entries.get(key);
    return value === undefined ? "" : cleanString(value);
  };
  const pinRaw = entries.get("pin_sha256");
  const portRaw = entries.get("remote_build_port");
  const port = portRaw !== undefined && PORT_RE.test(portRaw) ? Number(portRaw) : null;
  return {
    server_version: str("server_version"),
    esphome_version: str("esphome_version"),
    friendly_name: str("friendly_name"),
    pin_sha256: parsePin(pinRaw),
    remote_build_port: port !== null && isValidPort(port) ? port : null,
  };
}

function isUsableAddress(value: unknown): value is string {
  if (typeof value !== "string" || value.length > 64) return false;
  const family = isIP(value);
  if (family === 4) {
    const first = Number(value.split(".")[0]);
    // 0/8 unspecified, 127/8 loopback, 169.254/16 link-local, 224/4 multicast and above.
    return first !== 0 && first !== 127 && first < 224 && !value.startsWith("169.254.");
  }
  if (family === 6) {
    const v = value.toLowerCase();
    if (v === "::" || v === "::1") return false;
    // fe80::/10 link-local (unusable without a zone), ff00::/8 multicast, IPv4-mapped.
    return !/^fe[89ab]/.test(v) && !v.startsWith("ff") && !v.startsWith("::ffff:");
  }
  return false;
}

export function isValidInstanceName(name: unknown): name is string {
  return (
    typeof name === "string" &&
    name.length > 0 &&
    utf8Length(name) <= MAX_LABEL_BYTES &&
    !name.includes(".") &&
    !HAS_CONTROL_RE.test(name)
  );
}


/**
 * A discovered builder from one of bonjour-service's browser services
 * (`{name, host, port, addresses, txt, rawTxt, referer, type, protocol}`),
 * or null when the service is not a usable builder advertisement (no or bad
 * name, bad port, another service type). TXT comes from `rawTxt` when
 * present (so invalid UTF-8 is seen), else from `txt`.
 */
export function hostFromService(service: unknown): DiscoveredHost | null {
  const s = record(service);
  if (s === undefined) return null;
  const { name, port } = s;
  if (!isValidInstanceName(name)) return null;
  if (!isValidPort(port)) return null;
  if (s.type !== undefined && s.type !== SERVICE_TYPE) return null;
  if (s.protocol !== undefined && s.protocol !== SERVICE_PROTOCOL) return null;

  let hostname = typeof s.host === "string" ? s.host : "";
  if (hostname.endsWith(".")) hostname = hostname.slice(0, -1);
  hostname = cleanString(hostname, MAX_HOSTNAME_CHARS);

  const addresses: string[] = [];
  const addrList = Array.isArray(s.addresses) ? (s.addresses as unknown[]) : [];
  for (const addr of addrList.slice(0, 4 * MAX_HOST_ADDRESSES)) {
    if (addresses.length >= MAX_HOST_ADDRESSES) break;
    if (isUsableAddress(addr) && !addresses.includes(addr)) addresses.push(addr);
  }
  if (addresses.length === 0) {
    const source = record(s.referer)?.address;
    if (isUsableAddress(source)) addresses.push(source);
  }

  const txt = decodeTxt(Array.isArray(s.rawTxt) ? s.rawTxt : s.txt);
  return { name, hostname, port, addresses, ...txt };
}

export function sameHost(a: DiscoveredHost, b: DiscoveredHost): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
