/**
 * Where a build runs: a pure decision over a frozen snapshot of the
 * offloader's state. No I/O, no clocks, no references to live objects.
 */

export interface SchedulerPairing {
  readonly pin_sha256: string;
  readonly status: "pending" | "approved";
  /** The per-pairing switch: off keeps the pairing but routes nothing to it. */
  readonly enabled: boolean;
}

export interface PeerQueueSnapshot {
  readonly idle: boolean;
}

export interface SchedulerInputs {
  /** The offloader's master switch. */
  readonly remoteBuildsEnabled: boolean;
  /** Pairings in the order they were made. */
  readonly pairings: readonly SchedulerPairing[];
  /** Pins with an open peer-link session. */
  readonly openPeerLinks: ReadonlySet<string>;
  /** The last queue status each build server sent. */
  readonly peerQueueStatus: ReadonlyMap<string, PeerQueueSnapshot>;
  /** Pins already compiling one of our jobs (one compile per build server at a time). */
  readonly busyPins?: ReadonlySet<string>;
}

/** The same shape either way, so callers pass `pinSha256` on without a branch. */
export type BuildPathDecision =
  | { readonly path: "local"; readonly pinSha256: "" }
  | { readonly path: "remote"; readonly pinSha256: string };

export const LOCAL: BuildPathDecision = Object.freeze({ path: "local", pinSha256: "" });

export function remote(pinSha256: string): BuildPathDecision {
  return Object.freeze({ path: "remote", pinSha256 });
}

/**
 * The first pairing that is approved, enabled, connected, reported idle and
 * not already busy with one of our compiles; else local. A build server that
 * never sent its queue status is treated as busy (it has told us nothing).
 */
export function pickBuildPath(inputs: SchedulerInputs): BuildPathDecision {
  if (!inputs.remoteBuildsEnabled) return LOCAL;
  for (const pairing of inputs.pairings) {
    if (pairing.status !== "approved" || !pairing.enabled) continue;
    if (!inputs.openPeerLinks.has(pairing.pin_sha256)) continue;
    if (inputs.busyPins?.has(pairing.pin_sha256) === true) continue;
    const status = inputs.peerQueueStatus.get(pairing.pin_sha256);
    if (status?.idle !== true) continue;
    return remote(pairing.pin_sha256);
  }
  return LOCAL;
}
