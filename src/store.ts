/**
 * Atomic, debounced JSON files.
 *
 * A write goes to a temp file in the destination folder, is flushed to disk and
 * then renamed over the target, so a crash leaves either the old or the new
 * file, never half of one. A file that fails to parse or to validate is moved
 * aside to `<file>.corrupt` and reported, never silently dropped.
 */
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import type { z } from "zod";
import { getLogger } from "./logger.ts";

const log = getLogger("store");

export async function atomicWrite(file: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const dir = path.dirname(file);
  await fs.mkdir(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString("hex")}.tmp`);
  const handle = await fs.open(tmp, "w", mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await fs.chmod(tmp, mode);
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

export type LoadResult<T> =
  | { kind: "missing" }
  | { kind: "ok"; value: T }
  | { kind: "corrupt"; movedTo: string; reason: string };

/** Moves a bad file aside so the next write does not destroy the evidence. */
export async function quarantine(file: string): Promise<string> {
  let target = `${file}.corrupt`;
  try {
    await fs.access(target);
    target = `${file}.${Date.now()}.corrupt`;
  } catch {
    // no earlier quarantine: use the plain name
  }
  await fs.rename(file, target);
  return target;
}

export interface JsonStoreOptions<T> {
  file: string;
  schema: z.ZodType<T>;
  /** File mode; 0o600 for anything secret. */
  mode?: number;
  /** Delay of `scheduleSave`; several calls within it write once. */
  debounceMs?: number;
}

export class JsonStore<T> {
  readonly file: string;
  readonly #schema: z.ZodType<T>;
  readonly #mode: number;
  readonly #debounceMs: number;
  #timer: NodeJS.Timeout | undefined;
  #pending: (() => T) | undefined;
  #writing: Promise<void> = Promise.resolve();

  constructor(opts: JsonStoreOptions<T>) {
    this.file = opts.file;
    this.#schema = opts.schema;
    this.#mode = opts.mode ?? 0o644;
    this.#debounceMs = opts.debounceMs ?? 250;
  }

  async load(): Promise<LoadResult<T>> {
    let text: string;
    try {
      text = await fs.readFile(this.file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return { kind: "missing" };
      throw err;
    }
    let reason: string;
    try {
      const parsed = this.#schema.safeParse(JSON.parse(text));
      if (parsed.success) return { kind: "ok", value: parsed.data };
      reason = parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
    } catch (err) {
      reason = `not valid JSON (${(err as Error).message})`;
    }
    const movedTo = await quarantine(this.file);
    log.error(`${this.file} is corrupt (${reason}); moved to ${movedTo}`);
    return { kind: "corrupt", movedTo, reason };
  }

  /** Write soon; the data is taken when the write happens, so it is always the newest. */
  scheduleSave(data: () => T): void {
    this.#pending = data;
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.flush().catch((err: unknown) => {
        log.error(`writing ${this.file} failed: ${String(err)}`);
      });
    }, this.#debounceMs);
  }

  /** Write now (and any scheduled write with it). */
  async saveNow(data: () => T): Promise<void> {
    this.#pending = data;
    await this.flush();
  }

  /** Writes a pending change, if any, and waits for every write in flight. */
  async flush(): Promise<void> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const pending = this.#pending;
    this.#pending = undefined;
    if (pending !== undefined) {
      this.#writing = this.#writing
        .catch(() => undefined)
        .then(() => atomicWrite(this.file, JSON.stringify(pending(), null, 1) + "\n", this.#mode));
    }
    await this.#writing;
  }
}
