/** The pairing key as people type it: case, spaces and separators do not matter; the 16 characters do. */
import { describe, expect, it } from "vitest";
import { PAIRING_KEY_ALPHABET, formatPairingKey, normalisePairingKey, parsePairingKey } from "../../../src/remote-build/transport/pairing-key-text.ts";

describe("the pairing key's text rule", () => {
  it("has 30 characters without look-alikes (no 0, O, 1, I, L, U)", () => {
    expect(PAIRING_KEY_ALPHABET).toHaveLength(30);
    expect(new Set(PAIRING_KEY_ALPHABET).size).toBe(30);
    for (const c of "0O1ILU") expect(PAIRING_KEY_ALPHABET).not.toContain(c);
  });

  it("normalises to upper-case letters and digits only", () => {
    expect(normalisePairingKey(" abcd-efgh efgh.2345\t")).toBe("ABCDEFGHEFGH2345");
    expect(normalisePairingKey("—_/")).toBe("");
  });

  it("formats what was typed so far in groups of four, at most 16 characters", () => {
    expect(formatPairingKey("")).toBe("");
    expect(formatPairingKey("abc")).toBe("ABC");
    expect(formatPairingKey("abcd")).toBe("ABCD");
    expect(formatPairingKey("abcde")).toBe("ABCD-E");
    expect(formatPairingKey("ABCD-EFGH-JKMN-PQRS-TVWX")).toBe("ABCD-EFGH-JKMN-PQRS");
  });

  it("parses a complete key in any case and grouping to its printed form", () => {
    expect(parsePairingKey("abcd efgh jkmn pqrs")).toBe("ABCD-EFGH-JKMN-PQRS");
    expect(parsePairingKey("ABCDEFGHJKMNPQRS")).toBe("ABCD-EFGH-JKMN-PQRS");
  });

  it.each([
    ["too short", "ABCD-EFGH-JKMN-PQR"],
    ["too long", "ABCD-EFGH-JKMN-PQRS-T"],
    ["a look-alike outside the alphabet (O)", "ABCD-EFGH-JKMN-PQRO"],
    ["a digit outside the alphabet (1)", "ABCD-EFGH-JKMN-PQR1"],
    ["empty", ""],
    ["over 256 characters", `${"-".repeat(250)}ABCDEFGHJKMNPQRS`],
  ])("refuses a key that is %s", (_name, value) => {
    expect(parsePairingKey(value)).toBeNull();
  });

  it("refuses what is not a string", () => {
    for (const v of [undefined, null, 42, ["ABCD"], { key: "x" }]) expect(parsePairingKey(v)).toBeNull();
  });
});
