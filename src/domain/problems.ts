/**
 * Builder problems: what the builder could not do and a person should know.
 */

/**
 * Stable codes of builder problems: things the builder could not do or had to
 * work around, which a person should know about (docs/API.md lists them).
 */
export const PROBLEM_CODES = [
  /** A state file did not parse or validate; it was moved aside and the builder started without it. */
  "state_file_corrupt",
  /** A state file could not be read at all (a folder, no permission); moved aside, or ignored when that failed too. */
  "state_file_unreadable",
  /** Rows of a state file were refused (say a job whose configuration is not a plain file name) and skipped. */
  "state_rows_skipped",
  /** A write failed because the disk (or quota) is full; cleared by the next write that succeeds. */
  "disk_full",
  /** A write failed for another reason (read-only file system, permissions, I/O error); cleared likewise. */
  "storage_error",
] as const;
export type ProblemCode = (typeof PROBLEM_CODES)[number];

/** One current problem of the builder (`problems/list`, `initial_state.problems`). */
export interface BuilderProblem {
  /** `<code>:<subject>`: reporting the same code and subject again replaces the problem. */
  id: string;
  code: ProblemCode;
  /** What it is about: usually a file or folder path. */
  subject: string;
  /** For people: what happened, what the builder did, and what to do about it. */
  message: string;
  /** When it was (last) reported, ISO 8601. */
  at: string;
}
