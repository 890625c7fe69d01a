/**
 * The build server's side of remote job output: each line of a job run for a
 * peer goes back to it as one `job_output` frame, with a bounded backlog.
 *
 * A job can print far faster than a link (or the offloader) takes frames, and
 * frames that wait sit in memory. So a line is sent only while the session
 * has at most RELAY_BACKLOG_BYTES queued; past that it is counted instead,
 * and the peer gets a notice with the count before the next line that goes
 * out (or before the job's final state). The job's own log here is
 * unaffected.
 */
import { DRAIN_HIGH_WATER_BYTES, type SecureChannel } from "../transport/channel.ts";
import type { BuildServerOutbound } from "../transport/messages.ts";

/** Queued bytes on a session past which output lines are skipped, not queued. */
export const RELAY_BACKLOG_BYTES = DRAIN_HIGH_WATER_BYTES;

export function skippedNotice(count: number): string {
  return `*** ${count} output line(s) not sent here: the link to this build server fell behind ***\n`;
}

export type RelayChannel = Pick<SecureChannel<BuildServerOutbound>, "send" | "bufferedAmount">;

/** Where a job's output goes: the peer (its pin) that sent it and its job id there. */
export interface RelayTarget {
  readonly peer: string;
  readonly remoteJobId: string;
}

export interface OutputRelayDeps {
  /** The peer a local job runs for, or null for a job of our own. Asked once per job. */
  target: (jobId: string) => RelayTarget | null;
  /** The peer's open sessions (usually one). */
  channels: (peer: string) => Iterable<RelayChannel>;
}

export class OutputRelay {
  readonly #deps: OutputRelayDeps;
  readonly #targets = new Map<string, RelayTarget | null>();
  readonly #skipped = new Map<string, number>();

  constructor(deps: OutputRelayDeps) {
    this.#deps = deps;
  }

  /** One line of a job's output (a `job_output` event). */
  line(jobId: string, line: string): void {
    let target = this.#targets.get(jobId);
    if (target === undefined) {
      target = this.#deps.target(jobId);
      this.#targets.set(jobId, target);
    }
    if (target === null) return;
    const channels = [...this.#deps.channels(target.peer)];
    if (channels.length === 0) return;
    const skipped = this.#skipped.get(jobId) ?? 0;
    if (channels.some((c) => c.bufferedAmount > RELAY_BACKLOG_BYTES)) {
      this.#skipped.set(jobId, skipped + 1);
      return;
    }
    if (skipped > 0) this.#skipped.delete(jobId);
    for (const channel of channels) {
      if (skipped > 0) this.#send(channel, target, skippedNotice(skipped));
      this.#send(channel, target, line);
    }
  }

  /** The job ended: the peer hears of lines it missed before the final state, and the job is forgotten. */
  end(jobId: string): void {
    const target = this.#targets.get(jobId);
    const skipped = this.#skipped.get(jobId) ?? 0;
    this.#targets.delete(jobId);
    this.#skipped.delete(jobId);
    if (target === null || target === undefined || skipped === 0) return;
    for (const channel of this.#deps.channels(target.peer)) this.#send(channel, target, skippedNotice(skipped));
  }

  clear(): void {
    this.#targets.clear();
    this.#skipped.clear();
  }

  #send(channel: RelayChannel, target: RelayTarget, line: string): void {
    channel.send({ type: "job_output", job_id: target.remoteJobId, stream: "stdout", line });
  }
}
