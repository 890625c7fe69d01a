/**
 * ESPHome release numbers: the one pattern a version must match before it
 * reaches a path or pip, pre-release detection and newest-first ordering.
 */
import { BuilderError, ErrorCode } from "../errors.ts";

/** ESPHome release numbers (PEP 440 as ESPHome uses it): 2026.10.0, 2026.11.0b2, 1.20.4. Nothing else reaches a path or pip. */
export const VERSION_PATTERN = /^\d{1,4}\.\d{1,3}\.\d{1,4}(?:(?:a|b|rc)\d{1,4}|\.dev\d{1,14})?$/;

export function validateVersion(version: string): string {
  if (!VERSION_PATTERN.test(version)) {
    throw new BuilderError(ErrorCode.InvalidArgs, `'${version.slice(0, 64)}' is not an ESPHome version: give one such as 2026.10.0 or 2026.11.0b1`);
  }
  return version;
}

/** Whether a version is a pre-release (beta, release candidate, dev build). */
export function isPrerelease(version: string): boolean {
  return /(?:a|b|rc)\d+$|\.dev\d+$/.test(version);
}

/** Orders release numbers newest first (numeric parts, then a pre-release before its release). */
export function compareVersionsDesc(a: string, b: string): number {
  const parse = (v: string): number[] => {
    const m = /^(\d+)\.(\d+)\.(\d+)(?:(a|b|rc)(\d+)|\.dev(\d+))?$/.exec(v);
    if (m === null) return [0, 0, 0, 0, 0];
    const pre = m[4] === undefined ? (m[6] === undefined ? 4 : 0) : { a: 1, b: 2, rc: 3 }[m[4] as "a" | "b" | "rc"];
    return [Number(m[1]), Number(m[2]), Number(m[3]), pre, Number(m[5] ?? m[6] ?? 0)];
  };
  const pa = parse(a);
  const pb = parse(b);
  for (let i = 0; i < pa.length; i++) {
    const d = (pb[i] ?? 0) - (pa[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
