/**
 * The pairing key's text rule, in one place for the builder and the panel
 * (this module has no imports, so the browser bundle uses it as it is).
 *
 * A headless build server (`--remote-build-only`) prints a one-shot key of 16
 * characters from an alphabet without look-alikes (no 0/O, 1/I/L, U), in
 * groups of four: `XXXX-XXXX-XXXX-XXXX`. Whoever types it may use any case,
 * spaces or separators: they are ignored. What counts is the 16 characters.
 */

/** The key's alphabet: 30 characters, so a key carries 16 x log2(30), about 78 bits. */
export const PAIRING_KEY_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789";
/** Characters in a key (separators not counted). */
export const PAIRING_KEY_CHARS = 16;
const GROUP = 4;
/** A presented key longer than this (as sent, separators included) never matches; it bounds the work on a peer's string. */
export const PAIRING_KEY_MAX_PRESENTED = 256;

/** What a malformed key is told, naming the fix. */
export const PAIRING_KEY_RULE = "the pairing key is 16 letters and digits as the build server printed them (XXXX-XXXX-XXXX-XXXX); case, spaces and dashes do not matter";

/** Upper case, and everything that is not A-Z or 0-9 dropped (spaces, dashes, dots). */
export function normalisePairingKey(value: string): string {
  return value.toUpperCase().replace(/[^0-9A-Z]/g, "");
}

/** The grouped form of what was typed so far (`abcd efgh` -> `ABCD-EFGH`), at most 16 characters; for input fields. */
export function formatPairingKey(value: string): string {
  const chars = normalisePairingKey(value.slice(0, PAIRING_KEY_MAX_PRESENTED)).slice(0, PAIRING_KEY_CHARS);
  const groups: string[] = [];
  for (let i = 0; i < chars.length; i += GROUP) groups.push(chars.slice(i, i + GROUP));
  return groups.join("-");
}

/**
 * A key as a person typed it, in its grouped form; null unless it is 16
 * characters of the alphabet once case and separators are ignored.
 */
export function parsePairingKey(value: unknown): string | null {
  if (typeof value !== "string" || value.length > PAIRING_KEY_MAX_PRESENTED) return null;
  const chars = normalisePairingKey(value);
  if (chars.length !== PAIRING_KEY_CHARS) return null;
  for (const c of chars) if (!PAIRING_KEY_ALPHABET.includes(c)) return null;
  return formatPairingKey(chars);
}
