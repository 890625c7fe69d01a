// The image check's own vitest configuration: `bash test/image/check.sh` runs it inside its
// network namespace after building the image. The default configuration leaves test/image out.
import path from "node:path";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    root: path.resolve(import.meta.dirname, "../.."),
    include: ["test/image/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    pool: "forks",
    setupFiles: ["test/setup-logs.ts"],
  },
});
