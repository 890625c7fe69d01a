/**
 * The builder's current problems: plain objects with a stable code, the file
 * (or other thing) they are about and a message for people. Parts report a
 * problem when they had to work around something a person should know about (a
 * corrupt state file moved aside, a write that failed because the disk is
 * full) and clear it when it is over; a user may dismiss one. Every change is
 * an event (`builder_problem_added`, `builder_problem_cleared`), the list is
 * in `initial_state` and `problems/list`, and the panel shows it as a banner.
 *
 * Any part can report: take a `ProblemSink` and call `report`/`clear` with
 * one of the codes in `PROBLEM_CODES` (src/domain/problems.ts).
 */
import type { BuilderProblem, ProblemCode } from "./domain/problems.ts";
import type { EventBus } from "./events.ts";

export type { BuilderProblem, ProblemCode } from "./domain/problems.ts";
export { PROBLEM_CODES } from "./domain/problems.ts";

/** At most this many problems are kept; the oldest goes first. */
export const MAX_PROBLEMS = 100;
const MAX_MESSAGE = 2000;

export interface ProblemReport {
  code: ProblemCode;
  /** What it is about, usually a file or folder path; with the code it forms the id. */
  subject: string;
  message: string;
}

/** What a part that reports problems needs. */
export interface ProblemSink {
  report(problem: ProblemReport): void;
  clear(code: ProblemCode, subject: string): void;
}

export function problemId(code: ProblemCode, subject: string): string {
  return `${code}:${subject}`;
}

export interface ProblemsDeps {
  bus: EventBus;
  now?: () => Date;
}

export class Problems implements ProblemSink {
  readonly #bus: EventBus;
  readonly #now: () => Date;
  /** In report order (a Map keeps insertion order). */
  readonly #problems = new Map<string, BuilderProblem>();

  constructor(deps: ProblemsDeps) {
    this.#bus = deps.bus;
    this.#now = deps.now ?? (() => new Date());
  }

  /** Adds a problem, or replaces the one with the same code and subject. The same message again changes nothing. */
  report(report: ProblemReport): void {
    const id = problemId(report.code, report.subject);
    const message = report.message.length > MAX_MESSAGE ? `${report.message.slice(0, MAX_MESSAGE - 1)}…` : report.message;
    if (this.#problems.get(id)?.message === message) return;
    const problem: BuilderProblem = { id, code: report.code, subject: report.subject, message, at: this.#now().toISOString() };
    this.#problems.delete(id);
    this.#problems.set(id, problem);
    while (this.#problems.size > MAX_PROBLEMS) {
      const oldest = this.#problems.keys().next().value;
      if (oldest === undefined) break;
      this.#remove(oldest);
    }
    this.#bus.emit("builder_problem_added", { problem: { ...problem } });
  }

  /** Removes the problem with this code and subject, if there is one. */
  clear(code: ProblemCode, subject: string): void {
    this.#remove(problemId(code, subject));
  }

  /** Removes a problem by id (a user dismissed it); false when there is none. */
  dismiss(id: string): boolean {
    return this.#remove(id);
  }

  /** Every current problem, oldest first. */
  list(): BuilderProblem[] {
    return [...this.#problems.values()].map((p) => ({ ...p }));
  }

  #remove(id: string): boolean {
    if (!this.#problems.delete(id)) return false;
    this.#bus.emit("builder_problem_cleared", { id });
    return true;
  }
}
