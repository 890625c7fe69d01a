/**
 * The build router: turns the offloader's live state into a frozen snapshot
 * for `pickBuildPath` each time a compile is dispatched, and keeps a job that
 * was building remotely when the builder stopped waiting a while for its
 * build server to come back.
 */
import type { JobRouter, RouteDecision } from "../firmware/queue.ts";
import type { StoredJob } from "../firmware/job.ts";
import type { Offloader } from "./offloader.ts";
import { normalizeVersion } from "../esphome/version-policy.ts";
import type { BuildAffinity } from "./affinity.ts";
import { pickBuildPath, type SchedulerInputs, type VersionSkip } from "./scheduler.ts";

/** How long a restored remote job waits for its build server before building here. */
export const RESTORE_GRACE_MS = 30_000;

export interface BuildRouterDeps {
  offloader: Pick<Offloader, "snapshot" | "label" | "remoteBuildsEnabled"> & Partial<Pick<Offloader, "versionMatchPolicy">>;
  /** This builder's ESPHome version (null while unknown). */
  esphomeVersion?: () => string | null;
  /** Which build server compiled a device last (warm-cache affinity). */
  affinity?: Pick<BuildAffinity, "lastBuiltOn">;
  /** Called when a waiting decision may have changed (the grace period ran out). */
  wake: () => void;
  restoreGraceMs?: number;
  now?: () => number;
}

export class BuildRouter implements JobRouter {
  readonly #deps: BuildRouterDeps;
  readonly #startedAt: number;
  #graceTimer: NodeJS.Timeout | undefined;

  constructor(deps: BuildRouterDeps) {
    this.#deps = deps;
    this.#startedAt = (deps.now ?? Date.now)();
  }

  stop(): void {
    if (this.#graceTimer !== undefined) clearTimeout(this.#graceTimer);
  }

  /** The scheduler's inputs, copied out of the live state. */
  snapshot(busyPins: ReadonlySet<string>): SchedulerInputs {
    const rows = this.#deps.offloader.snapshot();
    const queueStatus = new Map<string, { idle: boolean }>();
    const open = new Set<string>();
    for (const row of rows) {
      if (row.session === null) continue;
      open.add(row.stored.pin_sha256);
      if (row.session.queueStatus !== null) queueStatus.set(row.stored.pin_sha256, { idle: row.session.queueStatus.idle });
    }
    return Object.freeze({
      remoteBuildsEnabled: this.#deps.offloader.remoteBuildsEnabled,
      pairings: Object.freeze(
        rows.map((r) =>
          Object.freeze({
            pin_sha256: r.stored.pin_sha256,
            status: r.status,
            enabled: r.stored.enabled,
            label: r.stored.label,
            esphome_version: r.stored.esphome_version,
            auto_provision_supported: r.stored.auto_provision_supported,
            version_policy: r.stored.version_policy,
          }),
        ),
      ),
      openPeerLinks: open,
      peerQueueStatus: queueStatus,
      busyPins: new Set(busyPins),
      esphomeVersion: normalizeVersion(this.#deps.esphomeVersion?.() ?? ""),
      versionMatchPolicy: this.#deps.offloader.versionMatchPolicy ?? "any",
    });
  }

  route(job: Readonly<StoredJob>, ctx: { busyPins: ReadonlySet<string>; localFree?: boolean }): RouteDecision {
    const inputs = this.snapshot(ctx.busyPins);
    if (job.source === "remote" && job.source_pin_sha256 !== "") return this.#restored(job, inputs);
    const lastBuiltOn = this.#deps.affinity?.lastBuiltOn(job.configuration);
    const decision = pickBuildPath(inputs, {
      ...(lastBuiltOn === undefined ? {} : { lastBuiltOn }),
      ...(ctx.localFree === undefined ? {} : { localFree: ctx.localFree }),
    });
    if (decision.path === "wait") return { kind: "wait" };
    if (decision.path === "no_compatible_peer") {
      return { kind: "fail", error: `no paired build server can build with this builder's ESPHome and version_match_policy is exact_required (it never builds here): ${reasons(decision.skipped)}` };
    }
    if (decision.path === "local") {
      const skipped = decision.skipped ?? [];
      return skipped.length === 0 ? { kind: "local" } : { kind: "local", note: `building on this machine: ${reasons(skipped)}` };
    }
    // The pairing can disappear between the snapshot and this lookup.
    const label = this.#deps.offloader.label(decision.pinSha256);
    if (label === undefined) return { kind: "local" };
    return { kind: "remote", pinSha256: decision.pinSha256, label };
  }

  /** A job that was building on a build server when this builder stopped. */
  #restored(job: Readonly<StoredJob>, inputs: SchedulerInputs): RouteDecision {
    const pin = job.source_pin_sha256;
    const pairing = inputs.pairings.find((p) => p.pin_sha256 === pin);
    const usable = inputs.remoteBuildsEnabled && pairing !== undefined && pairing.status === "approved" && pairing.enabled;
    const label = job.source_label || pin.slice(0, 8);
    if (usable && inputs.openPeerLinks.has(pin)) {
      if (inputs.busyPins?.has(pin) === true || inputs.peerQueueStatus.get(pin)?.idle !== true) return { kind: "wait" };
      return { kind: "remote", pinSha256: pin, label: job.source_label };
    }
    const grace = this.#deps.restoreGraceMs ?? RESTORE_GRACE_MS;
    const left = this.#startedAt + grace - (this.#deps.now ?? Date.now)();
    if (usable && left > 0) {
      this.#graceTimer ??= setTimeout(() => {
        this.#graceTimer = undefined;
        this.#deps.wake();
      }, left + 5);
      this.#graceTimer.unref();
      return { kind: "wait" };
    }
    return { kind: "local", note: `build server ${label} did not come back within ${Math.round(grace / 1000)} s; building on this machine instead` };
  }
}

function reasons(skipped: readonly VersionSkip[]): string {
  return skipped.map((s) => s.reason).join("; ");
}
