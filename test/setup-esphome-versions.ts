/**
 * `npm run test:setup` step: the ESPHome versions tests use besides the pinned one, into
 * the shared test cache (test/helpers/esphome-versions.ts, `.venv/esphome-versions`), with
 * the builder's own managed environments (a venv and pip each). Idempotent: a version
 * already there is not installed again. Without a Python 3.12+ it says so and, outside CI,
 * leaves the tests that need it to skip.
 */
import { sharedEsphomeVersion, pythonUnavailableReason, SHARED_VERSIONS_ROOT } from "./helpers/esphome-versions.ts";
import { IN_CI } from "./helpers/tools.ts";
import { OTHER_ESPHOME_VERSION } from "./real-device/other-version.ts";

const reason = await pythonUnavailableReason();
if (reason !== null) {
  process.stderr.write(`esphome versions setup: ${reason}\n`);
  process.exit(IN_CI ? 1 : 0);
}
for (const version of [OTHER_ESPHOME_VERSION]) {
  const t = Date.now();
  const ready = await sharedEsphomeVersion(version);
  process.stdout.write(`esphome versions setup: ESPHome ${ready.version} ready in ${SHARED_VERSIONS_ROOT} (${((Date.now() - t) / 1000).toFixed(0)} s)\n`);
}
