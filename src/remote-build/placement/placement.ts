/**
 * Where this builder's own compiles run, given the `local_builds` setting:
 * a pure decision over the scheduler's frozen snapshot, on top of
 * `pickBuildPath` (which picks the idle build server and owns every
 * eligibility rule: approved, enabled, connected, version policy).
 *
 *   always   - an idle build server if there is one, else here.
 *   fallback - an idle build server; while any eligible build server is
 *              connected but busy, wait for it; here only when none is.
 *   never    - an idle build server, else wait ("waiting for a build server").
 *
 * A compile whose build server was lost mid-build is dispatched again up to
 * `MAX_REROUTES` times; after that it builds here, unless `never` says no.
 */
import type { LocalBuilds } from "../../domain/policy.ts";
import { pickBuildPath, type SchedulerInputs, type VersionSkip } from "./scheduler.ts";

export { LOCAL_BUILDS, type LocalBuilds } from "../../domain/policy.ts";

/** Dispatches of a compile after lost build servers (upstream's dispatch pool: 3). */
export const MAX_REROUTES = 3;

export type Placement =
  | { readonly kind: "local"; readonly note?: string }
  | { readonly kind: "remote"; readonly pinSha256: string }
  | { readonly kind: "wait" }
  | { readonly kind: "fail"; readonly error: string };

export interface PlacementJob {
  /** May a build server take it (not forced here)? */
  readonly offloadable: boolean;
  /** Build servers lost while compiling it. */
  readonly remoteLosses: number;
  /**
   * This builder started moments ago and its build servers may not have
   * reconnected yet (upstream's dispatch pool waits 20 s after startup):
   * `fallback` then waits for a paired one instead of compiling here.
   */
  readonly startingUp?: boolean;
  /** Where this device was compiled last (warm-cache affinity): a build server's pin, or `THIS_MACHINE`. */
  readonly lastBuiltOn?: string;
}

/**
 * Whether some build server would take a compile if it were idle: the
 * scheduler's own eligibility rules, asked with every connected server idle
 * and none busy (so whatever eligibility filters it has apply unchanged).
 */
export function hasEligibleBuildServer(inputs: SchedulerInputs): boolean {
  const allIdle = new Map<string, { idle: boolean }>();
  for (const pin of inputs.openPeerLinks) allIdle.set(pin, { idle: true });
  return pickBuildPath({ ...inputs, peerQueueStatus: allIdle, busyPins: new Set() }).path === "remote";
}

/** An approved, enabled pairing, connected or not (while sending builds is on). */
export function hasPairedBuildServer(inputs: SchedulerInputs): boolean {
  return inputs.remoteBuildsEnabled && inputs.pairings.some((p) => p.status === "approved" && p.enabled);
}

const NEVER_HINT = "this builder does not compile (local_builds: never; change it under Build servers)";

export function placeCompile(inputs: SchedulerInputs, localBuilds: LocalBuilds, job: PlacementJob): Placement {
  if (!job.offloadable) {
    if (localBuilds === "never") {
      return { kind: "fail", error: `${NEVER_HINT}, and this job must build here (built here on request, flashed over a serial port, or given back by a build server that could not build or send it)` };
    }
    return { kind: "local" };
  }
  if (job.remoteLosses > MAX_REROUTES) {
    if (localBuilds === "never") return { kind: "fail", error: `build servers were lost mid-build ${job.remoteLosses} times; ${NEVER_HINT}` };
    return { kind: "local", note: `build servers were lost mid-build ${job.remoteLosses} times; building on this machine instead` };
  }
  const decision = pickBuildPath(inputs, job.lastBuiltOn === undefined ? {} : { lastBuiltOn: job.lastBuiltOn });
  if (decision.path === "remote") return { kind: "remote", pinSha256: decision.pinSha256 };
  if (decision.path === "wait") return { kind: "wait" };
  if (decision.path === "no_compatible_peer") {
    return { kind: "fail", error: `no paired build server can build with this builder's ESPHome and version_match_policy is exact_required (it never builds here): ${reasons(decision.skipped)}` };
  }
  const skipped = decision.skipped ?? [];
  const here: Placement = skipped.length === 0 ? { kind: "local" } : { kind: "local", note: `building on this machine: ${reasons(skipped)}` };
  switch (localBuilds) {
    case "always":
      return here;
    case "never":
      return { kind: "wait" };
    case "fallback":
      if (hasEligibleBuildServer(inputs)) return { kind: "wait" };
      return job.startingUp === true && hasPairedBuildServer(inputs) ? { kind: "wait" } : here;
  }
}

function reasons(skipped: readonly VersionSkip[]): string {
  return skipped.map((s) => s.reason).join("; ");
}
