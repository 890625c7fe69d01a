/**
 * Output ingest: splitting a process's bytes into lines, keeping a bounded
 * history, and reading progress from whitelisted patterns only.
 */

/** Lines kept once a job ends (and after each in-flight trim). */
export const OUTPUT_LINES_RETAINED = 2000;
/** In-flight limit: past it the history is trimmed to OUTPUT_LINES_RETAINED. */
export const OUTPUT_LINES_INFLIGHT = 4000;
/** Characters kept once a job ends (and after each in-flight trim), whatever the line count. */
export const OUTPUT_CHARS_RETAINED = 2 * 1024 * 1024;
/** In-flight character limit: past it the history is trimmed to OUTPUT_CHARS_RETAINED. */
export const OUTPUT_CHARS_INFLIGHT = 4 * 1024 * 1024;
/**
 * Longest line, in bytes of its text (terminator not counted). A longer line
 * keeps its first OUTPUT_LINE_KEPT_BYTES and ends with `lineCutNotice`, within
 * this length too: reading output back (a stored log, a build server's
 * frames) never cuts a line twice, and every line fits a 16 KiB `job_output`.
 */
export const OUTPUT_LINE_MAX_BYTES = 16_000;
/** Room left for the cut marker (at most 53 bytes: ` … [line cut: <16 digits> more bytes not kept]`). */
const NOTICE_ROOM_BYTES = 64;
/** What a line that was cut keeps of its text. */
export const OUTPUT_LINE_KEPT_BYTES = OUTPUT_LINE_MAX_BYTES - NOTICE_ROOM_BYTES;
/**
 * The cap when reading back a stored log: a line whose invalid bytes were
 * decoded to U+FFFD (3 bytes each when stored) can be longer in the file than
 * OUTPUT_LINE_MAX_BYTES, and must come back unchanged.
 */
export const STORED_LINE_MAX_BYTES = 4 * OUTPUT_LINE_MAX_BYTES;

const TRIM_NOTICE = /^\.\.\. \[output trimmed: (\d+) earlier line\(s\) elided\]\n$/;

export function trimNotice(count: number): string {
  return `... [output trimmed: ${count} earlier line(s) elided]\n`;
}

/** What ends a line that was cut: `dropped` bytes of it were read and not kept. */
export function lineCutNotice(dropped: number): string {
  return ` \u2026 [line cut: ${dropped} more bytes not kept]`;
}

/**
 * Bytes are decoded in blocks of at most this many: a line string the history
 * keeps may share its memory with the block it was cut from, so small blocks
 * bound what a kept line holds on to.
 */
const BLOCK_BYTES = 4096;

/** Bytes at the end of `b` that start a UTF-8 character still missing its continuation bytes. */
function unfinishedCharBytes(b: Uint8Array): number {
  const n = b.length;
  for (let back = 1; back <= 3 && back <= n; back++) {
    const c = b[n - back] as number;
    if ((c & 0xc0) === 0x80) continue; // a continuation byte: look further back for its lead
    const size = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 1;
    return size > back ? back : 0;
  }
  return 0;
}

/**
 * Splits a byte stream on `\n` or `\r`, keeping each terminator on its line;
 * `\r\n` is one terminator. Bytes are decoded as UTF-8 with replacement
 * characters, and a multi-byte character split across chunks stays whole.
 *
 * Bounded and linear: a line longer than the cap (OUTPUT_LINE_MAX_BYTES)
 * keeps its first OUTPUT_LINE_KEPT_BYTES (whole characters) and gets a
 * `lineCutNotice` before its terminator; the rest of it is only counted,
 * never decoded or stored, so the splitter holds at most one capped line
 * whatever it is fed, and each byte is looked at a fixed number of times.
 */
export class LineSplitter {
  readonly #max: number;
  /** The start of a character the previous chunk ended inside (at most 3 bytes). */
  #carry: Buffer | null = null;
  /** The unfinished line's text so far and its length in bytes. */
  #head = "";
  #headBytes = 0;
  /** Bytes past what a cut line keeps, held until the line proves longer than the cap (or not). */
  #spill: Buffer[] = [];
  #spillBytes = 0;
  /** Bytes of the unfinished line past the cap, counted and not kept (0: not cut). */
  #dropped = 0;
  /** The unfinished line ended in `\r` at the end of what was read: `\r\n` if a `\n` comes next. */
  #cr = false;

  /** `maxLineBytes`: the longest line kept whole (OUTPUT_LINE_MAX_BYTES unless reading a stored log). */
  constructor(maxLineBytes: number = OUTPUT_LINE_MAX_BYTES) {
    this.#max = maxLineBytes;
  }

  /** Returns the complete lines in this chunk. A trailing `\r` waits for the next chunk (it may be `\r\n`). */
  push(chunk: Uint8Array | string): string[] {
    let buf = typeof chunk === "string" ? Buffer.from(chunk, "utf8") : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (this.#carry !== null) {
      buf = Buffer.concat([this.#carry, buf]);
      this.#carry = null;
    }
    const lines: string[] = [];
    const keep = unfinishedCharBytes(buf);
    const end = buf.length - keep;
    if (keep > 0) this.#carry = Buffer.from(buf.subarray(end));
    let off = 0;
    while (off < end) {
      let next = Math.min(end, off + BLOCK_BYTES);
      // Blocks end on a character boundary, so each decodes on its own.
      for (let back = 0; back < 3 && next < end && ((buf[next] as number) & 0xc0) === 0x80; back++) next--;
      this.#block(buf.subarray(off, next), lines);
      off = next;
    }
    return lines;
  }

  /** Returns whatever is left at end of stream, terminated or not. */
  end(): string[] {
    const lines: string[] = [];
    if (this.#carry !== null) {
      this.#block(this.#carry, lines); // an unfinished character: decodes to U+FFFD
      this.#carry = null;
    }
    if (this.#cr) this.#emit("\r", lines);
    else if (this.#headBytes > 0 || this.#spillBytes > 0 || this.#dropped > 0) this.#emit("", lines);
    return lines;
  }

  #emit(terminator: string, lines: string[]): void {
    let text = this.#head;
    if (this.#dropped > 0) text += lineCutNotice(this.#dropped);
    else if (this.#spillBytes > 0) text += Buffer.concat(this.#spill).toString("utf8");
    lines.push(text + terminator);
    this.#head = "";
    this.#headBytes = 0;
    this.#spill = [];
    this.#spillBytes = 0;
    this.#dropped = 0;
    this.#cr = false;
  }

  #block(b: Buffer, lines: string[]): void {
    let start = 0;
    if (this.#cr) {
      // The line before ended in `\r`: `\r\n` if this block starts with `\n`.
      if (b[0] === 10) {
        this.#emit("\r\n", lines);
        start = 1;
      } else {
        this.#emit("\r", lines);
      }
    }
    const fits = this.#dropped === 0 && this.#spillBytes === 0 && this.#headBytes + b.length - start <= this.#max - NOTICE_ROOM_BYTES;
    if (fits) this.#whole(b, start, lines);
    else this.#capped(b, start, lines);
  }

  /** No line in this block can pass the cap: decode it at once and cut the text. */
  #whole(b: Buffer, from: number, lines: string[]): void {
    const text = b.toString("utf8", from);
    const n = text.length;
    let start = 0;
    // Next positions of each terminator, searched again only once passed.
    let nl = text.indexOf("\n");
    let cr = text.indexOf("\r");
    if (nl === -1) nl = n;
    if (cr === -1) cr = n;
    while (nl < n || cr < n) {
      let end: number; // just past the terminator
      if (nl < cr) {
        end = nl + 1;
      } else if (cr + 1 < n) {
        end = cr + 1 === nl ? cr + 2 : cr + 1;
      } else {
        // A `\r` ends the block: whether `\n` follows is for the next one to say.
        this.#head = this.#head === "" ? text.slice(start, cr) : this.#head + text.slice(start, cr);
        this.#cr = true;
        return;
      }
      lines.push(this.#head === "" ? text.slice(start, end) : this.#head + text.slice(start, end));
      this.#head = "";
      this.#headBytes = 0;
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
    if (start < n) {
      const tail = text.slice(start);
      // The tail's bytes: those after the block's last terminator (a terminator is one byte).
      const lastTerminator = Math.max(b.lastIndexOf(10), b.lastIndexOf(13));
      const tailBytes = b.length - Math.max(from, lastTerminator + 1);
      this.#head = this.#head === "" ? tail : this.#head + tail;
      this.#headBytes += tailBytes;
    }
  }

  /** A line here may pass the cap: walk the bytes, decoding only what is kept. */
  #capped(b: Buffer, from: number, lines: string[]): void {
    const n = b.length;
    let start = from;
    let nl = b.indexOf(10, start);
    let cr = b.indexOf(13, start);
    if (nl === -1) nl = n;
    if (cr === -1) cr = n;
    for (;;) {
      const end = Math.min(nl, cr);
      this.#take(b, start, end);
      if (end === n) return;
      if (end === nl) {
        this.#emit("\n", lines);
        start = end + 1;
      } else if (end + 1 === n) {
        this.#cr = true; // `\r` ends the block
        return;
      } else if (b[end + 1] === 10) {
        this.#emit("\r\n", lines);
        start = end + 2;
      } else {
        this.#emit("\r", lines);
        start = end + 1;
      }
      if (nl < start) {
        nl = b.indexOf(10, start);
        if (nl === -1) nl = n;
      }
      if (cr < start) {
        cr = b.indexOf(13, start);
        if (cr === -1) cr = n;
      }
    }
  }

  /**
   * Adds bytes `start..end` of `b` to the unfinished line: its first
   * OUTPUT_LINE_KEPT_BYTES (of the cap) as text, the next few held raw in
   * case the line ends within the cap, and once it is past the cap, only
   * counted.
   */
  #take(b: Buffer, start: number, end: number): void {
    if (end === start) return;
    if (this.#dropped > 0) {
      this.#dropped += end - start;
      return;
    }
    let from = start;
    const keep = this.#max - NOTICE_ROOM_BYTES;
    if (this.#spillBytes === 0 && this.#headBytes < keep) {
      let keepEnd = Math.min(end, start + keep - this.#headBytes);
      // Whole characters only: one the limit falls inside goes to the spill.
      while (keepEnd < end && keepEnd > start && ((b[keepEnd] as number) & 0xc0) === 0x80) keepEnd--;
      if (keepEnd > start) {
        this.#head += b.toString("utf8", start, keepEnd);
        this.#headBytes += keepEnd - start;
      }
      from = keepEnd;
    }
    if (from === end) return;
    if (this.#headBytes + this.#spillBytes + end - from <= this.#max) {
      this.#spill.push(Buffer.from(b.subarray(from, end)));
      this.#spillBytes += end - from;
    } else {
      this.#dropped = this.#spillBytes + end - from;
      this.#spill = [];
      this.#spillBytes = 0;
    }
  }
}

/**
 * A job's retained output. `\r` overwrites collapse (a progress bar keeps one
 * line, not hundreds); past OUTPUT_LINES_INFLIGHT lines or
 * OUTPUT_CHARS_INFLIGHT characters the oldest are dropped and the first line
 * counts how many were elided in all.
 */
export class OutputHistory {
  #lines: string[] = [];
  #chars = 0;
  #elided = 0;
  #trims = 0;

  constructor(initial: readonly string[] = []) {
    for (const line of initial) this.append(line);
  }

  append(line: string): void {
    const lines = this.#lines;
    const n = lines.length;
    const last = lines[n - 1];
    // A line ending in a bare `\r` is overwritten by the next one (unless that is a lone `\n`).
    if (last !== undefined && last.charCodeAt(last.length - 1) === 13 && line !== "\n") {
      lines[n - 1] = line;
      this.#chars += line.length - last.length;
    } else {
      lines.push(line);
      this.#chars += line.length;
    }
    if (lines.length > OUTPUT_LINES_INFLIGHT || this.#chars > OUTPUT_CHARS_INFLIGHT) this.trim(OUTPUT_LINES_RETAINED);
  }

  /** Keeps the newest `keep` lines, at most OUTPUT_CHARS_RETAINED characters of them (plus the elided-count notice). */
  trim(keep: number = OUTPUT_LINES_RETAINED): void {
    const lines = this.#lines;
    let body = lines;
    const first = lines[0];
    const match = first === undefined ? null : TRIM_NOTICE.exec(first);
    if (match !== null) {
      this.#elided = Math.max(this.#elided, Number(match[1]));
      body = lines.slice(1);
    }
    // The newest lines that fit both limits (the newest one always stays).
    let from = body.length;
    let chars = 0;
    while (from > 0 && body.length - from < keep) {
      const size = (body[from - 1] as string).length;
      if (chars + size > OUTPUT_CHARS_RETAINED && from < body.length) break;
      chars += size;
      from--;
    }
    if (from === 0) return;
    this.#elided += from;
    this.#trims += 1;
    const notice = trimNotice(this.#elided);
    this.#lines = [notice, ...body.slice(from)];
    this.#chars = notice.length + chars;
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

  /** Characters in the retained lines. */
  get chars(): number {
    return this.#chars;
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
export function splitStoredLog(text: string | Uint8Array): string[] {
  const splitter = new LineSplitter(STORED_LINE_MAX_BYTES);
  return [...splitter.push(text), ...splitter.end()];
}
