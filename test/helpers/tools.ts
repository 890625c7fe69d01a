/**
 * Tests that need a tool from outside npm (Chromium, Python packages, a real
 * Home Assistant, tmpfs, root): on a developer's machine a missing tool skips
 * them with the reason; in CI (`CI=true`, as .ci/run sets) it fails the run,
 * since .ci/run installs everything the tests need.
 */
export const IN_CI = process.env.CI === "true";

/** True when the test should be skipped: `ok` is false outside CI. In CI a missing tool throws, failing the file. */
export function missingTool(ok: boolean, what: string): boolean {
  if (ok) return false;
  if (IN_CI) throw new Error(`CI needs ${what}, and it is missing: .ci/run (npm run test:setup) must install it`);
  return true;
}
