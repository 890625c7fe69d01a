/**
 * The one pin rule (src/remote-build/transport/pin.ts): 64 hex digits, either case in,
 * lowercase out, nothing else. Every reader of a pin (commands, state files,
 * mDNS, fingerprints, the panel) follows it, and a pin typed in upper case
 * reaches the same pairing as its lowercase form.
 */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { pinEmoji, pinHexPairs as panelHexPairs } from "../../../panel/src/common/fingerprint.ts";
import { decodeTxt } from "../../../src/remote-build/discovery/txt.ts";
import { fingerprintEmoji, pinHexPairs, pinSchema } from "../../../src/remote-build/transport/fingerprint.ts";
import { isPin, parsePin, PIN_HEX_DIGITS, PIN_RULE } from "../../../src/remote-build/transport/pin.ts";
import { ApiClient } from "../../helpers/api-client.ts";
import { startBuilder } from "../../helpers/builder.ts";

const LOWER = randomBytes(32).toString("hex");
const UPPER = LOWER.toUpperCase();
const MIXED = LOWER.replace(/[0-9a-f]/g, (c: string, i: number) => (i % 2 === 0 ? c.toUpperCase() : c));

const BAD: [string, unknown][] = [
  ["63 digits", LOWER.slice(1)],
  ["65 digits", `${LOWER}0`],
  ["empty", ""],
  ["a letter past f", `${LOWER.slice(1)}g`],
  ["a leading space", ` ${LOWER.slice(1)}`],
  ["a trailing newline", `${LOWER.slice(1)}\n`],
  ["byte pairs with spaces", (LOWER.match(/../g) ?? []).join(" ")],
  ["colon separators", (LOWER.match(/../g) ?? []).join(":").slice(0, 64)],
  ["a 0x prefix", `0x${LOWER.slice(2)}`],
  ["full-width digits", "\uFF10".repeat(64)],
  ["a number", 42],
  ["null", null],
];

describe("the pin rule", () => {
  it("has 64 digits, canonical in lowercase only", () => {
    expect(PIN_HEX_DIGITS).toBe(64);
    expect(isPin(LOWER)).toBe(true);
    expect(isPin(UPPER)).toBe(false);
    expect(isPin(MIXED)).toBe(false);
  });

  it("reads either case and returns the lowercase pin", () => {
    expect(parsePin(LOWER)).toBe(LOWER);
    expect(parsePin(UPPER)).toBe(LOWER);
    expect(parsePin(MIXED)).toBe(LOWER);
  });

  it.each(BAD)("refuses %s, never repairing it", (_what, value) => {
    expect(parsePin(value)).toBeNull();
    expect(isPin(value)).toBe(false);
  });

  it("is what every reader of a pin applies", () => {
    for (const value of [LOWER, UPPER, MIXED, ...BAD.map(([, v]) => v).filter((v): v is string => typeof v === "string")]) {
      const expected = parsePin(value);
      const schema = pinSchema.safeParse(value);
      expect(schema.success ? schema.data : null).toBe(expected);
      expect(decodeTxt({ pin_sha256: value }).pin_sha256).toBe(expected);
      if (expected === null) {
        expect(() => pinHexPairs(value)).toThrow(PIN_RULE);
        expect(() => fingerprintEmoji(value)).toThrow(PIN_RULE);
        expect(pinEmoji(value)).toEqual([]);
        expect(panelHexPairs(value)).toBe("");
      } else {
        expect(pinHexPairs(value)).toBe(pinHexPairs(expected));
        expect(panelHexPairs(value)).toBe(pinHexPairs(expected));
        expect(pinEmoji(value).map((e) => e.emoji)).toEqual(fingerprintEmoji(expected));
      }
    }
  });

  it("names the fix in a refusal", () => {
    const result = pinSchema.safeParse("xyz");
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.message).toBe(PIN_RULE);
  });
});

describe("pins through the API of a real builder", () => {
  it("pairs with a pin given in upper case and stores it in lowercase; every pin command finds it in either case", async () => {
    const server = await startBuilder();
    const offloader = await startBuilder();
    const a = await ApiClient.connect(server.port);
    const b = await ApiClient.connect(offloader.port);
    await a.call("remote_build/set_pairing_window", { open: true });
    const peerPort = server.builder.remote.receiver.port!;
    const preview = await b.call<{ pin_sha256: string }>("remote_build/preview_pair", { hostname: "127.0.0.1", port: peerPort });
    expect(isPin(preview.pin_sha256)).toBe(true);

    const pairing = await b.call<{ pin_sha256: string; status: string }>("remote_build/request_pair", { hostname: "127.0.0.1", port: peerPort, pin_sha256: preview.pin_sha256.toUpperCase() });
    expect(pairing).toMatchObject({ pin_sha256: preview.pin_sha256, status: "pending" });
    const changed = await b.call<{ pin_sha256: string; enabled: boolean }>("remote_build/set_pairing_enabled", { pin_sha256: preview.pin_sha256.toUpperCase(), enabled: false });
    expect(changed).toMatchObject({ pin_sha256: preview.pin_sha256, enabled: false });

    for (const [, bad] of BAD) {
      const reply = await b.request("remote_build/unpair", { pin_sha256: bad });
      expect(reply.error_code).toBe("invalid_args");
      if (typeof bad === "string") expect(reply.details).toContain(PIN_RULE);
    }
    expect(await b.call("remote_build/unpair", { pin_sha256: preview.pin_sha256.toUpperCase() })).toEqual({ removed: true });
    a.ws.close();
    b.ws.close();
  });
});
