/**
 * Reading the remote-build state files at start-up, field by field and row by
 * row, and saying what could not be read.
 *
 * A file that is not a JSON object at all is moved aside by the store
 * (`<file>.corrupt`). Otherwise each field and each row is checked on its
 * own: a bad row is skipped and the others kept; a bad switch takes its safe
 * value (the build server stays off, builds stay here). Whenever something
 * was skipped, the original file is first copied aside, so the rewrite that
 * follows loses no evidence. Each such finding becomes a `RemoteBuildProblem`
 * that the API and the panel show (Build servers), besides the log.
 */
import { promises as fs } from "node:fs";
import { z } from "zod";
import type { RemoteBuildProblem, RemoteBuildProblemKind } from "../domain/remote-build.ts";
import { getLogger } from "../logger.ts";
import type { LoadResult } from "../store.ts";

const log = getLogger("remote-build.state");

/** The shape the store checks: any JSON object (fields are read one by one here). */
export const looseFileSchema = z.record(z.string(), z.unknown());
export type LooseFile = z.infer<typeof looseFileSchema>;

/** Copies a file aside as `<file>.corrupt` (or `<file>.<ms>.corrupt` when that exists) and returns where. */
export async function keepCopy(file: string, now: () => number = Date.now): Promise<string> {
  let target = `${file}.corrupt`;
  try {
    await fs.access(target);
    target = `${file}.${now()}.corrupt`;
  } catch {
    // no earlier copy: use the plain name
  }
  await fs.copyFile(file, target);
  return target;
}

function zodReason(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join(".") || "(row)"}: ${i.message}`).join("; ");
}

/** What a state-file reader found; `problems` are complete once `finish` ran. */
export class StateFileReport {
  readonly file: string;
  readonly problems: RemoteBuildProblem[] = [];
  readonly #pending: { id: string; kind: RemoteBuildProblemKind; message: (keptAt: string) => string }[] = [];

  constructor(file: string) {
    this.file = file;
  }

  /** The file as a whole was unreadable and the store moved it aside. */
  movedAside(kind: RemoteBuildProblemKind, loaded: Extract<LoadResult<unknown>, { kind: "corrupt" }>, consequence: string): void {
    this.problems.push({
      id: kind,
      kind,
      file: this.file,
      kept_at: loaded.movedTo,
      message: `${this.file} could not be read (${loaded.reason}); it was moved to ${loaded.movedTo}. ${consequence}`,
    });
  }

  /** Something inside the file was skipped; the message gets where the original copy was kept. */
  skipped(id: string, kind: RemoteBuildProblemKind, message: (keptAt: string) => string): void {
    this.#pending.push({ id, kind, message });
  }

  get needsRewrite(): boolean {
    return this.#pending.length > 0;
  }

  /** Keeps a copy of the original (when anything was skipped) and logs every problem. */
  async finish(now?: () => number): Promise<void> {
    if (this.#pending.length > 0) {
      let keptAt: string | null = null;
      try {
        keptAt = await keepCopy(this.file, now);
      } catch (err) {
        log.error(`could not keep a copy of ${this.file}: ${String(err)}`);
      }
      for (const p of this.#pending.splice(0)) {
        this.problems.push({ id: p.id, kind: p.kind, file: this.file, kept_at: keptAt, message: p.message(keptAt ?? "(no copy could be made)") });
      }
    }
    for (const p of this.problems) log.error(p.message);
  }

  /**
   * Reads `raw[field]` as an array and each row with `schema`, in order. A
   * bad row, or a row whose `key` repeats an earlier one, is skipped and
   * reported; the rest are returned.
   */
  rows<T>(
    raw: LooseFile,
    field: string,
    opts: {
      schema: z.ZodType<T>;
      key: (row: T) => string;
      kind: RemoteBuildProblemKind;
      /** How a row is named in a message, from whatever could be read of it. */
      name: (raw: unknown, index: number) => string;
      /** What skipping a row means and what to do, e.g. "pair it again". */
      remedy: string;
      /** What a missing or non-list field means. */
      whenUnreadable: string;
    },
  ): T[] {
    const value = raw[field];
    if (value === undefined) return [];
    if (!Array.isArray(value)) {
      this.skipped(`${opts.kind}:list`, opts.kind, (kept) => `"${field}" in ${this.file} is not a list, so none of it could be read: ${opts.whenUnreadable} The original file was kept at ${kept}.`);
      return [];
    }
    const rows: T[] = [];
    const seen = new Set<string>();
    value.forEach((item: unknown, index) => {
      const parsed = opts.schema.safeParse(item);
      const name = opts.name(item, index);
      if (!parsed.success) {
        const reason = zodReason(parsed.error);
        this.skipped(`${opts.kind}:${index}`, opts.kind, (kept) => `${name} in ${this.file} could not be read (${reason}) and was skipped; ${opts.remedy} The others were kept. The original file was kept at ${kept}.`);
        return;
      }
      const key = opts.key(parsed.data);
      if (seen.has(key)) {
        this.skipped(`${opts.kind}:${index}`, opts.kind, (kept) => `${name} in ${this.file} repeats an earlier entry (${key}) and was skipped; the first one was kept. The original file was kept at ${kept}.`);
        return;
      }
      seen.add(key);
      rows.push(parsed.data);
    });
    return rows;
  }

  /**
   * Reads `raw[field]` as a boolean. Missing is `ifMissing` when given;
   * missing otherwise, or anything but a boolean, is reported and
   * `fallback` (the safe value) is used.
   */
  flag(raw: LooseFile, field: string, opts: { kind: RemoteBuildProblemKind; ifMissing?: boolean; fallback: boolean; consequence: string }): boolean {
    const value = raw[field];
    if (value === undefined && opts.ifMissing !== undefined) return opts.ifMissing;
    if (typeof value === "boolean") return value;
    this.skipped(`${opts.kind}:${field}`, opts.kind, (kept) => `"${field}" in ${this.file} is ${value === undefined ? "missing" : `${JSON.stringify(value).slice(0, 40)}, not true or false`}: ${opts.consequence} The original file was kept at ${kept}.`);
    return opts.fallback;
  }
}

/** How a row is named in messages: its label or id, when they can be read. */
export function rowName(what: string, raw: unknown, index: number, fields: readonly string[]): string {
  if (typeof raw === "object" && raw !== null) {
    for (const field of fields) {
      const value = (raw as Record<string, unknown>)[field];
      if (typeof value === "string" && value.trim() !== "") return `${what} #${index + 1} (${JSON.stringify(value.slice(0, 64))})`;
    }
  }
  return `${what} #${index + 1}`;
}
