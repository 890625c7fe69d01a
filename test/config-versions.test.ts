/**
 * The build server's ESPHome-version flags: defaults, environment variables,
 * and a clear error for every bad value.
 */
import { describe, expect, it } from "vitest";
import { parseConfig, type BuilderConfig } from "../src/config.ts";
import { BuilderError } from "../src/errors.ts";

function parse(argv: string[], env: Record<string, string> = {}): BuilderConfig {
  const config = parseConfig(argv, env);
  if (config === "help") throw new Error("unexpected help");
  return config;
}

describe("--build-server-versions and --build-server-versions-disk", () => {
  it("default to 3 versions within 8 GB, and read flags over environment variables", () => {
    expect(parse([])).toMatchObject({ buildServerVersions: 3, buildServerVersionsDiskGb: 8 });
    expect(parse(["--build-server-versions", "0", "--build-server-versions-disk", "2.5"])).toMatchObject({ buildServerVersions: 0, buildServerVersionsDiskGb: 2.5 });
    expect(parse([], { ESPHOME_BUILDER_BUILD_SERVER_VERSIONS: "5", ESPHOME_BUILDER_BUILD_SERVER_VERSIONS_DISK: "20" })).toMatchObject({ buildServerVersions: 5, buildServerVersionsDiskGb: 20 });
    expect(parse(["--build-server-versions", "1"], { ESPHOME_BUILDER_BUILD_SERVER_VERSIONS: "5" }).buildServerVersions).toBe(1);
  });

  it.each([
    [["--build-server-versions=-1"], "--build-server-versions must be a whole number from 0 to 16, got '-1'"],
    [["--build-server-versions", "17"], "--build-server-versions must be a whole number from 0 to 16, got '17'"],
    [["--build-server-versions", "1.5"], "--build-server-versions must be a whole number from 0 to 16, got '1.5'"],
    [["--build-server-versions", "three"], "--build-server-versions must be a whole number from 0 to 16, got 'three'"],
    [["--build-server-versions", ""], "--build-server-versions must be a whole number from 0 to 16, got ''"],
    [["--build-server-versions-disk=-2"], "--build-server-versions-disk must be a number from 0 to 4096, got '-2'"],
    [["--build-server-versions-disk", "lots"], "--build-server-versions-disk must be a number from 0 to 4096, got 'lots'"],
    [["--build-server-versions-disk", "Infinity"], "--build-server-versions-disk must be a number from 0 to 4096, got 'Infinity'"],
  ])("refuses %j", (argv, message) => {
    expect(() => parseConfig(argv, {})).toThrow(BuilderError);
    expect(() => parseConfig(argv, {})).toThrow(message);
  });
});
