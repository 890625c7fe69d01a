/**
 * ESPHome version strings and the version policies of remote builds, as pure
 * functions (no I/O): what a `submit_job` may carry as
 * `target_esphome_version`, which versions can be installed from PyPI, and
 * whether two versions satisfy a policy.
 *
 * The rules follow the upstream Device Builder (docs/API.md, "ESPHome
 * versions on build servers"): a target is a well-formed PEP 440 version of at
 * most 64 characters, anything else counts as "" (unknown); `release` means
 * the same `YYYY.MM`; `exact` means the same string.
 */
import { VERSION_POLICIES, type VersionPolicy } from "../domain/policy.ts";

export { VERSION_POLICIES, type VersionPolicy } from "../domain/policy.ts";

/** Longest version string accepted from a peer (upstream's cap). */
export const VERSION_MAX_LENGTH = 64;

// PEP 440's public and local version grammar (its appendix), case-insensitive.
const PEP440 = new RegExp(
  "^v?(?:[0-9]+!)?[0-9]+(?:\\.[0-9]+)*" +
    "(?:[-_.]?(?:a|b|c|rc|alpha|beta|pre|preview)[-_.]?[0-9]*)?" +
    "(?:-[0-9]+|[-_.]?(?:post|rev|r)[-_.]?[0-9]*)?" +
    "(?:[-_.]?dev[-_.]?[0-9]*)?" +
    "(?:\\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?$",
  "i",
);

/** A release (`2026.10.0`) or an a/b/rc pre-release (`2026.11.0b2`) in canonical form: what `pip install esphome==V` can fetch. */
const PINNABLE = /^[0-9]+(?:\.[0-9]+)*(?:(?:a|b|rc)[0-9]+)?$/;

export function isPep440(version: string): boolean {
  return version.length <= VERSION_MAX_LENGTH && PEP440.test(version);
}

/**
 * A version a peer sent (`submit_job.target_esphome_version`, an intent
 * response's `esphome_version`): itself when it is well-formed PEP 440 of at
 * most 64 characters (surrounding spaces dropped), else "" (unknown).
 */
export function normalizeVersion(raw: unknown): string {
  if (typeof raw !== "string" || raw.length > VERSION_MAX_LENGTH * 2) return "";
  const version = raw.trim();
  return isPep440(version) ? version : "";
}

/** Whether this version can be installed from PyPI by its exact name: a release or an a/b/rc pre-release. */
export function isPinnable(version: string): boolean {
  return PINNABLE.test(version);
}

/** `2026.10` of `2026.10.3`: ESPHome's release line (year and month); "" when unknown. */
export function releaseLine(version: string): string {
  const match = /^v?(?:[0-9]+!)?([0-9]+)(?:\.([0-9]+))?/i.exec(version);
  if (match === null) return "";
  return `${Number(match[1])}.${Number(match[2] ?? "0")}`;
}

/**
 * Whether a build with ESPHome `built` is acceptable to a builder running
 * `wanted` under `policy` (upstream's `version_match_policy` table): `any`
 * always; `release` the same YYYY.MM or either unknown; `exact` the same
 * string or either unknown; `exact_required` both known and the same.
 */
export function versionsMatch(policy: VersionPolicy, wanted: string, built: string): boolean {
  switch (policy) {
    case "any":
      return true;
    case "release":
      return wanted === "" || built === "" || releaseLine(wanted) === releaseLine(built);
    case "exact":
      return wanted === "" || built === "" || wanted === built;
    case "exact_required":
      return wanted !== "" && wanted === built;
  }
}

export function isVersionPolicy(value: unknown): value is VersionPolicy {
  return typeof value === "string" && (VERSION_POLICIES as readonly string[]).includes(value);
}

/** What a build server does with a job that asks for ESPHome `target`. */
export type ServeDecision =
  /** Compile with the ESPHome this builder runs. */
  | { readonly kind: "installed"; readonly note: string }
  /** Compile with `version`, installed into its own environment first if needed. */
  | { readonly kind: "provision"; readonly version: string }
  /** Not here: `reason` says why and what to do (sent as `failure_reason: "provision"`). */
  | { readonly kind: "refuse"; readonly reason: string };

/**
 * A build server's version policy applied to one job: `installed` is the
 * ESPHome it runs ("" unknown), `target` the version the sending builder runs
 * ("" when it did not say), `canProvision` whether this builder can make
 * environments at all.
 *
 * - `any`: always the installed ESPHome.
 * - `release`: the installed ESPHome when the release line (YYYY.MM) is the
 *   same or the target is unknown; else refused.
 * - `exact`: the target itself, provisioned when it differs; an unknown target
 *   builds with the installed ESPHome.
 * - `exact_required`: as `exact`, but an unknown target is refused.
 */
export function serveVersion(policy: VersionPolicy, installed: string, target: string, canProvision: boolean): ServeDecision {
  const runs = installed === "" ? "an ESPHome of unknown version" : `ESPHome ${installed}`;
  if (target === "") {
    if (policy === "exact_required") {
      return { kind: "refuse", reason: `this build server's version policy is exact_required and the sending builder did not say which ESPHome it runs; update it, or set the build server's policy to exact` };
    }
    return { kind: "installed", note: "" };
  }
  if (target === installed) return { kind: "installed", note: "" };
  switch (policy) {
    case "any":
      return { kind: "installed", note: `building with ${runs} (the sending builder runs ${target}; this build server's version policy is any)` };
    case "release":
      if (installed === "" || releaseLine(installed) === releaseLine(target)) {
        return { kind: "installed", note: `building with ${runs} for ${target} (the same release line; version policy release)` };
      }
      return {
        kind: "refuse",
        reason: `this build server runs ESPHome ${installed} and its version policy release builds only for ${releaseLine(installed)}.x; ESPHome ${target} was asked for. Set its policy to exact to install that version there, or to any`,
      };
    case "exact":
    case "exact_required":
      if (!canProvision) return { kind: "refuse", reason: `this build server cannot install other ESPHome versions (it runs ${runs} given with --esphome); ESPHome ${target} was asked for` };
      if (!isPinnable(target)) return { kind: "refuse", reason: `ESPHome ${target} cannot be installed from PyPI (only releases and a, b or rc pre-releases can)` };
      return { kind: "provision", version: target };
  }
}
