/**
 * The fingerprint people compare when pairing builders: a pin (`pin_sha256`,
 * lowercase hex SHA-256 of a peer-link public key) shown as 7 emoji, its
 * leading 42 bits in 6-bit chunks over the Matrix SAS emoji table, and as hex
 * pairs. The same mapping as the builder's (src/remote-build/fingerprint.ts,
 * which the browser bundle cannot import: it uses node:crypto); a unit test
 * keeps the two tables equal. Emoji names are translated
 * (`fingerprint.names.*` in translations/panel/en.json).
 */
import { parsePin } from "../../../src/remote-build/pin.ts";
import type { LocalizeFunc, TranslationDict } from "./localize.ts";

export type EmojiNameKey = keyof TranslationDict["fingerprint"]["names"];

/** Matrix SAS emoji, indices 0..63, with the key of each English name. */
export const SAS_EMOJI: readonly (readonly [emoji: string, name: EmojiNameKey])[] = [
  ["\u{1F436}", "dog"],
  ["\u{1F431}", "cat"],
  ["\u{1F981}", "lion"],
  ["\u{1F40E}", "horse"],
  ["\u{1F984}", "unicorn"],
  ["\u{1F437}", "pig"],
  ["\u{1F418}", "elephant"],
  ["\u{1F430}", "rabbit"],
  ["\u{1F43C}", "panda"],
  ["\u{1F413}", "rooster"],
  ["\u{1F427}", "penguin"],
  ["\u{1F422}", "turtle"],
  ["\u{1F41F}", "fish"],
  ["\u{1F419}", "octopus"],
  ["\u{1F98B}", "butterfly"],
  ["\u{1F337}", "flower"],
  ["\u{1F333}", "tree"],
  ["\u{1F335}", "cactus"],
  ["\u{1F344}", "mushroom"],
  ["\u{1F30F}", "globe"],
  ["\u{1F319}", "moon"],
  ["\u{2601}\u{FE0F}", "cloud"],
  ["\u{1F525}", "fire"],
  ["\u{1F34C}", "banana"],
  ["\u{1F34E}", "apple"],
  ["\u{1F353}", "strawberry"],
  ["\u{1F33D}", "corn"],
  ["\u{1F355}", "pizza"],
  ["\u{1F382}", "cake"],
  ["\u{2764}\u{FE0F}", "heart"],
  ["\u{1F600}", "smiley"],
  ["\u{1F916}", "robot"],
  ["\u{1F3A9}", "hat"],
  ["\u{1F453}", "glasses"],
  ["\u{1F527}", "spanner"],
  ["\u{1F385}", "santa"],
  ["\u{1F44D}", "thumbs_up"],
  ["\u{2602}\u{FE0F}", "umbrella"],
  ["\u{231B}", "hourglass"],
  ["\u{23F0}", "clock"],
  ["\u{1F381}", "gift"],
  ["\u{1F4A1}", "light_bulb"],
  ["\u{1F4D5}", "book"],
  ["\u{270F}\u{FE0F}", "pencil"],
  ["\u{1F4CE}", "paperclip"],
  ["\u{2702}\u{FE0F}", "scissors"],
  ["\u{1F512}", "lock"],
  ["\u{1F511}", "key"],
  ["\u{1F528}", "hammer"],
  ["\u{260E}\u{FE0F}", "telephone"],
  ["\u{1F3C1}", "flag"],
  ["\u{1F682}", "train"],
  ["\u{1F6B2}", "bicycle"],
  ["\u{2708}\u{FE0F}", "aeroplane"],
  ["\u{1F680}", "rocket"],
  ["\u{1F3C6}", "trophy"],
  ["\u{26BD}", "ball"],
  ["\u{1F3B8}", "guitar"],
  ["\u{1F3BA}", "trumpet"],
  ["\u{1F514}", "bell"],
  ["\u{2693}", "anchor"],
  ["\u{1F3A7}", "headphones"],
  ["\u{1F4C1}", "folder"],
  ["\u{1F4CC}", "pin"],
];

export const FINGERPRINT_EMOJI_COUNT = 7;

export interface FingerprintEmoji {
  emoji: string;
  name: EmojiNameKey;
}

/** The 7 emoji of a pin (bits 0..41, most significant first); empty for a malformed pin (the rule of src/remote-build/pin.ts). */
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
