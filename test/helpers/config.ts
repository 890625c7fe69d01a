/** The builder configuration tests and benchmarks start from (loopback only, no mDNS, the stand-in CLI). */
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { BuilderConfig } from "../../src/config.ts";

export const STAND_IN = path.join(path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../.."), "test", "fixtures", "bin", "esphome");

export function testConfig(dir: string, overrides: Partial<BuilderConfig> = {}): BuilderConfig {
  return {
    configDir: dir,
    dataDir: undefined,
    host: "127.0.0.1",
    port: 0,
    peerLinkPort: 0,
    peerLinkHost: "127.0.0.1",
    esphome: STAND_IN,
    label: "test-builder",
    mdns: false,
    logLevel: "warning",
    compileConcurrency: 1,
    uploadConcurrency: 4,
    remoteRestoreGraceSeconds: 30,
    addon: false,
    allowedHosts: [],
    trustedProxies: [],
    ...overrides,
  };
}
