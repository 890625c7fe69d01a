/**
 * The build router: turns the offloader's live state into a frozen snapshot
 * for `placeCompile` (the `local_builds` setting over `pickBuildPath`) each
 * time a compile is dispatched, and keeps a job that was building remotely
 * when the builder stopped waiting a while for its build server to come back.
 */
import type { JobRouter, RouteContext, RouteDecision } from "../../firmware/queue.ts";
import type { StoredJob } from "../../firmware/job.ts";
import type { Offloader } from "../offloader/offloader.ts";
import { normalizeVersion } from "../../esphome/version-policy.ts";
import type { BuildAffinity } from "./affinity.ts";
import { placeCompile, type LocalBuilds } from "./placement.ts";
import type { SchedulerInputs } from "./scheduler.ts";

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
  /** The `local_builds` setting, read at each decision (default `always`). */
  localBuilds?: () => LocalBuilds;
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

  route(job: Readonly<StoredJob>, ctx: RouteContext): RouteDecision {
    const inputs = this.snapshot(ctx.busyPins);
    const offloadable = ctx.offloadable ?? true;
    if (offloadable && job.source === "remote" && job.source_pin_sha256 !== "") {
      const restored = this.#restored(job, inputs);
      if (restored !== null) return restored;
    }
    const localBuilds = this.#deps.localBuilds?.() ?? "always";
    const startingUp = this.#graceLeft() > 0;
    const lastBuiltOn = this.#deps.affinity?.lastBuiltOn(job.configuration);
    const placed = placeCompile(inputs, localBuilds, {
      offloadable,
      remoteLosses: ctx.remoteLosses ?? 0,
      startingUp,
      ...(lastBuiltOn === undefined ? {} : { lastBuiltOn }),
    });
    if (placed.kind === "wait" && startingUp) this.#wakeAfterGrace();
    if (placed.kind !== "remote") return placed;
    // The pairing can disappear between the snapshot and this lookup.
    const label = this.#deps.offloader.label(placed.pinSha256);
    if (label === undefined) return localBuilds === "always" ? { kind: "local" } : { kind: "wait" };
    return { kind: "remote", pinSha256: placed.pinSha256, label };
  }

  /** How long build servers still have to reconnect after this builder started. */
  #graceLeft(): number {
    return this.#startedAt + (this.#deps.restoreGraceMs ?? RESTORE_GRACE_MS) - (this.#deps.now ?? Date.now)();
  }

  /** Dispatch again when the start-up grace is over (a waiting decision may change then). */
  #wakeAfterGrace(): void {
    this.#graceTimer ??= setTimeout(() => {
      this.#graceTimer = undefined;
      this.#deps.wake();
    }, this.#graceLeft() + 5);
    this.#graceTimer.unref();
  }

  /**
   * A job that was building on a build server when this builder stopped:
   * back to that build server, or wait for it during the grace period; null
   * once it is no use waiting (the job is then placed like any other).
   */
  #restored(job: Readonly<StoredJob>, inputs: SchedulerInputs): RouteDecision | null {
    const pin = job.source_pin_sha256;
    const pairing = inputs.pairings.find((p) => p.pin_sha256 === pin);
    const usable = inputs.remoteBuildsEnabled && pairing !== undefined && pairing.status === "approved" && pairing.enabled;
    const label = job.source_label || pin.slice(0, 8);
    if (usable && inputs.openPeerLinks.has(pin)) {
      if (inputs.busyPins?.has(pin) === true || inputs.peerQueueStatus.get(pin)?.idle !== true) return { kind: "wait" };
      return { kind: "remote", pinSha256: pin, label: job.source_label };
    }
    const grace = this.#deps.restoreGraceMs ?? RESTORE_GRACE_MS;
    if (usable && this.#graceLeft() > 0) {
      this.#wakeAfterGrace();
      return { kind: "wait" };
    }
    const localBuilds = this.#deps.localBuilds?.() ?? "always";
    const placed = placeCompile(inputs, localBuilds, { offloadable: true, remoteLosses: 0 });
    if (placed.kind !== "local" || !usable) return null;
    return { kind: "local", note: `build server ${label} did not come back within ${Math.round(grace / 1000)} s; building on this machine instead` };
  }
}
