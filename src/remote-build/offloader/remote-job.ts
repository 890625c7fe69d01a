/**
 * One job on a build server, as this builder holds it: the job's output
 * lines and state changes, its outcome, cancel and the artifacts download.
 * The `PeerSession` that submitted it routes the job's frames here by job id
 * (`PeerSession.track`), so a runner never filters a shared stream.
 */

/** How a job on a build server ended; `lost`: the session closed first (`error` says why). */
export interface RemoteJobOutcome {
  status: "completed" | "failed" | "cancelled" | "lost";
  error: string;
  /** The build server's `failure_reason` ("provision": it could not provide the ESPHome version), else "". */
  failureReason: string;
}

/** What a handle needs from its session. */
export interface RemoteJobLink {
  /** Sends `cancel_job`; false when the session is gone. */
  cancel: (jobId: string) => boolean;
  download: (jobId: string, files?: readonly string[]) => Promise<Buffer>;
  /** The handle is done: stop routing frames to it. */
  release: (job: RemoteJob) => void;
}

const TERMINAL = new Set(["completed", "failed", "cancelled"]);

export class RemoteJob {
  readonly jobId: string;
  /** Settles once: the build server's terminal state, a local cancel that was not confirmed in time, or the session's end. */
  readonly outcome: Promise<RemoteJobOutcome>;
  readonly #link: RemoteJobLink;
  #settle: (outcome: RemoteJobOutcome) => void = () => undefined;
  #settled = false;
  #cancelTimer: NodeJS.Timeout | undefined;
  #onOutput: (line: string, stream: string) => void = () => undefined;
  #onState: (status: string, error: string) => void = () => undefined;

  constructor(jobId: string, link: RemoteJobLink) {
    this.jobId = jobId;
    this.#link = link;
    this.outcome = new Promise<RemoteJobOutcome>((resolve) => { this.#settle = resolve; });
  }

  /** Each output chunk of the job, as the build server sent it (terminator included). */
  onOutput(listener: (line: string, stream: string) => void): void {
    this.#onOutput = listener;
  }

  /** Each state the build server reports (queued, running, and the terminal one). */
  onState(listener: (status: string, error: string) => void): void {
    this.#onState = listener;
  }

  /**
   * Asks the build server to cancel. The outcome is `cancelled` at once when
   * the request cannot be sent, else after `waitMs` unless the build server
   * ended the job first.
   */
  cancel(waitMs: number): void {
    const sent = this.#link.cancel(this.jobId);
    if (!sent || waitMs <= 0) {
      this.#end({ status: "cancelled", error: "", failureReason: "" });
      return;
    }
    this.#cancelTimer ??= setTimeout(() => { this.#end({ status: "cancelled", error: "", failureReason: "" }); }, waitMs);
    this.#cancelTimer.unref();
  }

  /** Downloads the completed job's artifacts tarball (checked against its SHA-256). */
  downloadArtifacts(files?: readonly string[]): Promise<Buffer> {
    return this.#link.download(this.jobId, files);
  }

  /** The runner is done with the job: frames for it are no longer routed here. */
  close(): void {
    if (this.#cancelTimer !== undefined) clearTimeout(this.#cancelTimer);
    this.#link.release(this);
  }

  // ---- routed by the session ----

  output(line: string, stream: string): void {
    this.#onOutput(line, stream);
  }

  state(status: string, error: string, failureReason: string): void {
    this.#onState(status, error);
    if (TERMINAL.has(status)) this.#end({ status: status as RemoteJobOutcome["status"], error, failureReason });
  }

  /** The session ended before the job did. */
  lost(why: string): void {
    this.#end({ status: "lost", error: why, failureReason: "" });
  }

  #end(outcome: RemoteJobOutcome): void {
    if (this.#settled) return;
    this.#settled = true;
    if (this.#cancelTimer !== undefined) clearTimeout(this.#cancelTimer);
    this.#settle(outcome);
  }
}
