import path from "node:path";
import { describe, expect, it } from "vitest";
import { ErrorCode, isBuilderError, type BuilderError } from "../../src/errors.ts";
import {
  isSecretsFileName,
  resolveConfigurationPath,
  validateConfigurationName,
} from "../../src/esphome/configuration.ts";

function rejection(fn: () => unknown): BuilderError {
  try {
    fn();
  } catch (err) {
    if (isBuilderError(err)) return err;
    throw err;
  }
  throw new Error("expected a BuilderError");
}

describe("validateConfigurationName", () => {
  it.each(["kitchen.yaml", "kitchen.yml", "living-room_2.yaml", "küche.yaml", "my device.yaml", "a".repeat(250) + ".yaml"])(
    "accepts %j",
    (name) => {
      expect(validateConfigurationName(name)).toBe(name);
    },
  );

  const rejected: [string, unknown, RegExp][] = [
    ["a non-string", 42, /configuration must be a string/],
    ["undefined", undefined, /configuration must be a string/],
    ["an empty name", "", /must not be empty/],
    ["an over-long name", "a".repeat(251) + ".yaml", /longer than 255 bytes/],
    ["a name over 255 bytes in UTF-8", "ü".repeat(126) + ".yaml", /longer than 255 bytes/],
    ["a NUL byte", "kitchen\u0000.yaml", /control characters/],
    ["a newline", "kitchen\n.yaml", /control characters/],
    ["a DEL character", "kitchen\u007f.yaml", /control characters/],
    ["a sub-directory", "packages/wifi.yaml", /not a path/],
    ["a backslash path", "packages\\wifi.yaml", /not a path/],
    ["an absolute path", "/etc/passwd.yaml", /not a path/],
    ["traversal", "../outside.yaml", /not a path/],
    ['a bare ".."', "..", /must not contain "\.\."/],
    ['an embedded ".."', "kitchen..yaml", /must not contain "\.\."/],
    ["a Windows drive prefix", "C:kitchen.yaml", /absolute path/],
    ["a dot-file", ".hidden.yaml", /must not start with "\."/],
    ["a wrong extension", "kitchen.json", /must end with "\.yaml" or "\.yml"/],
    ["an upper-case extension", "kitchen.YAML", /must end with "\.yaml" or "\.yml"/],
    ["no extension", "kitchen", /must end with/],
    ["secrets.yaml", "secrets.yaml", /secrets file/],
    ["secrets.yml", "secrets.yml", /secrets file/],
    ["secrets in another case", "Secrets.yaml", /secrets file/],
  ];
  it.each(rejected)("rejects %s", (_label, value, message) => {
    const err = rejection(() => validateConfigurationName(value));
    expect(err.code).toBe(ErrorCode.InvalidArgs);
    expect(err.message).toMatch(message);
  });

  it("quotes the offending name in the message", () => {
    expect(() => validateConfigurationName("kitchen.txt")).toThrow('invalid configuration "kitchen.txt"');
  });

  it("recognises the secrets file in any case", () => {
    expect(isSecretsFileName("SECRETS.YML")).toBe(true);
    expect(isSecretsFileName("secrets-old.yaml")).toBe(false);
  });
});

describe("resolveConfigurationPath", () => {
  it("returns the absolute path inside the config dir", () => {
    expect(resolveConfigurationPath("/config/esphome", "kitchen.yaml")).toBe("/config/esphome/kitchen.yaml");
  });

  it("resolves a relative config dir against the working directory", () => {
    expect(resolveConfigurationPath("cfg", "a.yml")).toBe(path.resolve("cfg", "a.yml"));
  });

  it.each(["../x.yaml", "/abs.yaml", "secrets.yaml", ".esphome.yaml", ""])("validates before resolving (%j)", (name) => {
    expect(rejection(() => resolveConfigurationPath("/config", name)).code).toBe(ErrorCode.InvalidArgs);
  });
});
