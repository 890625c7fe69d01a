import { describe, expect, it } from "vitest";
import { BuilderError } from "../../../src/errors.ts";
import {
  fingerprintEmoji,
  fingerprintEmojiNames,
  pinHexPairs,
  pinSha256,
  SAS_EMOJI_TABLE,
} from "../../../src/remote-build/transport/fingerprint.ts";

const ZEROS = "0".repeat(52);

describe("pinSha256", () => {
  it("is the lowercase hex SHA-256 of the raw public key", () => {
    // SHA-256 of 32 zero bytes.
    expect(pinSha256(new Uint8Array(32))).toBe("66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925");
    // RFC 7748 §6.1 Alice's public key.
    const alice = new Uint8Array(Buffer.from("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a", "hex"));
    expect(pinSha256(alice)).toMatch(/^[0-9a-f]{64}$/);
    expect(pinSha256(alice)).not.toBe(pinSha256(new Uint8Array(32)));
  });

  it("refuses keys that are not 32 bytes", () => {
    expect(() => pinSha256(new Uint8Array(33))).toThrow(BuilderError);
  });
});

describe("the SAS emoji table", () => {
  it("has the 64 Matrix entries in spec order, as the upstream frontend shows them", () => {
    expect(SAS_EMOJI_TABLE).toHaveLength(64);
    expect(new Set(SAS_EMOJI_TABLE.map((e) => e.emoji)).size).toBe(64);
    const at = (i: number): [string, string] => [SAS_EMOJI_TABLE[i]!.emoji, SAS_EMOJI_TABLE[i]!.name];
    expect(at(0)).toEqual(["\u{1F436}", "Dog"]);
    expect(at(21)).toEqual(["\u{2601}\u{FE0F}", "Cloud"]);
    expect(at(29)).toEqual(["\u{2764}\u{FE0F}", "Heart"]);
    expect(at(34)).toEqual(["\u{1F527}", "Wrench"]);
    expect(at(36)).toEqual(["\u{1F44D}", "Thumbs up"]);
    expect(at(38)).toEqual(["\u{231B}\u{FE0F}", "Hourglass"]);
    expect(at(41)).toEqual(["\u{1F4A1}", "Light bulb"]);
    expect(at(56)).toEqual(["\u{26BD}\u{FE0F}", "Ball"]);
    expect(at(60)).toEqual(["\u{2693}\u{FE0F}", "Anchor"]);
    expect(at(53)).toEqual(["\u{2708}\u{FE0F}", "Aeroplane"]);
    expect(at(61)).toEqual(["\u{1F3A7}", "Headphones"]);
    expect(at(63)).toEqual(["\u{1F4CC}", "Pin"]);
  });
});

describe("fingerprintEmoji", () => {
  it("maps all-zero and all-one bits to the first and last entries", () => {
    expect(fingerprintEmojiNames("0".repeat(64))).toEqual(Array(7).fill("Dog"));
    expect(fingerprintEmoji("f".repeat(64))).toEqual(Array(7).fill("\u{1F4CC}"));
  });

  it("takes 6-bit chunks of the leading 42 bits, most significant first", () => {
    // Indices 1..7: 000001 000010 000011 000100 000101 000110 000111 + 6 unused bits
    //   = 00000100 00100000 11000100 00010100 01100001 11|000000 = 04 20 c4 14 61 c0
    const pin = `0420c41461c0${ZEROS}`;
    expect(fingerprintEmojiNames(pin)).toEqual(["Cat", "Lion", "Horse", "Unicorn", "Pig", "Elephant", "Rabbit"]);
    // Bits 42..47 (the low 6 bits of byte 5) and everything after are not used.
    expect(fingerprintEmojiNames(`0420c41461ff${"f".repeat(52)}`)).toEqual(fingerprintEmojiNames(pin));

    // Indices 63, 0, 62, 1, 61, 2, 60: 111111 000000 111110 000001 111101 000010 111100
    //   = 11111100 00001111 10000001 11110100 00101111 00|000000 = fc 0f 81 f4 2f 00
    const mixed = `FC0F81F42F00${ZEROS}`; // either case is accepted
    expect(fingerprintEmojiNames(mixed)).toEqual(["Pin", "Dog", "Folder", "Cat", "Headphones", "Lion", "Anchor"]);
    expect(fingerprintEmoji(mixed)).toEqual(["\u{1F4CC}", "\u{1F436}", "\u{1F4C1}", "\u{1F431}", "\u{1F3A7}", "\u{1F981}", "\u{2693}\u{FE0F}"]);
  });

  it("refuses something that is not a pin", () => {
    expect(() => fingerprintEmoji("abc")).toThrow(BuilderError);
    expect(() => fingerprintEmojiNames("g".repeat(64))).toThrow(BuilderError);
  });
});

describe("pinHexPairs", () => {
  it("shows the pin as 32 lowercase byte pairs", () => {
    const pin = `AB01${"0".repeat(58)}FF`;
    const pairs = pinHexPairs(pin);
    expect(pairs.startsWith("ab 01 00 ")).toBe(true);
    expect(pairs.endsWith(" 00 ff")).toBe(true);
    expect(pairs.split(" ")).toHaveLength(32);
    expect(() => pinHexPairs("ab")).toThrow(BuilderError);
  });
});
