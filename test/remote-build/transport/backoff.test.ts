/** The peer link's one backoff rule (src/remote-build/transport/backoff.ts). */
import { describe, expect, it } from "vitest";
import { Backoff } from "../../../src/remote-build/transport/backoff.ts";

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
});
