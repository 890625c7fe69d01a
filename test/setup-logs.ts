/**
 * Vitest setup: the builder's log lines go nowhere during tests unless
 * TEST_LOGS=1, so test output shows results, not expected error logs.
 */
import { setLogSink } from "../src/logger.ts";

if (process.env.TEST_LOGS !== "1") setLogSink(() => undefined);
