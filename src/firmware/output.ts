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
    const text = this.#rest + (typeof chunk === "string" ? chunk : this.#decoder.write(chunk));
    return this.#split(text, false);
  }

  /** Returns whatever is left at end of stream, terminated or not. */
  end(): string[] {
    const text = this.#rest + this.#decoder.end();
    return this.#split(text, true);
  }

  #split(text: string, final: boolean): string[] {
    const lines: string[] = [];
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
    const last = lines.length > 0 ? lines[lines.length - 1] : undefined;
    if (last !== undefined && last.endsWith("\r") && !last.endsWith("\r\n") && line !== "\n") {
      lines[lines.length - 1] = line;
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

// The whitelist, first match wins. Lines are ANSI-stripped first, so anchors are safe.
const PROGRESS_PATTERNS: readonly RegExp[] = [
  /^\s*\[\s*(\d{1,3})\s*%\s*\]/, // PlatformIO per-file gauge: [ 17%] Compiling ...
  /\(\s*(\d{1,3})\s*%\s*\)/, // esptool v3/v4: Writing at 0x00010000... (45 %)
  /Writing at\b.*?(\d{1,3})(?:\.\d+)?\s*%/, // esptool v5: Writing at 0x... [====>  ] 84.8%
  /^\s*Uploading:.*?\b(\d{1,3})\s*%/, // ESPHome OTA: Uploading: [=====   ] 43%
];
const NINJA = /^\s*\[\s*(\d+)\s*\/\s*(\d+)\s*\] /;
const NINJA_MIN_TOTAL = 100;

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
    // Each pattern needs a literal that is cheap to look for; only then run it.
    const needs = [line.trimStart().startsWith("["), line.includes("("), line.includes("Writing at"), line.includes("Uploading:")];
    for (let i = 0; i < PROGRESS_PATTERNS.length; i++) {
      if (needs[i] !== true) continue;
      const m = (PROGRESS_PATTERNS[i] as RegExp).exec(line);
      if (m !== null) {
        const value = Number(m[1]);
        if (value <= 100) next = value;
        break;
      }
    }
    if (next === null) {
      const m = NINJA.exec(line);
      if (m !== null) {
        const done = Number(m[1]);
        const total = Number(m[2]);
        if (total >= NINJA_MIN_TOTAL && total >= this.#ninjaTotal && done <= total) {
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
