/**
 * The headless build server's pairing key: drawn from a CSPRNG over the
 * alphabet, compared in constant time, armed for 15 minutes and one pairing.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  PAIRING_KEY_WINDOW_MS,
  PairingKeyWindow,
  generatePairingKey,
  pairingKeyMatches,
  parsePairingSource,
} from "../../../src/remote-build/build-server/pairing-key.ts";
import { PAIRING_KEY_ALPHABET } from "../../../src/remote-build/transport/pairing-key-text.ts";

const KEY = "ABCD-EFGH-JKMN-PQRS";

describe("generatePairingKey", () => {
  it("prints 16 characters of the alphabet as XXXX-XXXX-XXXX-XXXX", () => {
    const key = generatePairingKey();
    expect(key).toMatch(/^[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}$/);
    for (const c of key.replaceAll("-", "")) expect(PAIRING_KEY_ALPHABET).toContain(c);
  });

  it("draws every character from the random source, over the whole alphabet", () => {
    const asked: number[] = [];
    let i = 0;
    const key = generatePairingKey((max) => {
      asked.push(max);
      return i++ % max;
    });
    expect(asked).toEqual(Array<number>(16).fill(30));
    expect(key).toBe("ABCD-EFGH-JKMN-PQRS");
    expect(generatePairingKey(() => 29)).toBe("9999-9999-9999-9999");
    expect(() => generatePairingKey(() => 30)).toThrow(/out of range/);
  });

  it("gives a different key each time (crypto random)", () => {
    const keys = new Set(Array.from({ length: 50 }, () => generatePairingKey()));
    expect(keys.size).toBe(50);
  });
});

describe("pairingKeyMatches", () => {
  it("ignores case, whitespace and separators", () => {
    for (const presented of [KEY, "abcd-efgh-jkmn-pqrs", "ABCDEFGHJKMNPQRS", " abcd efgh\tjkmn.pqrs ", "AB-CD_EF/GH JK:MN PQ RS"]) {
      expect(pairingKeyMatches(KEY, presented), presented).toBe(true);
    }
  });

  it("refuses a key that differs in one character, misses one or has one more", () => {
    expect(pairingKeyMatches(KEY, "ABCD-EFGH-JKMN-PQRT")).toBe(false);
    expect(pairingKeyMatches(KEY, "ABCD-EFGH-JKMN-PQR")).toBe(false);
    expect(pairingKeyMatches(KEY, "ABCD-EFGH-JKMN-PQRSS")).toBe(false);
    expect(pairingKeyMatches(KEY, "XBCD-EFGH-JKMN-PQRS")).toBe(false);
  });

  it("never matches a presented key over 256 characters, even one that normalises to the key", () => {
    const padded = (n: number) => `${KEY}${" ".repeat(n - KEY.length)}`;
    expect(pairingKeyMatches(KEY, padded(256))).toBe(true);
    expect(pairingKeyMatches(KEY, padded(257))).toBe(false);
  });

  it("never matches nothing, an empty key or something that is not a string", () => {
    for (const presented of [undefined, null, "", "---", 1234, { key: KEY }, [KEY]]) expect(pairingKeyMatches(KEY, presented)).toBe(false);
    // No key armed (an empty expected key) matches nothing, not even another empty one.
    expect(pairingKeyMatches("", "")).toBe(false);
    expect(pairingKeyMatches("--", "")).toBe(false);
  });
});

describe("parsePairingSource", () => {
  it.each([
    ["192.168.1.20", { address: "192.168.1.20", prefix: null, family: "ipv4" }],
    ["192.168.1.0/24", { address: "192.168.1.0", prefix: 24, family: "ipv4" }],
    ["fd00::/8", { address: "fd00::", prefix: 8, family: "ipv6" }],
    ["::1", { address: "::1", prefix: null, family: "ipv6" }],
  ])("reads %s", (entry, expected) => {
    expect(parsePairingSource(entry)).toEqual(expected);
  });

  it.each(["builder.lan", "192.168.1.0/33", "fd00::/129", "10.0.0.0/8/1", "10.0.0.0/", "10.0.0.0/x", ""])("refuses %j", (entry) => {
    expect(parsePairingSource(entry)).toBeNull();
  });
});

describe("PairingKeyWindow", () => {
  beforeEach(() => { vi.useFakeTimers(); });
  afterEach(() => { vi.useRealTimers(); });

  const armed = (opts: { allowSources?: string[] } = {}) => {
    const window = new PairingKeyWindow({ generate: () => KEY, ...opts });
    const outcome = vi.fn();
    void window.outcome.then(outcome);
    return { window, outcome, ...window.arm() };
  };

  it("arms a fresh key for 15 minutes", () => {
    const { window, key, validForMs, expiresAt } = armed();
    expect(key).toBe(KEY);
    expect(validForMs).toBe(PAIRING_KEY_WINDOW_MS);
    expect(PAIRING_KEY_WINDOW_MS).toBe(15 * 60_000);
    expect(expiresAt).toBe(Date.now() + PAIRING_KEY_WINDOW_MS);
    expect(window.armed).toBe(true);
    expect(window.state).toEqual({ kind: "armed", key: KEY, expiresAt });
    expect(() => window.arm()).toThrow(/cannot be armed from armed/);
  });

  it("refuses nothing armed yet", () => {
    const window = new PairingKeyWindow({ generate: () => KEY });
    expect(window.claim(KEY, "127.0.0.1")).toEqual({ ok: false, refusal: "no key armed" });
  });

  it("keeps the window open after a missing or wrong key, and pairs one builder with the right one", async () => {
    const { window, outcome } = armed();
    expect(window.claim(undefined, "10.0.0.2")).toEqual({ ok: false, refusal: "key missing" });
    expect(window.claim("", "10.0.0.2")).toEqual({ ok: false, refusal: "key missing" });
    expect(window.claim("ABCD-EFGH-JKMN-PQRT", "10.0.0.2")).toEqual({ ok: false, refusal: "key wrong" });
    expect(window.armed).toBe(true);
    expect(window.claim("abcdefghjkmnpqrs", "10.0.0.2")).toEqual({ ok: true });
    // While the approval is being written, nobody else gets in, not even with the key.
    expect(window.armed).toBe(false);
    expect(window.claim(KEY, "10.0.0.3")).toEqual({ ok: false, refusal: "no key armed" });
    window.confirm("dash-1");
    await vi.runAllTimersAsync();
    expect(outcome).toHaveBeenCalledWith("paired");
    expect(window.state).toEqual({ kind: "paired", dashboardId: "dash-1" });
    // Used up: the same key again is refused.
    expect(window.claim(KEY, "10.0.0.2")).toEqual({ ok: false, refusal: "no key armed" });
  });

  it("lapses after 15 minutes unused: the key no longer pairs, and the outcome says expired", async () => {
    const { window, outcome } = armed();
    await vi.advanceTimersByTimeAsync(PAIRING_KEY_WINDOW_MS - 1);
    expect(window.armed).toBe(true);
    expect(outcome).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(window.armed).toBe(false);
    expect(window.state).toEqual({ kind: "expired" });
    expect(outcome).toHaveBeenCalledWith("expired");
    expect(window.claim(KEY, "10.0.0.2")).toEqual({ ok: false, refusal: "no key armed" });
  });

  it("gives the key back when the approval could not be stored, unless the window lapsed meanwhile", async () => {
    const first = armed();
    expect(first.window.claim(KEY, "10.0.0.2").ok).toBe(true);
    first.window.release();
    expect(first.window.armed).toBe(true);
    expect(first.window.claim(KEY, "10.0.0.2").ok).toBe(true);
    await vi.advanceTimersByTimeAsync(PAIRING_KEY_WINDOW_MS);
    // The lapse waits for the claim in flight...
    expect(first.outcome).not.toHaveBeenCalled();
    first.window.release();
    await vi.runAllTimersAsync();
    // ...and a failed one then ends the window.
    expect(first.window.state).toEqual({ kind: "expired" });
    expect(first.outcome).toHaveBeenCalledWith("expired");
  });

  it("lets only the allowed sources pair, and says so apart from a wrong key (for the log)", () => {
    const { window } = armed({ allowSources: ["192.168.1.0/24", "fd00::5"] });
    expect(window.restricted).toBe(true);
    expect(window.claim(KEY, "192.168.2.7")).toEqual({ ok: false, refusal: "source not allowed" });
    expect(window.claim(KEY, "fd00::6")).toEqual({ ok: false, refusal: "source not allowed" });
    expect(window.claim(KEY, "not-an-ip")).toEqual({ ok: false, refusal: "source not allowed" });
    // A wrong key from an allowed source is a wrong key.
    expect(window.claim("ABCD-EFGH-JKMN-PQRT", "192.168.1.7")).toEqual({ ok: false, refusal: "key wrong" });
    expect(window.claim(KEY, "fd00::5")).toEqual({ ok: true });
  });

  it("refuses a bad source list when it is made", () => {
    expect(() => new PairingKeyWindow({ allowSources: ["builder.lan"] })).toThrow(/--allow-pairing-source must list IP addresses or CIDR blocks/);
  });

  it("stops: the key is forgotten and the outcome says stopped", async () => {
    const { window, outcome } = armed();
    window.stop();
    await vi.runAllTimersAsync();
    expect(outcome).toHaveBeenCalledWith("stopped");
    expect(window.claim(KEY, "10.0.0.2")).toEqual({ ok: false, refusal: "no key armed" });
    // Stopping again, or confirming, changes nothing.
    window.stop();
    window.confirm("x");
    expect(window.state).toEqual({ kind: "stopped" });
  });
});
