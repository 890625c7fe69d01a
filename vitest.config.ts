import { configDefaults, defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The image check builds and runs the add-on image: `bash test/image/check.sh` (.ci/run does).
    exclude: [...configDefaults.exclude, "test/image/**"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    setupFiles: ["test/setup-logs.ts"],
  },
});
