/**
 * How a peer-link identity is named and shown to people.
 *
 * `pin_sha256` (lowercase hex SHA-256 of the raw 32-byte X25519 public key)
 * is what pairings store and what the handshake is checked against. People
 * compare it out of band, which they do badly with 64 hex digits, so it is
 * also shown as 7 emoji: the leading 42 bits in 6-bit chunks over the Matrix
 * SAS emoji table (the same vocabulary and bit order as the upstream
 * frontend's pin-emoji, so both sides of a pairing show the same row).
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import { invalidArgs } from "../../errors.ts";
import { PIN_RULE, parsePin } from "./pin.ts";
import { SAS_EMOJI_ENTRIES } from "./sas-emoji.ts";

export interface SasEmoji {
  readonly emoji: string;
  readonly name: string;
}

/** The fingerprint emoji table (src/remote-build/transport/sas-emoji.ts), as emoji and English name. */
export const SAS_EMOJI_TABLE: readonly SasEmoji[] = Object.freeze(SAS_EMOJI_ENTRIES.map(([emoji, , name]) => Object.freeze({ emoji, name })));

/** Number of emoji shown: 7 x 6 bits = 42 bits, as in Matrix SAS. */
export const FINGERPRINT_EMOJI_COUNT = 7;

/**
 * A pin field read from outside (a command, a state file): the rule of
 * `pin.ts`, lowercased; anything else fails with `PIN_RULE`.
 */
export const pinSchema = z.string().transform((value, ctx) => {
  const pin = parsePin(value);
  if (pin === null) {
    ctx.addIssue({ code: "custom", message: PIN_RULE });
    return z.NEVER;
  }
  return pin;
});

/** Lowercase hex SHA-256 of a raw 32-byte X25519 public key. */
export function pinSha256(publicKey: Uint8Array): string {
  if (publicKey.length !== 32) throw invalidArgs(`public key must be 32 bytes, got ${publicKey.length}`);
  return createHash("sha256").update(publicKey).digest("hex");
}

function normalisePin(pinHex: string): string {
  const pin = parsePin(pinHex);
  if (pin === null) throw invalidArgs(PIN_RULE);
  return pin;
}

/** Table indices of the 7 emoji: bits 0..41 of the pin, most significant bit first. */
function emojiIndices(pinHex: string): number[] {
  // The first 6 bytes (48 bits) fit exactly in a double; the last 6 bits are unused.
  const leading = parseInt(normalisePin(pinHex).slice(0, 12), 16);
  const indices: number[] = [];
  for (let i = 0; i < FINGERPRINT_EMOJI_COUNT; i++) {
    indices.push(Math.floor(leading / 2 ** (48 - 6 * (i + 1))) % 64);
  }
  return indices;
}

function tableEntry(index: number): SasEmoji {
  const entry = SAS_EMOJI_TABLE[index];
  if (entry === undefined) throw new RangeError(`no SAS emoji at ${index}`);
  return entry;
}

/** The 7 emoji of a pin. */
export function fingerprintEmoji(pinHex: string): string[] {
  return emojiIndices(pinHex).map((i) => tableEntry(i).emoji);
}

/** The English names of the same 7 emoji (for accessibility and logs). */
export function fingerprintEmojiNames(pinHex: string): string[] {
  return emojiIndices(pinHex).map((i) => tableEntry(i).name);
}

/** The pin as space-separated lowercase byte pairs: "ab cd ef …". */
export function pinHexPairs(pinHex: string): string {
  return (normalisePin(pinHex).match(/../g) ?? []).join(" ");
}
