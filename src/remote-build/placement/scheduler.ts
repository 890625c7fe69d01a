/**
 * Where a build runs: a pure decision over a frozen snapshot of the
 * offloader's state. No I/O, no clocks, no references to live objects.
 */
import { isPinnable, serveVersion, versionsMatch, type VersionPolicy } from "../../esphome/version-policy.ts";

export interface SchedulerPairing {
  readonly pin_sha256: string;
  readonly status: "pending" | "approved";
  /** The per-pairing switch: off keeps the pairing but routes nothing to it. */
  readonly enabled: boolean;
  /** Its name, for the reasons the decision gives. */
  readonly label?: string;
  /** The ESPHome version it last advertised ("" unknown). */
  readonly esphome_version?: string;
  /** It last advertised `auto_provision_supported: true`. */
  readonly auto_provision_supported?: boolean;
  /** Its own version policy, when it says (builders of ours); null for others. */
  readonly version_policy?: VersionPolicy | null;
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
  /** This builder's ESPHome version ("" unknown). */
  readonly esphomeVersion?: string;
  /** This builder's `version_match_policy` (default `any`). */
  readonly versionMatchPolicy?: VersionPolicy;
}

/** `lastBuiltOn` of a device this machine compiled last. */
export const THIS_MACHINE = "local";

/** What is known of the job being placed. */
export interface SchedulerJob {
  /** Where this device was compiled last (its build tree there is warm): a build server's pin, or `THIS_MACHINE`. */
  readonly lastBuiltOn?: string;
}

/** A build server left out for its ESPHome version, and why (for the job's output). */
export interface VersionSkip {
  readonly pinSha256: string;
  readonly reason: string;
}

/** The same shape either way, so callers pass `pinSha256` on without a branch. */
export type BuildPathDecision =
  | { readonly path: "local"; readonly pinSha256: ""; readonly skipped?: readonly VersionSkip[] }
  | { readonly path: "remote"; readonly pinSha256: string }
  /** `exact_required`: a build server that would do is connected but busy, or not connected; the job waits. */
  | { readonly path: "wait"; readonly pinSha256: "" }
  /** `exact_required`: no paired build server can build with this builder's version, and local is not allowed. */
  | { readonly path: "no_compatible_peer"; readonly pinSha256: ""; readonly skipped: readonly VersionSkip[] };

export const LOCAL: BuildPathDecision = Object.freeze({ path: "local", pinSha256: "" });

export function remote(pinSha256: string): BuildPathDecision {
  return Object.freeze({ path: "remote", pinSha256 });
}

/**
 * Whether a build server can build for this builder, by ESPHome version:
 * null when it can, else the reason. The version it would build with is its
 * own, or ours when it installs versions on demand (its policy says so, or,
 * for a build server that does not say, it advertised auto-provisioning and
 * ours can be installed by name); its own policy may refuse us outright; and
 * our `version_match_policy` then judges the version it would build with.
 */
export function versionSkipReason(pairing: SchedulerPairing, ours: string, policy: VersionPolicy): string | null {
  const theirs = pairing.esphome_version ?? "";
  const name = pairing.label ?? pairing.pin_sha256.slice(0, 8);
  let builds = theirs;
  if (pairing.version_policy !== undefined && pairing.version_policy !== null) {
    const serve = serveVersion(pairing.version_policy, theirs, ours, pairing.auto_provision_supported === true);
    if (serve.kind === "refuse") return `${name}: ${serve.reason}`;
    if (serve.kind === "provision") builds = serve.version;
  } else if (pairing.auto_provision_supported === true && ours !== "" && theirs !== ours && isPinnable(ours)) {
    builds = ours;
  }
  if (versionsMatch(policy, ours, builds)) return null;
  const runs = builds === "" ? "does not say which ESPHome it runs" : `builds with ESPHome ${builds}`;
  return `${name} ${runs} and this builder (ESPHome ${ours === "" ? "of unknown version" : ours}) sends builds only where the version matches (version_match_policy ${policy})`;
}

/**
 * The build server for a compile: among pairings that are approved, enabled,
 * connected, able to build with our ESPHome version (`versionSkipReason`),
 * not already busy with one of our compiles and reported idle, the one that
 * built this device last if it is among them (its build tree is warm), else
 * the first in pairing order; else local. A device this machine built last
 * still goes to an idle build server (keeping compiles off this machine is
 * what build servers are for). A build server that never sent its queue
 * status is treated as busy (it has told us nothing).
 *
 * Under `exact_required` nothing builds here while a pairing is approved and
 * enabled: the job waits while a matching build server is busy or away, and
 * fails (`no_compatible_peer`) when none matches.
 */
export function pickBuildPath(inputs: SchedulerInputs, job: SchedulerJob = {}): BuildPathDecision {
  if (!inputs.remoteBuildsEnabled) return LOCAL;
  const ours = inputs.esphomeVersion ?? "";
  const policy = inputs.versionMatchPolicy ?? "any";
  const skipped: VersionSkip[] = [];
  const skippedAway: VersionSkip[] = [];
  const ready: string[] = [];
  let usable = 0;
  let matching = 0;
  for (const pairing of inputs.pairings) {
    if (pairing.status !== "approved" || !pairing.enabled) continue;
    usable += 1;
    const why = versionSkipReason(pairing, ours, policy);
    if (why !== null) {
      // Only connected ones say why in a job: a build server that is away is left out anyway.
      (inputs.openPeerLinks.has(pairing.pin_sha256) ? skipped : skippedAway).push({ pinSha256: pairing.pin_sha256, reason: why });
      continue;
    }
    matching += 1;
    if (!inputs.openPeerLinks.has(pairing.pin_sha256)) continue;
    if (inputs.busyPins?.has(pairing.pin_sha256) === true) continue;
    if (inputs.peerQueueStatus.get(pairing.pin_sha256)?.idle !== true) continue;
    ready.push(pairing.pin_sha256);
  }
  const warm = job.lastBuiltOn;
  if (warm !== undefined && ready.includes(warm)) return remote(warm);
  const first = ready[0];
  if (first !== undefined) return remote(first);
  if (policy === "exact_required" && usable > 0) {
    return matching > 0 ? Object.freeze({ path: "wait", pinSha256: "" }) : Object.freeze({ path: "no_compatible_peer", pinSha256: "", skipped: [...skipped, ...skippedAway] });
  }
  return skipped.length === 0 ? LOCAL : Object.freeze({ path: "local", pinSha256: "", skipped });
}
