/**
 * Command-line flags and their environment variables: defaults, overrides,
 * and a clear error naming the fix for every bad value.
 */
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { isLoopbackHost, parseConfig, type BuilderConfig } from "../src/config.ts";
import { BuilderError } from "../src/errors.ts";
import { tempDir } from "./helpers/tmp.ts";

function parse(argv: string[], env: Record<string, string> = {}): BuilderConfig {
  const config = parseConfig(argv, env);
  if (config === "help") throw new Error("unexpected help");
  return config;
}

function errorOf(argv: string[], env: Record<string, string> = {}): string {
  try {
    parseConfig(argv, env);
  } catch (err) {
    expect(err).toBeInstanceOf(BuilderError);
    return (err as Error).message;
  }
  throw new Error("expected an error");
}

describe("parseConfig", () => {
  it("has loopback, ports 6052/6055, mDNS on and no password by default", () => {
    const config = parse([]);
    expect(config).toMatchObject({ host: "127.0.0.1", port: 6052, peerLinkPort: 6055, peerLinkHost: "0.0.0.0", mdns: true, configDir: "./config", addon: false });
    expect(config.password).toBeUndefined();
    expect(config.username).toBeUndefined();
  });

  it("takes flags over environment variables", () => {
    expect(parse(["--port", "7000"], { ESPHOME_BUILDER_PORT: "8000" }).port).toBe(7000);
    expect(parse([], { ESPHOME_BUILDER_PORT: "8000" }).port).toBe(8000);
    expect(parse([], { ESPHOME_BUILDER_NO_MDNS: "1" }).mdns).toBe(false);
    expect(parse(["--no-mdns"]).mdns).toBe(false);
  });

  it("answers help", () => {
    expect(parseConfig(["--help"], {})).toBe("help");
  });

  it.each([
    [["--port", "70000"], "--port must be a port number"],
    [["--port", ""], "--port must be a port number"],
    [["--log-level", "loud"], "--log-level must be debug, info, warning or error"],
    [["--compile-concurrency", "0"], "--compile-concurrency must be a whole number"],
    [["--remote-restore-grace=-1"], "--remote-restore-grace must be a number of seconds"],
    [["--ha-url", "http://ha:8123"], "--ha-url and --ha-token go together"],
    [["--ha-url", "ftp://ha", "--ha-token", "t"], "--ha-url must start with http:// or https://"],
    [["--ingress-address", "not-an-ip"], "--ingress-address must list IP addresses"],
    [["--bogus"], "Unknown option"],
  ])("refuses %j with a message naming the fix", (argv, message) => {
    expect(errorOf(argv)).toContain(message);
  });

  describe("password", () => {
    it("comes from the flag or, better (ps does not show it), the environment; the user name defaults to esphome", () => {
      expect(parse(["--password", "s3cret"])).toMatchObject({ username: "esphome", password: "s3cret" });
      expect(parse([], { ESPHOME_BUILDER_PASSWORD: "s3cret", ESPHOME_BUILDER_USERNAME: "me" })).toMatchObject({ username: "me", password: "s3cret" });
    });

    it.each([
      [["--password", ""], {}, "--password must not be empty"],
      [["--username", "me"], {}, "--username needs --password"],
      [["--username", "a:b", "--password", "x"], {}, "--username must be non-empty and without ':'"],
    ])("refuses %j", (argv, env, message) => {
      expect(errorOf(argv, env)).toContain(message);
    });

    it("is refused in the add-on, where Home Assistant signs users in", async () => {
      const options = path.join(await tempDir(), "options.json");
      await writeFile(options, "{}");
      expect(errorOf(["--password", "x"], { SUPERVISOR_TOKEN: "t", ESPHOME_BUILDER_ADDON_OPTIONS: options })).toContain("in the add-on, Home Assistant signs users in");
    });
  });
});

describe("managed ESPHome", () => {
  it("is on without --esphome; --esphome (flag or variable) turns it off and is run as given", () => {
    expect(parse([])).toMatchObject({ managedEsphome: true, python: undefined, bundledEsphome: undefined });
    expect(parse(["--esphome", "/opt/my/esphome"])).toMatchObject({ managedEsphome: false, esphome: "/opt/my/esphome" });
    expect(parse([], { ESPHOME_BUILDER_ESPHOME: "/opt/my/esphome" })).toMatchObject({ managedEsphome: false, esphome: "/opt/my/esphome" });
  });

  it("takes --python (or ESPHOME_BUILDER_PYTHON) for the environments", () => {
    expect(parse(["--python", "/usr/bin/python3.13"]).python).toBe("/usr/bin/python3.13");
    expect(parse([], { ESPHOME_BUILDER_PYTHON: "/usr/bin/python3.12" }).python).toBe("/usr/bin/python3.12");
  });

  it.each([
    [["--python", "/usr/bin/python3", "--esphome", "/opt/esphome"], "--python is for the builder's managed ESPHome"],
    [["--esphome", ""], "--esphome must name the ESPHome executable"],
    [["--python", " "], "--python must name a Python 3.12+ executable"],
  ])("refuses %j with a message naming the fix", (argv, message) => {
    expect(errorOf(argv)).toContain(message);
  });

  it("in the add-on: the image's ESPHome is the bundled default", async () => {
    const options = path.join(await tempDir(), "options.json");
    await writeFile(options, "{}");
    const config = parse([], { SUPERVISOR_TOKEN: "t", ESPHOME_BUILDER_ADDON_OPTIONS: options });
    expect(config).toMatchObject({ managedEsphome: true, bundledEsphome: "/opt/esphome/bin/esphome", dataDir: "/data" });
  });
});

describe("isLoopbackHost", () => {
  it.each([
    ["127.0.0.1", true],
    ["127.1.2.3", true],
    ["::1", true],
    ["localhost", true],
    ["0.0.0.0", false],
    ["192.168.1.5", false],
    ["::", false],
  ])("%s -> %s", (host, expected) => {
    expect(isLoopbackHost(host)).toBe(expected);
  });

  it("takes local_builds from the flag, its variable or the add-on option, and names the values on a bad one", async () => {
    expect(parse([]).localBuilds).toBeUndefined();
    expect(parse(["--local-builds", "fallback"]).localBuilds).toBe("fallback");
    expect(parse([], { ESPHOME_BUILDER_LOCAL_BUILDS: "Never" }).localBuilds).toBe("never");
    expect(parse(["--local-builds", "always"], { ESPHOME_BUILDER_LOCAL_BUILDS: "never" }).localBuilds).toBe("always");
    expect(errorOf(["--local-builds", "sometimes"])).toBe("--local-builds must be always, fallback or never, got 'sometimes'");
    expect(errorOf([], { ESPHOME_BUILDER_LOCAL_BUILDS: "" })).toContain("--local-builds must be always, fallback or never");
    const options = path.join(await tempDir(), "options.json");
    await writeFile(options, JSON.stringify({ local_builds: "fallback" }));
    expect(parse([], { SUPERVISOR_TOKEN: "t", ESPHOME_BUILDER_ADDON_OPTIONS: options }).localBuilds).toBe("fallback");
    await writeFile(options, JSON.stringify({ local_builds: "sometimes" }));
    expect(errorOf([], { SUPERVISOR_TOKEN: "t", ESPHOME_BUILDER_ADDON_OPTIONS: options })).toContain("local_builds");
  });

  it("takes how long an install waits for an offline device from --device-wait (minutes) or the add-on option (hours)", async () => {
    expect(parse([]).deviceWaitMinutes).toBe(1440);
    expect(parse(["--device-wait", "30"]).deviceWaitMinutes).toBe(30);
    expect(errorOf(["--device-wait", "0"])).toBe("--device-wait must be a number of minutes from 0.1 to 10080, got '0'");
    const options = path.join(await tempDir(), "options.json");
    await writeFile(options, JSON.stringify({ device_wait_hours: 2 }));
    expect(parse([], { SUPERVISOR_TOKEN: "t", ESPHOME_BUILDER_ADDON_OPTIONS: options }).deviceWaitMinutes).toBe(120);
    expect(parse(["--device-wait", "5"], { SUPERVISOR_TOKEN: "t", ESPHOME_BUILDER_ADDON_OPTIONS: options }).deviceWaitMinutes).toBe(5);
    await writeFile(options, JSON.stringify({ device_wait_hours: 0 }));
    expect(errorOf([], { SUPERVISOR_TOKEN: "t", ESPHOME_BUILDER_ADDON_OPTIONS: options })).toContain("device_wait_hours");
  });
});

describe("--remote-build-only and --allow-pairing-source", () => {
  it("are off and empty by default; the flag or its variable turns the mode on", () => {
    expect(parse([])).toMatchObject({ remoteBuildOnly: false, allowPairingSources: [] });
    expect(parse(["--remote-build-only"]).remoteBuildOnly).toBe(true);
    expect(parse([], { ESPHOME_BUILDER_REMOTE_BUILD_ONLY: "1" }).remoteBuildOnly).toBe(true);
    expect(parse([], { ESPHOME_BUILDER_REMOTE_BUILD_ONLY: "0" }).remoteBuildOnly).toBe(false);
    expect(parse([], { ESPHOME_BUILDER_REMOTE_BUILD_ONLY: "" }).remoteBuildOnly).toBe(false);
  });

  it("reads the source list from the flag or its variable", () => {
    expect(parse(["--remote-build-only", "--allow-pairing-source", "192.168.1.0/24, 10.0.0.5,fd00::/8"]).allowPairingSources).toEqual(["192.168.1.0/24", "10.0.0.5", "fd00::/8"]);
    expect(parse(["--remote-build-only"], { ESPHOME_BUILDER_ALLOW_PAIRING_SOURCE: "10.0.0.5" }).allowPairingSources).toEqual(["10.0.0.5"]);
  });

  it("keeps the panel on loopback: any loopback --host is fine, another is refused with the fix", () => {
    expect(parse(["--remote-build-only", "--host", "::1"]).host).toBe("::1");
    expect(errorOf(["--remote-build-only", "--host", "0.0.0.0"])).toContain("--host must be a loopback address such as 127.0.0.1, got '0.0.0.0'");
    expect(errorOf(["--remote-build-only"], { ESPHOME_BUILDER_HOST: "192.168.1.2" })).toContain("got '192.168.1.2'");
  });

  it("refuses a bad source, a source list without the mode, and the mode in the add-on", async () => {
    expect(errorOf(["--remote-build-only", "--allow-pairing-source", "builder.lan"])).toContain("--allow-pairing-source must list IP addresses or CIDR blocks such as 192.168.1.0/24, got 'builder.lan'");
    expect(errorOf(["--remote-build-only", "--allow-pairing-source", "10.0.0.0/40"])).toContain("got '10.0.0.0/40'");
    expect(errorOf(["--allow-pairing-source", "10.0.0.5"])).toContain("--allow-pairing-source goes with --remote-build-only");
    const options = path.join(await tempDir(), "options.json");
    await writeFile(options, "{}");
    expect(errorOf(["--remote-build-only"], { SUPERVISOR_TOKEN: "t", ESPHOME_BUILDER_ADDON_OPTIONS: options })).toContain("--remote-build-only is for a builder on its own");
  });
});
