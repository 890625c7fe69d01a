/**
 * A job's log as the panel shows it: output chunks in, display lines out.
 *
 * - A chunk ending in a bare `\r` (a progress bar redrawing itself) is
 *   replaced by the next chunk, so a bar keeps one line.
 * - At most `maxLines` lines are kept; older ones are dropped in batches and
 *   counted in `hidden` ("N earlier lines hidden").
 *
 * Listeners hear about changes synchronously; a view should coalesce them
 * (one render per animation frame).
 */

export const DEFAULT_MAX_LINES = 100_000;

function endsWithBareCr(chunk: string): boolean {
  return chunk.length > 0 && chunk.charCodeAt(chunk.length - 1) === 13;
}

export class LogModel {
  readonly maxLines: number;
  #lines: string[] = [];
  #hidden = 0;
  #openLine = false;
  #version = 0;
  readonly #listeners = new Set<() => void>();

  constructor(maxLines = DEFAULT_MAX_LINES) {
    this.maxLines = Math.max(1, maxLines);
  }

  /** Lines kept (after `\r` collapse and the cap). */
  get length(): number {
    return this.#lines.length;
  }

  /** Lines dropped from the top to respect `maxLines`. */
  get hidden(): number {
    return this.#hidden;
  }

  /** Bumped on every change: a cheap "did anything change" check. */
  get version(): number {
    return this.#version;
  }

  line(index: number): string {
    return this.#lines[index] ?? "";
  }

  /** A copy of the kept lines. */
  lines(): string[] {
    return [...this.#lines];
  }

  /** Adds one output chunk (a line with its terminator, as the builder sends it). */
  push(chunk: string): void {
    this.#append(chunk);
    this.#changed();
  }

  pushMany(chunks: Iterable<string>): void {
    for (const chunk of chunks) this.#append(chunk);
    this.#changed();
  }

  clear(): void {
    this.#lines = [];
    this.#hidden = 0;
    this.#openLine = false;
    this.#changed();
  }

  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #append(chunk: string): void {
    if (this.#openLine && this.#lines.length > 0) this.#lines[this.#lines.length - 1] = chunk;
    else this.#lines.push(chunk);
    this.#openLine = endsWithBareCr(chunk);
    // Drop in batches (a tenth of the cap) so trimming stays amortised O(1) per line.
    if (this.#lines.length > this.maxLines) {
      const drop = this.#lines.length - this.maxLines + Math.floor(this.maxLines / 10);
      const n = Math.min(drop, this.#lines.length - 1);
      this.#lines.splice(0, n);
      this.#hidden += n;
    }
  }

  #changed(): void {
    this.#version++;
    for (const listener of [...this.#listeners]) listener();
  }
}
