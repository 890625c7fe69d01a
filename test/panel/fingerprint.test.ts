import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { emojiNames, pinEmoji, pinHexPairs, SAS_EMOJI } from "../../panel/src/common/fingerprint.ts";
import { createLocalize, ENGLISH } from "../../panel/src/common/localize.ts";
import * as backend from "../../src/remote-build/transport/fingerprint.ts";

describe("the panel's fingerprint mapping", () => {
  it("has the builder's Matrix SAS table: same emoji, same English names, same order", () => {
    expect(SAS_EMOJI.map(([emoji]) => emoji)).toEqual(backend.SAS_EMOJI_TABLE.map((e) => e.emoji));
    expect(SAS_EMOJI.map(([, key]) => ENGLISH.fingerprint.names[key])).toEqual(backend.SAS_EMOJI_TABLE.map((e) => e.name));
    expect(new Set(SAS_EMOJI.map(([, key]) => key)).size).toBe(64);
  });

  it("shows the same 7 emoji and hex pairs as the builder for any pin", () => {
    const pins = ["00".repeat(32), "ff".repeat(32), "fc0fc0fc0fc0".padEnd(64, "0"), ...Array.from({ length: 200 }, () => randomBytes(32).toString("hex"))];
    for (const pin of pins) {
      expect(pinEmoji(pin).map((e) => e.emoji)).toEqual(backend.fingerprintEmoji(pin));
      expect(pinEmoji(pin).map((e) => ENGLISH.fingerprint.names[e.name])).toEqual(backend.fingerprintEmojiNames(pin));
      expect(pinHexPairs(pin)).toBe(backend.pinHexPairs(pin));
    }
  });

  it("takes 6-bit chunks of the first 42 bits, most significant first", () => {
    // 000000 000001 000010 000011 000100 000101 000110 | 000000 (unused)
    const pin = "001083105180".padEnd(64, "0");
    expect(pinEmoji(pin).map((e) => e.name)).toEqual(["dog", "cat", "lion", "horse", "unicorn", "pig", "elephant"]);
    expect(pinEmoji("ff".repeat(32)).map((e) => e.name)).toEqual(Array(7).fill("pin"));
    // Upper-case hex is the same pin.
    expect(pinEmoji("AB".repeat(32))).toEqual(pinEmoji("ab".repeat(32)));
  });

  it("shows nothing for a malformed pin", () => {
    expect(pinEmoji("abc")).toEqual([]);
    expect(pinEmoji("zz".repeat(32))).toEqual([]);
  });

  it("names the emoji for screen readers, translated", () => {
    const localize = createLocalize({ fingerprint: { names: { dog: "Hund" } } }, "de");
    expect(emojiNames(pinEmoji("001083105180".padEnd(64, "0")).slice(0, 3), localize)).toBe("Hund, Cat, Lion");
  });
});
