/**
 * The fingerprint people compare when pairing builders: a pin (`pin_sha256`,
 * lowercase hex SHA-256 of a peer-link public key) shown as 7 emoji, its
 * leading 42 bits in 6-bit chunks over the Matrix SAS emoji table, and as hex
 * pairs. The same mapping as the builder's (src/remote-build/transport/fingerprint.ts,
 * which the browser bundle cannot import: it uses node:crypto); both read the
 * one table in src/remote-build/transport/sas-emoji.ts. Emoji names are translated
 * (`fingerprint.names.*` in translations/panel/en.json).
 */
import { parsePin } from "../../../src/remote-build/transport/pin.ts";
import { SAS_EMOJI_ENTRIES } from "../../../src/remote-build/transport/sas-emoji.ts";
import type { LocalizeFunc, TranslationDict } from "./localize.ts";

export type EmojiNameKey = keyof TranslationDict["fingerprint"]["names"];

/** Matrix SAS emoji, indices 0..63, with the key of each English name (the one table, src/remote-build/transport/sas-emoji.ts). */
export const SAS_EMOJI: readonly (readonly [emoji: string, name: EmojiNameKey])[] = SAS_EMOJI_ENTRIES.map(([emoji, key]) => [emoji, key] as const);

export const FINGERPRINT_EMOJI_COUNT = 7;

export interface FingerprintEmoji {
  emoji: string;
  name: EmojiNameKey;
}

/** The 7 emoji of a pin (bits 0..41, most significant first); empty for a malformed pin (the rule of src/remote-build/transport/pin.ts). */
export function pinEmoji(value: string): FingerprintEmoji[] {
  const pin = parsePin(value);
  if (pin === null) return [];
  // The first 6 bytes (48 bits) fit exactly in a double.
  const leading = parseInt(pin.slice(0, 12), 16);
  const out: FingerprintEmoji[] = [];
  for (let i = 0; i < FINGERPRINT_EMOJI_COUNT; i++) {
    const entry = SAS_EMOJI[Math.floor(leading / 2 ** (48 - 6 * (i + 1))) % 64];
    if (entry !== undefined) out.push({ emoji: entry[0], name: entry[1] });
  }
  return out;
}

/** The pin as lowercase byte pairs: "ab cd ef …"; empty for a malformed pin. */
export function pinHexPairs(value: string): string {
  return (parsePin(value)?.match(/../g) ?? []).join(" ");
}

/** The emoji names in words, for screen readers and tooltips: "Dog, Cat, …". */
export function emojiNames(emoji: readonly FingerprintEmoji[], localize: LocalizeFunc): string {
  return emoji.map((e) => localize(`fingerprint.names.${e.name}`)).join(", ");
}
