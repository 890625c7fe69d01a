#!/usr/bin/env node
/**
 * Process entry: reads the configuration, starts the builder, announces the
 * ports on stdout as one JSON line, and stops cleanly on SIGINT/SIGTERM.
 */
import { Builder } from "./builder.ts";
import { parseConfig, USAGE } from "./config.ts";
import { BuilderError } from "./errors.ts";
import { getLogger, setLogLevel } from "./logger.ts";

const log = getLogger("main");

async function main(): Promise<number> {
  let config;
  try {
    config = parseConfig(process.argv.slice(2), process.env);
  } catch (err) {
    process.stderr.write(`${err instanceof BuilderError ? err.message : String(err)}\n`);
    return 2;
  }
  if (config === "help") {
    process.stdout.write(USAGE);
    return 0;
  }
  setLogLevel(config.logLevel);
  const builder = new Builder(config);
  let stopping: Promise<void> | undefined;
  const stop = (signal: string, code = 0): void => {
    if (stopping !== undefined) return;
    log.info(`${signal}; stopping`);
    stopping = builder.stop().then(() => {
      process.exit(code);
    });
  };
  process.on("SIGINT", () => { stop("SIGINT received"); });
  process.on("SIGTERM", () => { stop("SIGTERM received"); });
  try {
    const listening = await builder.start();
    process.stdout.write(JSON.stringify({ event: "listening", ...listening }) + "\n");
    log.info(`serving http://${config.host}:${listening.port}/ for ${builder.paths.configDir}`);
    // A headless build server whose pairing key lapsed unused has nothing to serve: exit 1 (start again for a new key).
    void builder.remoteBuildOnly?.outcome.then((outcome) => { if (outcome === "expired") stop("the pairing key expired unused", 1); });
  } catch (err) {
    log.error(`could not start: ${err instanceof Error ? err.message : String(err)}`);
    await builder.stop();
    return 1;
  }
  return -1;
}

const code = await main();
if (code >= 0) process.exit(code);
