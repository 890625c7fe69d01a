/**
 * Output ingest: splitting a process's bytes into lines, keeping a bounded
 * history, and reading progress from whitelisted patterns only.
 */
import { StringDecoder } from "node:string_decoder";

/** Lines kept once a job ends (and after each in-flight trim). */
export const OUTPUT_LINES_RETAINED = 2000;
/** In-flight limit: past it the history is trimmed to OUTPUT_LINES_RETAINED. */
export const OUTPUT_LINES_INFLIGHT = 4000;

const TRIM_NOTICE = /^\.\.\. \[output trimmed: (\d+) earlier line\(s\) elided\]\n$/;

export function trimNotice(count: number): string {
  return `... [output trimmed: ${count} earlier line(s) elided]\n`;
}

/**
 * Splits a byte stream on `\n` or `\r`, keeping each terminator on its line;
 * `\r\n` is one terminator. Bytes are decoded as UTF-8 with replacement
 * characters, and a multi-byte character split across chunks stays whole.
 */
export class LineSplitter {
  readonly #decoder = new StringDecoder("utf8");
  #rest = "";

  /** Returns the complete lines in this chunk. A trailing `\r` waits for the next chunk (it may be `\r\n`). */
  push(chunk: Uint8Array | string): string[] {
    const text = typeof chunk === "string" ? chunk : this.#decoder.write(chunk);
    const rest = this.#rest;
    // The unfinished line is joined to its continuation only, not to the whole
    // chunk: concatenating the chunk would copy it once more.
    if (text === "") return []; // e.g. only part of a multi-byte character so far
    if (rest === "") return this.#split(text, false, []);
    this.#rest = "";
    if (rest.charCodeAt(rest.length - 1) === 13) {
      // A line that ended in `\r`: `\r\n` if the chunk starts with `\n`.
      if (text.charCodeAt(0) === 10) return this.#split(text.slice(1), false, [rest + "\n"]);
      return this.#split(text, false, [rest]);
    }
    const lines = this.#split(text, false, []);
    if (lines.length === 0) this.#rest = rest + this.#rest;
    else lines[0] = rest + (lines[0] as string);
    return lines;
  }

  /** Returns whatever is left at end of stream, terminated or not. */
  end(): string[] {
    const text = this.#rest + this.#decoder.end();
    return this.#split(text, true, []);
  }

  #split(text: string, final: boolean, lines: string[]): string[] {
    const n = text.length;
    let start = 0;
    // Next positions of each terminator, searched again only once passed.
    let nl = text.indexOf("\n");
    let cr = text.indexOf("\r");
    if (nl === -1) nl = n;
    if (cr === -1) cr = n;
    while (nl < n || cr < n) {
      let end: number;
      if (nl < cr) {
        end = nl + 1;
      } else if (cr + 1 < n) {
        end = cr + 1 === nl ? cr + 2 : cr + 1;
      } else if (final) {
        end = n;
      } else {
        break; // lone `\r` at the end: wait to see whether `\n` follows
      }
      lines.push(text.slice(start, end));
      start = end;
      if (nl < start) {
        nl = text.indexOf("\n", start);
        if (nl === -1) nl = n;
      }
      if (cr < start) {
        cr = text.indexOf("\r", start);
        if (cr === -1) cr = n;
      }
    }
    const rest = text.slice(start);
    if (final) {
      if (rest.length > 0) lines.push(rest);
      this.#rest = "";
    } else {
      this.#rest = rest;
    }
    return lines;
  }
}

/**
 * A job's retained output. `\r` overwrites collapse (a progress bar keeps one
 * line, not hundreds); past OUTPUT_LINES_INFLIGHT lines the oldest are dropped
 * and the first line counts how many were elided in all.
 */
export class OutputHistory {
  #lines: string[] = [];
  #elided = 0;
  #trims = 0;

  constructor(initial: readonly string[] = []) {
    for (const line of initial) this.append(line);
  }

  append(line: string): void {
    const lines = this.#lines;
    const n = lines.length;
    // A line ending in a bare `\r` is overwritten by the next one (unless that is a lone `\n`).
    if (n > 0 && (lines[n - 1] as string).charCodeAt((lines[n - 1] as string).length - 1) === 13 && line !== "\n") {
      lines[n - 1] = line;
    } else {
      lines.push(line);
    }
    if (lines.length > OUTPUT_LINES_INFLIGHT) this.trim(OUTPUT_LINES_RETAINED);
  }

  /** Keeps the newest `keep` lines (plus the elided-count notice). */
  trim(keep: number = OUTPUT_LINES_RETAINED): void {
    const lines = this.#lines;
    let body = lines;
    const first = lines[0];
    const match = first === undefined ? null : TRIM_NOTICE.exec(first);
    if (match !== null) {
      this.#elided = Math.max(this.#elided, Number(match[1]));
      body = lines.slice(1);
    }
    if (body.length <= keep) return;
    const drop = body.length - keep;
    this.#elided += drop;
    this.#trims += 1;
    this.#lines = [trimNotice(this.#elided), ...body.slice(drop)];
  }

  /** How many times lines were dropped (a log file mirroring this must be rewritten). */
  get trims(): number {
    return this.#trims;
  }

  get lines(): readonly string[] {
    return this.#lines;
  }

  get length(): number {
    return this.#lines.length;
  }

  /** The last line, if it lacks a terminator (so a notice can start on a fresh line). */
  get endsOpen(): boolean {
    const last = this.#lines[this.#lines.length - 1];
    return last !== undefined && !last.endsWith("\n") && !last.endsWith("\r");
  }
}

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]|\\033\[[0-9;?]*[A-Za-z]/g;

export function stripAnsi(line: string): string {
  return line.includes("\x1b") || line.includes("\\033") ? line.replace(ANSI, "") : line;
}

// The whitelist, tried in this order; lines are ANSI-stripped first, so anchors are safe.
/** The PlatformIO per-file gauge, `[ 17%] Compiling ...` (read by `pioGauge`). */
export const PIO_GAUGE = /^\s*\[\s*(\d{1,3})\s*%\s*\]/;
const ESPTOOL_V4 = /\(\s*(\d{1,3})\s*%\s*\)/; // esptool v3/v4: Writing at 0x00010000... (45 %)
const ESPTOOL_V5 = /Writing at\b.*?(\d{1,3})(?:\.\d+)?\s*%/; // esptool v5: Writing at 0x... [====>  ] 84.8%
/** The ESPHome OTA bar, `Uploading: [=====   ] 43%` (read by `percentAfter`). */
export const OTA_BAR = /^\s*Uploading:.*?\b(\d{1,3})\s*%/;

function matchNumber(pattern: RegExp, line: string): number {
  const m = pattern.exec(line);
  return m === null ? -1 : Number(m[1]);
}

const isDigit = (c: number): boolean => c >= 48 && c <= 57;
const isSpace = (c: number): boolean => c === 32 || c === 9 || c === 10 || c === 13 || c === 11 || c === 12;
const isWord = (c: number): boolean => isDigit(c) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;

/** `\s*(\d{1,3})\s*%\s*\]` from `i` (just past the `[`): the PIO_GAUGE match, or -1. */
function pioGauge(line: string, i: number): number {
  while (isSpace(line.charCodeAt(i))) i++;
  let value = 0;
  let digits = 0;
  while (isDigit(line.charCodeAt(i))) {
    value = value * 10 + line.charCodeAt(i) - 48;
    digits++;
    i++;
  }
  if (digits === 0 || digits > 3) return -1;
  while (isSpace(line.charCodeAt(i))) i++;
  if (line.charCodeAt(i) !== 37) return -1;
  i++;
  while (isSpace(line.charCodeAt(i))) i++;
  return line.charCodeAt(i) === 93 ? value : -1;
}

/**
 * The first `\b(\d{1,3})\s*%` at or after `from` (OTA_BAR's lazy scan): for
 * each `%` in turn, look back over spaces to a run of 1-3 digits that starts
 * at a word boundary.
 */
function percentAfter(line: string, from: number): number {
  for (let pct = line.indexOf("%", from); pct !== -1; pct = line.indexOf("%", pct + 1)) {
    let end = pct;
    while (end > from && isSpace(line.charCodeAt(end - 1))) end--;
    let begin = end;
    while (begin > from && isDigit(line.charCodeAt(begin - 1))) begin--;
    const digits = end - begin;
    if (digits === 0 || digits > 3) continue;
    if (begin > 0 && isWord(line.charCodeAt(begin - 1))) continue;
    let value = 0;
    for (let i = begin; i < end; i++) value = value * 10 + line.charCodeAt(i) - 48;
    return value;
  }
  return -1;
}
/**
 * A ninja status line, `[12/56] CXX obj/...` (ESPHome's host and native ESP-IDF builds),
 * whatever its total: an incremental host build is `[1/3]` to `[3/3]`. The largest total
 * seen in a phase is the build; a counter with a smaller one is a sub-build (the ESP-IDF
 * bootloader's) and never moves progress.
 */
const NINJA = /^\s*\[\s*(\d+)\s*\/\s*(\d+)\s*\] /;

/**
 * Progress of one phase: monotonic, 0-100, from whitelisted patterns only.
 * `RAM:`, `Flash:` and `Unpacking` bars and stray percentages never count.
 */
export class ProgressParser {
  #value = 0;
  #ninjaTotal = 0;

  get value(): number {
    return this.#value;
  }

  /** Starts a new phase: progress goes back to 0. */
  reset(): void {
    this.#value = 0;
    this.#ninjaTotal = 0;
  }

  /** Feeds one line; returns the new progress when it went up, else null. */
  feed(rawLine: string): number | null {
    // Cheap pre-filter: the percent patterns need a '%'; a ninja counter starts
    // with '[' (after any escape codes or spaces).
    if (!rawLine.includes("%")) {
      const first = rawLine.charCodeAt(0);
      if (first !== 91 && first !== 27 && first !== 92 && first !== 32) return null;
    }
    const line = stripAnsi(rawLine);
    let next: number | null = null;
    // First match wins, in whitelist order; each pattern runs only when its
    // literal is there (anchored ones are checked at the first non-space).
    let start = 0;
    while (line.charCodeAt(start) === 32 || line.charCodeAt(start) === 9) start++;
    // The two patterns every build prints hundreds of times are read by hand;
    // `progress.test.ts` pins them to the regular expressions they stand for.
    let found = line.charCodeAt(start) === 91 ? pioGauge(line, start + 1) : -1;
    if (found === -1 && line.includes("(")) found = matchNumber(ESPTOOL_V4, line);
    if (found === -1 && line.includes("Writing at")) found = matchNumber(ESPTOOL_V5, line);
    if (found === -1 && line.startsWith("Uploading:", start)) found = percentAfter(line, start + 10);
    if (found !== -1 && found <= 100) next = found;
    const m = found === -1 ? null : found;
    if (m === null) {
      const n = NINJA.exec(line);
      if (n !== null) {
        const done = Number(n[1]);
        const total = Number(n[2]);
        if (total > 0 && total >= this.#ninjaTotal && done <= total) {
          this.#ninjaTotal = total;
          next = Math.floor((done * 100) / total);
        }
      }
    }
    if (next === null || next <= this.#value) return null;
    this.#value = next;
    return next;
  }
}

const ERROR_PATTERNS = ["ModuleNotFoundError", "ImportError", "FileNotFoundError", "command not found"];

/** Output that makes an exit-0 run a failure: a broken ESPHome install prints these. */
export function findErrorPattern(line: string): string | null {
  if (line.includes("No module named 'esphome'")) {
    return "ESPHome is not importable by its Python (No module named 'esphome'); reinstall ESPHome";
  }
  for (const pattern of ERROR_PATTERNS) {
    if (line.includes(pattern)) return `Process exited 0 but its output contains errors (${pattern})`;
  }
  return null;
}

/** Splits stored log text back into lines exactly as they were written. */
export function splitStoredLog(text: string): string[] {
  const splitter = new LineSplitter();
  return [...splitter.push(text), ...splitter.end()];
}
