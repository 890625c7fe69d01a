/**
 * A runner the test drives by hand: each phase the queue starts becomes a
 * `ScriptedRun` whose output and outcome the test decides. It implements the
 * same JobRunner contract as the local and remote runners, so the queue under
 * test cannot tell the difference.
 */
import type { JobPhase, StoredJob } from "../../src/firmware/job.ts";
import type { JobRunner, PhaseContext, PhaseResult } from "../../src/firmware/runner.ts";

export class ScriptedRun {
  readonly job: Readonly<StoredJob>;
  readonly phase: JobPhase;
  readonly signal: AbortSignal;
  readonly #ctx: PhaseContext;
  readonly #resolve: (r: PhaseResult) => void;
  readonly done: Promise<PhaseResult>;

  constructor(ctx: PhaseContext) {
    this.#ctx = ctx;
    this.job = ctx.job;
    this.phase = ctx.phase;
    this.signal = ctx.signal;
    let resolve!: (r: PhaseResult) => void;
    this.done = new Promise((r) => (resolve = r));
    this.#resolve = resolve;
  }

  line(text: string): this {
    this.#ctx.onLine(text);
    return this;
  }

  succeed(exitCode = 0): void {
    this.#resolve({ exitCode, error: null });
  }

  fail(error = "boom", exitCode: number | null = 1): void {
    this.#resolve({ exitCode, error });
  }

  /** Ends the phase with exactly this result (failure reasons, a fallback to this machine). */
  end(result: PhaseResult): void {
    this.#resolve(result);
  }
}

export class ScriptedRunner implements JobRunner {
  readonly runs: ScriptedRun[] = [];
  readonly #waiters: ((run: ScriptedRun) => void)[] = [];
  #taken = 0;
  /** When set, every run ends itself when its signal aborts (like a killed process). */
  endOnAbort = true;

  runPhase(ctx: PhaseContext): Promise<PhaseResult> {
    const run = new ScriptedRun(ctx);
    this.runs.push(run);
    if (this.endOnAbort) {
      ctx.signal.addEventListener("abort", () => {
        run.fail("terminated by SIGTERM", null);
      });
    }
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) {
      this.#taken++;
      waiter(run);
    }
    return run.done;
  }

  /** The next run the queue starts (in start order). */
  next(): Promise<ScriptedRun> {
    const ready = this.runs[this.#taken];
    if (ready !== undefined) {
      this.#taken++;
      return Promise.resolve(ready);
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
}
