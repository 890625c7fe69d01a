/**
 * Where builds may run: the local-builds setting and ESPHome version policies.
 */

/**
 * Where this builder compiles its own jobs: `always` (when no build server is
 * idle), `fallback` (only when no build server is connected) or `never`.
 */
export const LOCAL_BUILDS = ["always", "fallback", "never"] as const;
export type LocalBuilds = (typeof LOCAL_BUILDS)[number];

/**
 * How ESPHome versions decide where a build runs (upstream's names). On a
 * build server: what it does with a job for another version (`any`: builds
 * with its own; `release`: only for its own YYYY.MM; `exact`: installs the
 * sender's version; `exact_required`: the same, and refuses senders that do
 * not say). On the sending builder (`version_match_policy`): which build
 * servers its builds may go to.
 */
export const VERSION_POLICIES = ["any", "release", "exact", "exact_required"] as const;
export type VersionPolicy = (typeof VERSION_POLICIES)[number];
