/**
 * The pin rule, in one place for the builder and the panel (this module has
 * no imports, so the browser bundle uses it as it is).
 *
 * A pin (`pin_sha256`) is the SHA-256 of a peer-link public key written as
 * 64 hexadecimal digits. Its canonical form is lowercase: that is what the
 * builder computes, stores, compares, advertises and sends. A pin read from
 * outside (a command argument, a state file, an mDNS record) may use either
 * case and is lowercased on the way in; anything else (another length,
 * spaces, separators, other characters) is refused, never repaired.
 */

/** Hex digits in a pin (a SHA-256). */
export const PIN_HEX_DIGITS = 64;

/** What a bad pin is told, naming the fix. */
export const PIN_RULE = "pin_sha256 must be 64 hexadecimal digits (0-9, a-f), as shown under This builder; no spaces";

const CANONICAL_PIN_RE = /^[0-9a-f]{64}$/;
const ANY_CASE_PIN_RE = /^[0-9a-fA-F]{64}$/;

/** A pin in canonical form: 64 lowercase hex digits. */
export function isPin(value: unknown): value is string {
  return typeof value === "string" && CANONICAL_PIN_RE.test(value);
}

/** A pin read from outside, in canonical form; null when it is not 64 hex digits. */
export function parsePin(value: unknown): string | null {
  return typeof value === "string" && ANY_CASE_PIN_RE.test(value) ? value.toLowerCase() : null;
}
