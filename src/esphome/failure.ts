/**
 * Why an ESPHome run failed, in ESPHome's own words, read from its output so a
 * job's `error` says it (a wrong OTA password, an unreachable device, a
 * configuration that does not validate, a compiler error) and not only an exit
 * code. Shapes read (ESPHome 2026.10, colours on as the builder runs it):
 *
 * - its log records, `ERROR <message>` (a message may run over several lines,
 *   up to the colour reset that ends the record);
 * - the `Failed config` block `esphome config`/`compile` print on stdout: the
 *   component path, then the message in bold red;
 * - the first compiler diagnostic, `<file>:<line>:<col>: error: <message>`,
 *   which ninja relays before ESPHome's own `Host build failed`.
 */
import { stripAnsi } from "../firmware/output.ts";

/** Longest message kept (the job's `error` is one line in the panel). */
export const FAILURE_MAX_CHARS = 600;
const MAX_RECORD_LINES = 6;

// eslint-disable-next-line no-control-regex
const RESET = /(?:\x1b|\\033)\[0m\s*$/;
// eslint-disable-next-line no-control-regex
const BOLD_RED = /(?:\x1b|\\033)\[1;31m/;
// eslint-disable-next-line no-control-regex
const COLOURED = /^(?:\x1b|\\033)\[/;
const LEVEL = /^(?:DEBUG|INFO|WARNING|ERROR|CRITICAL) /;
const COMPILER_ERROR = /^\S+:\d+(?::\d+)?: (?:fatal )?error: /;

function clip(text: string): string {
  const one = text.replace(/\s+/g, " ").trim();
  return one.length <= FAILURE_MAX_CHARS ? one : `${one.slice(0, FAILURE_MAX_CHARS - 1)}…`;
}

export class FailureReader {
  /** The last ERROR record, as lines. */
  #error: string[] | null = null;
  /** Whether the last ERROR record is still open (no colour reset seen yet). */
  #open = false;
  #compiler: string | null = null;
  /** The Failed config block once its header was seen: the component path, then the message. */
  #config: { path: string | null; message: string | null } | null = null;

  /** Feeds one output line (with its terminator, escape codes and all). */
  feed(raw: string): void {
    const line = stripAnsi(raw).replace(/[\r\n]+$/, "");
    if (this.#open && this.#error !== null) {
      if (LEVEL.test(line) || this.#error.length >= MAX_RECORD_LINES) {
        this.#open = false;
      } else {
        if (line.trim() !== "") this.#error.push(line.trim());
        if (RESET.test(raw)) this.#open = false;
        return;
      }
    }
    if (line.startsWith("ERROR ")) {
      this.#error = [line.slice(6).trim()];
      // Coloured output ends each record with a reset; without colours it is one line.
      this.#open = COLOURED.test(raw) && !RESET.test(raw);
      return;
    }
    if (this.#compiler === null && COMPILER_ERROR.test(line)) {
      this.#compiler = line.trim();
      return;
    }
    if (line === "Failed config") {
      this.#config = { path: null, message: null };
      return;
    }
    const config = this.#config;
    if (config !== null && config.message === null && line.trim() !== "") {
      if (config.path === null) config.path = line.replace(/\s*\[source [^\]]*\]\s*$/, "").replace(/:$/, "").trim();
      else if (BOLD_RED.test(raw)) config.message = line.trim();
    }
  }

  /** The failure in ESPHome's words, or null when the output named none. */
  get message(): string | null {
    const parts: string[] = [];
    if (this.#config !== null) {
      const { path, message } = this.#config;
      parts.push(`Failed config${path === null ? "" : ` in ${path}`}${message === null ? "" : `: ${message}`}`);
    }
    if (this.#error !== null) parts.push(this.#error.join(" "));
    if (this.#compiler !== null) parts.push(this.#compiler);
    return parts.length === 0 ? null : clip(parts.join("; "));
  }
}
