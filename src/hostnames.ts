/**
 * Host names as the builder reads them from Host headers and `--allowed-hosts`.
 * No imports beyond Node: the settings (config.ts) and the HTTP guard both use it.
 */
import { isIP } from "node:net";

/** `Host` header value -> lower-case host name without port or brackets, or null when it is not a host. */
export function hostnameOf(hostHeader: string): string | null {
  const value = hostHeader.trim().toLowerCase();
  if (value === "") return null;
  let name: string;
  if (value.startsWith("[")) {
    const end = value.indexOf("]");
    if (end < 0) return null;
    name = value.slice(1, end);
    const rest = value.slice(end + 1);
    if (rest !== "" && !/^:\d{1,5}$/.test(rest)) return null;
    return isIP(name) === 6 ? name : null;
  }
  const colon = value.lastIndexOf(":");
  if (colon >= 0) {
    if (!/^\d{1,5}$/.test(value.slice(colon + 1))) return null;
    name = value.slice(0, colon);
  } else {
    name = value;
  }
  if (name.endsWith(".")) name = name.slice(0, -1);
  return /^[a-z0-9_]([a-z0-9_.-]{0,252})$/.test(name) && !name.includes("..") ? name : null;
}

/** Validates one `--allowed-hosts` entry; returns it normalised or null. */
export function normaliseAllowedHost(entry: string): string | null {
  const value = entry.trim().toLowerCase().replace(/\.$/, "");
  if (value.startsWith("*.")) {
    const rest = hostnameOf(value.slice(2));
    return rest !== null && rest.includes(".") ? `*.${rest}` : null;
  }
  return hostnameOf(value);
}
