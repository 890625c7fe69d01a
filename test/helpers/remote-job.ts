/** One job on a build server, watched through its handle as the remote runner watches it. */
import type { PeerSession } from "../../src/remote-build/offloader/peer-session.ts";
import type { RemoteJob } from "../../src/remote-build/offloader/remote-job.ts";

export interface WatchedJob {
  readonly handle: RemoteJob;
  /** Each state the build server reported for the job, in order. */
  readonly states: { status: string; error: string }[];
  /** Each output chunk of the job, as sent. */
  readonly lines: string[];
  /** The reported statuses alone. */
  statuses: () => string[];
}

/**
 * Takes `jobId`'s handle on `session` (`PeerSession.track`) and records what
 * it hears. Call it before the job is submitted, so no early frame is missed;
 * the handle is the job's only one (a later `track` of the id takes its frames).
 */
export function watchJob(session: PeerSession, jobId: string): WatchedJob {
  const handle = session.track(jobId);
  const states: { status: string; error: string }[] = [];
  const lines: string[] = [];
  handle.onState((status, error) => states.push({ status, error }));
  handle.onOutput((line) => lines.push(line));
  return { handle, states, lines, statuses: () => states.map((s) => s.status) };
}
