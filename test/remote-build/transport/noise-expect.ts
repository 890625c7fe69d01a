/** The assertion the Noise tests share: a call that must fail with one Noise error code. */
import { expect } from "vitest";
import { isNoiseError, type NoiseError, type NoiseErrorCode } from "../../../src/remote-build/transport/noise-primitives.ts";

/** `fn` throws a Noise error (the module's coded error, not any Error) with exactly `code`. */
export function expectNoiseError(fn: () => unknown, code: NoiseErrorCode): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(isNoiseError(caught)).toBe(true);
  expect((caught as NoiseError).code).toBe(code);
}
