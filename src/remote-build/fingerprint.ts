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
import { invalidArgs } from "../errors.ts";
import { PIN_RULE, parsePin } from "./pin.ts";

export interface SasEmoji {
  readonly emoji: string;
  readonly name: string;
}

/**
 * The Matrix specification's SAS emoji table, indices 0..63
 * (`data-definitions/sas-emoji.json` in matrix-org/matrix-spec): emoji as the
 * spec's code points (with U+FE0F where the spec has it) and English names.
 */
export const SAS_EMOJI_TABLE: readonly SasEmoji[] = Object.freeze(
  (
    [
      ["\u{1F436}", "Dog"],
      ["\u{1F431}", "Cat"],
      ["\u{1F981}", "Lion"],
      ["\u{1F40E}", "Horse"],
      ["\u{1F984}", "Unicorn"],
      ["\u{1F437}", "Pig"],
      ["\u{1F418}", "Elephant"],
      ["\u{1F430}", "Rabbit"],
      ["\u{1F43C}", "Panda"],
      ["\u{1F413}", "Rooster"],
      ["\u{1F427}", "Penguin"],
      ["\u{1F422}", "Turtle"],
      ["\u{1F41F}", "Fish"],
      ["\u{1F419}", "Octopus"],
      ["\u{1F98B}", "Butterfly"],
      ["\u{1F337}", "Flower"],
      ["\u{1F333}", "Tree"],
      ["\u{1F335}", "Cactus"],
      ["\u{1F344}", "Mushroom"],
      ["\u{1F30F}", "Globe"],
      ["\u{1F319}", "Moon"],
      ["\u{2601}\u{FE0F}", "Cloud"],
      ["\u{1F525}", "Fire"],
      ["\u{1F34C}", "Banana"],
      ["\u{1F34E}", "Apple"],
      ["\u{1F353}", "Strawberry"],
      ["\u{1F33D}", "Corn"],
      ["\u{1F355}", "Pizza"],
      ["\u{1F382}", "Cake"],
      ["\u{2764}\u{FE0F}", "Heart"],
      ["\u{1F600}", "Smiley"],
      ["\u{1F916}", "Robot"],
      ["\u{1F3A9}", "Hat"],
      ["\u{1F453}", "Glasses"],
      ["\u{1F527}", "Spanner"],
      ["\u{1F385}", "Santa"],
      ["\u{1F44D}", "Thumbs Up"],
      ["\u{2602}\u{FE0F}", "Umbrella"],
      ["\u{231B}", "Hourglass"],
      ["\u{23F0}", "Clock"],
      ["\u{1F381}", "Gift"],
      ["\u{1F4A1}", "Light Bulb"],
      ["\u{1F4D5}", "Book"],
      ["\u{270F}\u{FE0F}", "Pencil"],
      ["\u{1F4CE}", "Paperclip"],
      ["\u{2702}\u{FE0F}", "Scissors"],
      ["\u{1F512}", "Lock"],
      ["\u{1F511}", "Key"],
      ["\u{1F528}", "Hammer"],
      ["\u{260E}\u{FE0F}", "Telephone"],
      ["\u{1F3C1}", "Flag"],
      ["\u{1F682}", "Train"],
      ["\u{1F6B2}", "Bicycle"],
      ["\u{2708}\u{FE0F}", "Aeroplane"],
      ["\u{1F680}", "Rocket"],
      ["\u{1F3C6}", "Trophy"],
      ["\u{26BD}", "Ball"],
      ["\u{1F3B8}", "Guitar"],
      ["\u{1F3BA}", "Trumpet"],
      ["\u{1F514}", "Bell"],
      ["\u{2693}", "Anchor"],
      ["\u{1F3A7}", "Headphones"],
      ["\u{1F4C1}", "Folder"],
      ["\u{1F4CC}", "Pin"],
    ] as const
  ).map(([emoji, name]) => Object.freeze({ emoji, name })),
);

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
