/**
 * Text from a peer placed into Markdown that Home Assistant renders (a
 * persistent notification). Home Assistant's frontend renders GitHub-flavoured
 * Markdown with some HTML allowed, so a peer-chosen label such as
 * `[Approve here](http://evil)` or `<a href=…>` would become a link in a
 * trusted-looking notification. `markdownText` makes any string inert:
 *
 * - control characters (C0, DEL, C1), line and paragraph separators and the
 *   bidirectional overrides and isolates are removed (a newline would start a
 *   new block; a bidi override can make text read backwards), and runs of
 *   whitespace become one space;
 * - the result is cut to `max` code points (an ellipsis marks the cut);
 * - every ASCII punctuation character is backslash-escaped, which CommonMark
 *   and GFM define as the literal character: no emphasis, code, link, image,
 *   HTML tag, entity, heading, list, table or autolink (`http\:`, `www\.`,
 *   `a\@b` are not detected) can form.
 */

/** A peer-chosen name shown in a notification is cut to this many code points. */
export const NOTIFICATION_TEXT_MAX = 64;

// eslint-disable-next-line no-control-regex
const UNSAFE_RE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;
const ASCII_PUNCTUATION_RE = /[!-/:-@[-`{-~]/g;

/** `value` as literal Markdown text: cleaned, capped, every ASCII punctuation character escaped. */
export function markdownText(value: string, max = NOTIFICATION_TEXT_MAX): string {
  const flat = value.replace(UNSAFE_RE, " ").replace(/\s+/gu, " ").trim();
  const points = Array.from(flat);
  const capped = points.length > max ? `${points.slice(0, Math.max(0, max - 1)).join("").trimEnd()}…` : flat;
  return capped.replace(ASCII_PUNCTUATION_RE, (c) => `\\${c}`);
}
