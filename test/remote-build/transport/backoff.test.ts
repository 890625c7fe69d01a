/** The peer link's one backoff rule (src/remote-build/transport/backoff.ts). */
import { describe, expect, it } from "vitest";
import { Backoff, backoffDelay } from "../../../src/remote-build/transport/backoff.ts";

describe("backoff", () => {
  it("doubles from the first wait up to the cap, and starts over after a reset", () => {
    const b = new Backoff({ initialMs: 1000, maxMs: 5000 });
    expect([b.next(), b.next(), b.next(), b.next(), b.next()]).toEqual([1000, 2000, 4000, 5000, 5000]);
    b.reset();
    expect(b.next()).toBe(1000);
  });

  it("never waits less than the first wait: a cap below it is raised to it", () => {
    const b = new Backoff({ initialMs: 3000, maxMs: 1000 });
    expect([b.next(), b.next()]).toEqual([3000, 3000]);
  });

  it("grows from a zero first wait instead of spinning at zero", () => {
    const b = new Backoff({ initialMs: 0, maxMs: 8 });
    expect([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()]).toEqual([0, 1, 2, 4, 8, 8]);
  });

  it("backoffDelay(n) is the n-th wait after a failure, as next() gives it", () => {
    for (const options of [{ initialMs: 1000, maxMs: 5000 }, { initialMs: 0, maxMs: 8 }, { initialMs: 3000, maxMs: 1000 }]) {
      const b = new Backoff(options);
      const fromClass = [1, 2, 3, 4, 5, 6].map(() => b.next());
      expect([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, options))).toEqual(fromClass);
    }
    expect(backoffDelay(0, { initialMs: 1000, maxMs: 5000 })).toBe(1000);
    expect(backoffDelay(10_000, { initialMs: 1000, maxMs: 5000 })).toBe(5000);
  });

  it("jitter spreads a wait by at most its fraction either way, never past the cap, and is off by default", () => {
    const o = { initialMs: 1000, maxMs: 3000, jitter: 0.2 };
    expect(backoffDelay(1, { ...o, random: () => 0 })).toBe(800);
    expect(backoffDelay(1, { ...o, random: () => 0.5 })).toBe(1000);
    expect(backoffDelay(1, { ...o, random: () => 0.999_999 })).toBe(1200);
    expect(backoffDelay(2, { ...o, random: () => 0.999_999 })).toBe(2400);
    // 3000 capped, then +20 % would pass the cap: held at it; -20 % is below it.
    expect(backoffDelay(3, { ...o, random: () => 0.999_999 })).toBe(3000);
    expect(backoffDelay(3, { ...o, random: () => 0 })).toBe(2400);
    let asked = 0;
    const random = (): number => { asked += 1; return 0; };
    expect(backoffDelay(2, { initialMs: 1000, maxMs: 3000, random })).toBe(2000);
    expect(backoffDelay(2, { initialMs: 1000, maxMs: 3000, jitter: 0, random })).toBe(2000);
    expect(asked).toBe(0);
  });

  it("a jittered Backoff still doubles its base and starts over after a reset", () => {
    const b = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0.5, random: () => 0 });
    expect([b.next(), b.next(), b.next()]).toEqual([50, 100, 200]);
    b.reset();
    expect(b.next()).toBe(50);
  });
});
