/**
 * ESPHome's coloured output, parsed one line at a time into styled segments.
 *
 * The CLI writes real ESC sequences, and with `--dashboard` the literal text
 * `\033[` instead of the ESC byte; both are understood. SGR colours 30-37 and
 * 90-97, bold and reset are kept; every other CSI sequence (`ESC[2K`, cursor
 * moves) and stray control characters are dropped. Each line starts unstyled:
 * ESPHome resets at the end of every line, and it lets a virtualised log
 * render any line on its own.
 */

export interface Segment {
  text: string;
  /** SGR foreground code (30-37, 90-97) or null for the default colour. */
  fg: number | null;
  bold: boolean;
  underline: boolean;
}

const ESC = "\x1b";
const LITERAL_ESC = "\\033[";
// CSI: ESC [ parameter bytes, intermediate bytes, one final byte.
// eslint-disable-next-line no-control-regex
const CSI_RE = /\x1b\[([0-?]*)[ -/]*([@-~])/g;
// Other escapes (ESC followed by one byte, e.g. charset selection) and C0 controls except tab.
// eslint-disable-next-line no-control-regex
const STRAY_RE = /\x1b[^[]?|[\x00-\x08\x0b-\x1f\x7f]/g;

function clean(text: string): string {
  return text.replace(STRAY_RE, "");
}

/** Removes the line terminator (`\n`, `\r`, `\r\n`). */
export function stripTerminator(line: string): string {
  let end = line.length;
  while (end > 0) {
    const c = line.charCodeAt(end - 1);
    if (c !== 10 && c !== 13) break;
    end--;
  }
  return end === line.length ? line : line.slice(0, end);
}

/** The line as plain text: terminator, escapes and control characters removed. */
export function plainText(line: string): string {
  return parseAnsi(line)
    .map((s) => s.text)
    .join("");
}

export function parseAnsi(rawLine: string): Segment[] {
  let line = stripTerminator(rawLine);
  if (line.includes(LITERAL_ESC)) line = line.replaceAll(LITERAL_ESC, `${ESC}[`);
  if (!line.includes(ESC)) {
    const text = clean(line);
    return text === "" ? [] : [{ text, fg: null, bold: false, underline: false }];
  }
  const segments: Segment[] = [];
  let fg: number | null = null;
  let bold = false;
  let underline = false;
  let last = 0;
  const push = (text: string): void => {
    const cleaned = clean(text);
    if (cleaned === "") return;
    const prev = segments[segments.length - 1];
    if (prev !== undefined && prev.fg === fg && prev.bold === bold && prev.underline === underline) prev.text += cleaned;
    else segments.push({ text: cleaned, fg, bold, underline });
  };
  CSI_RE.lastIndex = 0;
  for (let m = CSI_RE.exec(line); m !== null; m = CSI_RE.exec(line)) {
    push(line.slice(last, m.index));
    last = m.index + m[0].length;
    if (m[2] !== "m") continue;
    const params = m[1] ?? "";
    if (params.startsWith("?")) continue;
    const codes = params === "" ? [0] : params.split(";").map((p) => (p === "" ? 0 : Number(p)));
    for (let i = 0; i < codes.length; i++) {
      const code = codes[i] ?? 0;
      if (code === 0) {
        fg = null;
        bold = false;
        underline = false;
      } else if (code === 1) bold = true;
      else if (code === 4) underline = true;
      else if (code === 22) bold = false;
      else if (code === 24) underline = false;
      else if (code === 39) fg = null;
      else if ((code >= 30 && code <= 37) || (code >= 90 && code <= 97)) fg = code;
      else if (code === 38 || code === 48) {
        // 256-colour and true-colour forms: skip their arguments, keep the default colour.
        const kind = codes[i + 1];
        i += kind === 5 ? 2 : kind === 2 ? 4 : 1;
      }
    }
  }
  push(line.slice(last));
  return segments;
}
