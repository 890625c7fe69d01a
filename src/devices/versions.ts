/**
 * ESPHome versions and compilation times as devices report them. Pure.
 *
 * Versions: `2026.10.0`, `2026.10.0b2`, `2026.11.0-dev` (a dev build is older
 * than any beta, a beta older than the release). Compilation times:
 * `2026-12-02 04:55:32 +0000` (ESPHome 2025.x and later) or the older
 * `Dec  2 2026, 04:55:32` (the build machine's local time, no zone: read here as
 * this machine's local time, which is the same machine when this builder built it).
 */

interface ParsedVersion {
  parts: [number, number, number];
  /** 0 dev, 1 alpha/beta/rc with its number, 2 release. */
  stage: number;
  stageNumber: number;
}

const VERSION_RE = /^(\d+)\.(\d+)(?:\.(\d+))?(?:(-dev)|(a|b|rc)(\d+))?$/;

export function parseEsphomeVersion(text: string): ParsedVersion | null {
  const m = VERSION_RE.exec(text.trim());
  if (m === null) return null;
  const stage = m[4] !== undefined ? 0 : m[5] !== undefined ? 1 : 2;
  return {
    parts: [Number(m[1]), Number(m[2]), Number(m[3] ?? "0")],
    stage,
    stageNumber: m[6] === undefined ? 0 : Number(m[6]),
  };
}

/** Negative when `a` is older than `b`, 0 when equal, positive when newer; null when either is not a version. */
export function compareEsphomeVersions(a: string, b: string): number | null {
  const pa = parseEsphomeVersion(a);
  const pb = parseEsphomeVersion(b);
  if (pa === null || pb === null) return null;
  for (let i = 0; i < 3; i++) {
    const d = (pa.parts[i] ?? 0) - (pb.parts[i] ?? 0);
    if (d !== 0) return d;
  }
  if (pa.stage !== pb.stage) return pa.stage - pb.stage;
  return pa.stageNumber - pb.stageNumber;
}

const ISO_LIKE_RE = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$/;

/** Milliseconds since the epoch of a device's compilation time, or null when it cannot be read. */
export function parseCompilationTime(text: string): number | null {
  const trimmed = text.trim();
  const m = ISO_LIKE_RE.exec(trimmed);
  if (m !== null) {
    const [, y, mo, d, h, mi, s, sign, oh, om] = m;
    const utc = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
    const offset = (Number(oh) * 60 + Number(om)) * 60_000 * (sign === "-" ? -1 : 1);
    return utc - offset;
  }
  // The old `__DATE__ ", " __TIME__` form: "Dec  2 2026, 04:55:32".
  if (/^[A-Z][a-z]{2} +\d{1,2} \d{4}, \d{2}:\d{2}:\d{2}$/.test(trimmed)) {
    const ms = Date.parse(trimmed.replace(/ +/g, " ").replace(",", ""));
    return Number.isFinite(ms) ? ms : null;
  }
  return null;
}
