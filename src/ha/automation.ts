/**
 * Automation commands: the JSON objects Home Assistant automations send, as
 * lines on the add-on's stdin (`hassio.addon_stdin`) or as the data of the
 * `esphome_builder_command` event. For example
 * `{"command": "install", "configuration": "kitchen.yaml"}` or
 * `{"command": "install_bulk", "configurations": "all"}`.
 *
 * Each command maps onto the panel API's command of the same meaning and goes
 * through its argument schema and handler, so the rules (configuration names,
 * ports, serial ports in bulk installs, supersede) are the panel's. A command
 * that is malformed or unknown is logged with the reason and runs nothing.
 */
import type { Readable } from "node:stream";
import { z } from "zod";
import { COMMANDS, type ApiServices, type ClientContext } from "../api/commands.ts";
import { BuilderError, errorMessage } from "../errors.ts";
import type { FirmwareJob } from "../firmware/job.ts";
import { getLogger } from "../logger.ts";

const log = getLogger("automation");

/** The event automations fire to start work. */
export const COMMAND_EVENT = "esphome_builder_command";

/** Automation command -> panel API command. */
export const AUTOMATION_COMMANDS = {
  install: "firmware/install",
  install_bulk: "firmware/install_bulk",
  compile: "firmware/compile",
  upload: "firmware/upload",
  clean: "firmware/clean",
  cancel: "firmware/cancel",
} as const satisfies Record<string, keyof typeof COMMANDS>;

export type AutomationCommandName = keyof typeof AUTOMATION_COMMANDS;

const envelope = z
  .object({ command: z.enum(Object.keys(AUTOMATION_COMMANDS) as [AutomationCommandName, ...AutomationCommandName[]]) })
  .loose();

/** Longest stdin line read as a command; longer lines are skipped unread and refused. */
export const MAX_COMMAND_BYTES = 64 * 1024;

export type AutomationOutcome =
  | { ok: true; command: AutomationCommandName; jobs: FirmwareJob[] }
  | { ok: false; reason: string };

function show(value: unknown): string {
  // Values come from JSON.parse or Home Assistant event data: always serialisable.
  return value === undefined ? "undefined" : JSON.stringify(value);
}

function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length > 0 ? i.path.join(".") : "command"}: ${i.message}`).join("; ");
}

/** The client context automation commands run with (they never open streams or pairing windows). */
const AUTOMATION_CLIENT: ClientContext = { clientId: "automation", onClose: () => undefined };

/**
 * Validates and runs one command. Never throws: the outcome says what
 * happened, and it is logged with `origin` (`stdin`, `event`).
 */
export async function runAutomationCommand(input: unknown, services: ApiServices, origin: string): Promise<AutomationOutcome> {
  const refuse = (reason: string): AutomationOutcome => {
    log.warning(`automation command from ${origin} refused: ${reason}`);
    return { ok: false, reason };
  };
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    return refuse(`expected a JSON object such as {"command": "install", "configuration": "kitchen.yaml"}, got ${show(input).slice(0, 200)}`);
  }
  const head = envelope.safeParse(input);
  if (!head.success) {
    const given = (input as Record<string, unknown>).command;
    return refuse(
      given === undefined
        ? `no "command"; use one of ${Object.keys(AUTOMATION_COMMANDS).join(", ")}`
        : `unknown command ${show(given).slice(0, 100)}; use one of ${Object.keys(AUTOMATION_COMMANDS).join(", ")}`,
    );
  }
  const { command, ...rest } = head.data;
  const target = COMMANDS[AUTOMATION_COMMANDS[command]];
  const args = target.args.safeParse(rest);
  if (!args.success) return refuse(`${command}: ${describeIssues(args.error)}`);
  let result: unknown;
  try {
    result = await (target.run as (a: unknown, s: ApiServices, c: ClientContext) => unknown)(args.data, services, AUTOMATION_CLIENT);
  } catch (err) {
    return refuse(`${command}: ${err instanceof BuilderError ? err.message : `internal error: ${errorMessage(err)}`}`);
  }
  const jobs = (Array.isArray(result) ? result : [result]) as FirmwareJob[];
  const what = jobs.map((j) => `${j.job_type} ${j.configuration} (job ${j.job_id})`).join(", ");
  log.info(`automation command from ${origin}: ${command} -> ${command === "cancel" ? `cancel ${what}` : what === "" ? "nothing to do" : what}`);
  return { ok: true, command, jobs };
}

/**
 * Parses one stdin line. Home Assistant JSON-encodes the `input` of
 * `hassio.addon_stdin`, so a dict arrives as an object and a string as a JSON
 * string; a string that itself holds JSON is decoded once more.
 */
export function parseCommandLine(line: string): { ok: true; value: unknown } | { ok: false; reason: string } {
  const text = line.trim();
  if (Buffer.byteLength(text, "utf8") > MAX_COMMAND_BYTES) return { ok: false, reason: `line longer than ${MAX_COMMAND_BYTES} bytes` };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { ok: false, reason: `not JSON (${errorMessage(err)})` };
  }
  if (typeof value === "string") {
    try {
      value = JSON.parse(value);
    } catch {
      // a plain string: refused by the command check with a clear message
    }
  }
  return { ok: true, value };
}

/**
 * Reads commands from a stream, one JSON object per line (`\n`; a `\r`
 * before it is trimmed). A line is held to MAX_COMMAND_BYTES while it is
 * read: once it passes that, what came so far is dropped and the rest up to
 * the next newline is skipped unread, then the line is refused with a logged
 * error, and the next line is read as usual. So no input, however long its
 * lines, makes the reader hold more than MAX_COMMAND_BYTES.
 * Returns a function that stops reading.
 */
export function readCommandLines(input: Readable, onCommand: (value: unknown) => void): () => void {
  let parts: Buffer[] = [];
  let held = 0;
  /** Bytes of an over-long line passed over so far; -1 while the line is within the limit. */
  let skipped = -1;
  const line = (text: string): void => {
    if (text.trim() === "") return;
    const parsed = parseCommandLine(text);
    if (!parsed.ok) {
      log.warning(`automation command from stdin refused: ${parsed.reason}: ${JSON.stringify(text.slice(0, 200))}`);
      return;
    }
    onCommand(parsed.value);
  };
  const tooLong = (bytes: number): void => {
    log.error(
      `automation command from stdin refused: line of ${bytes} bytes is longer than the ${MAX_COMMAND_BYTES}-byte limit; ` +
        "it was skipped up to its newline. Send one JSON object per line, such as {\"command\": \"install\", \"configuration\": \"kitchen.yaml\"}",
    );
  };
  const onData = (chunk: Buffer | string): void => {
    const bytes = typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk;
    for (let start = 0; start < bytes.length;) {
      const newline = bytes.indexOf(10, start);
      const end = newline === -1 ? bytes.length : newline;
      if (skipped === -1 && held + end - start > MAX_COMMAND_BYTES) {
        skipped = held;
        parts = [];
        held = 0;
      }
      if (skipped !== -1) {
        skipped += end - start;
      } else if (end > start) {
        parts.push(Buffer.from(bytes.subarray(start, end))); // a copy: the chunk is not kept
        held += end - start;
      }
      if (newline === -1) return;
      start = newline + 1;
      if (skipped !== -1) {
        tooLong(skipped);
        skipped = -1;
      } else {
        const text = Buffer.concat(parts, held).toString("utf8");
        parts = [];
        held = 0;
        line(text);
      }
    }
  };
  const onEnd = (): void => {
    if (skipped !== -1) tooLong(skipped);
    else if (held > 0) line(Buffer.concat(parts, held).toString("utf8"));
    parts = [];
    held = 0;
    skipped = -1;
    log.debug("stdin closed; no more automation commands from it");
  };
  const onError = (err: Error): void => {
    log.warning(`stdin: ${err.message}`);
  };
  input.on("data", onData);
  input.on("end", onEnd);
  input.on("error", onError);
  return () => {
    // The error listener stays: stdin may still fail after this, and must not crash the builder.
    input.off("data", onData);
    input.off("end", onEnd);
    input.pause();
  };
}
