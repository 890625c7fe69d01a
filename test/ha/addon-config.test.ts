/**
 * The add-on manifest (config.yaml) against the Supervisor's add-on schema
 * rules (supervisor/apps/validate.py as summarised in
 * shared/reference/ha-addon.md §1): required keys, types, allowed values, the
 * slug pattern, the current arch list, map entries, the options schema
 * mini-language, a default for every required option, and a translation for
 * every option. Also checks that the options parse in the builder the same way.
 */
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { parseConfig } from "../../src/config.ts";
import { ROOT } from "../helpers/builder.ts";
import { tempDir } from "../helpers/tmp.ts";
import { writeFile } from "node:fs/promises";

type Check = (value: unknown) => string | null;

const str: Check = (v) => (typeof v === "string" && v !== "" ? null : "must be a non-empty string");
const bool: Check = (v) => (typeof v === "boolean" ? null : "must be true or false");
const int = (min: number, max: number): Check => (v) => (typeof v === "number" && Number.isInteger(v) && v >= min && v <= max ? null : `must be an integer from ${min} to ${max}`);
const oneOf = (...allowed: string[]): Check => (v) => (typeof v === "string" && allowed.includes(v) ? null : `must be one of ${allowed.join(", ")}`);
const url: Check = (v) => {
  if (typeof v !== "string") return "must be a URL";
  try {
    new URL(v);
    return null;
  } catch {
    return "must be a URL";
  }
};
const listOf = (item: Check): Check => (v) => {
  if (!Array.isArray(v)) return "must be a list";
  for (const entry of v) {
    const err = item(entry);
    if (err !== null) return `entry ${JSON.stringify(entry)}: ${err}`;
  }
  return null;
};
const dict: Check = (v) => (typeof v === "object" && v !== null && !Array.isArray(v) ? null : "must be a mapping");

/** Current and deprecated architectures; only the current ones are accepted here. */
const CURRENT_ARCHS = ["aarch64", "amd64"];
const MAP_TYPES = ["homeassistant_config", "config", "addon_config", "app_config", "all_addon_configs", "all_app_configs", "share", "media", "ssl", "backup", "addons", "local_apps"];

const mapEntry: Check = (v) => {
  if (typeof v === "string") {
    const [type, mode, ...rest] = v.split(":");
    if (rest.length > 0 || !MAP_TYPES.includes(type ?? "") || (mode !== undefined && mode !== "rw" && mode !== "ro")) return "must be TYPE or TYPE:rw|ro";
    return null;
  }
  if (typeof v !== "object" || v === null) return "must be a string or a mapping";
  const entry = v as Record<string, unknown>;
  for (const key of Object.keys(entry)) if (!["type", "read_only", "path"].includes(key)) return `unknown key ${key}`;
  if (!MAP_TYPES.includes(entry.type as string)) return `unknown type ${String(entry.type)}`;
  if (entry.read_only !== undefined && typeof entry.read_only !== "boolean") return "read_only must be a boolean";
  if (entry.path !== undefined && (typeof entry.path !== "string" || !entry.path.startsWith("/"))) return "path must be absolute";
  return null;
};

/** Every key the Supervisor knows, with its rule (the ones this project could plausibly use). */
const KEYS: Record<string, Check> = {
  name: str,
  version: str,
  slug: (v) => (typeof v === "string" && /^[-_.A-Za-z0-9]+$/.test(v) ? null : "must match [-_.A-Za-z0-9]+"),
  description: str,
  arch: (v) => {
    if (!Array.isArray(v) || v.length === 0) return "must be a non-empty list";
    for (const a of v) if (!CURRENT_ARCHS.includes(a as string)) return `${String(a)} is not a current architecture (${CURRENT_ARCHS.join(", ")})`;
    return new Set(v).size === v.length ? null : "has duplicates";
  },
  url,
  startup: oneOf("initialize", "system", "services", "application", "once"),
  boot: oneOf("auto", "manual", "manual_only"),
  init: bool,
  ingress: bool,
  ingress_port: int(0, 65535),
  ingress_entry: str,
  ingress_stream: bool,
  panel_icon: (v) => (typeof v === "string" && /^mdi:[a-z0-9-]+$/.test(v) ? null : "must be mdi:<icon>"),
  panel_title: str,
  panel_admin: bool,
  webui: str,
  watchdog: str,
  homeassistant_api: bool,
  hassio_api: bool,
  hassio_role: oneOf("default", "homeassistant", "backup", "manager", "admin"),
  auth_api: bool,
  stdin: bool,
  host_network: bool,
  ports: dict,
  ports_description: dict,
  map: listOf(mapEntry),
  options: dict,
  schema: (v) => (v === false ? null : dict(v)),
  image: str,
  discovery: listOf(str),
  services: listOf((v) => (typeof v === "string" && /^[a-z]+:(provide|want|need)$/.test(v) ? null : "must be service:provide|want|need")),
  environment: dict,
  timeout: int(10, 300),
  tmpfs: bool,
  backup: oneOf("hot", "cold"),
  backup_exclude: listOf(str),
  stage: oneOf("stable", "experimental", "deprecated"),
  homeassistant: (v) => (typeof v === "string" && /^\d{4}\.\d+\.\d+/.test(v) ? null : "must be a Home Assistant version"),
  uart: bool,
  usb: bool,
  udev: bool,
  gpio: bool,
  video: bool,
  audio: bool,
  journald: bool,
  apparmor: bool,
  advanced: bool,
};
const REQUIRED = ["name", "version", "slug", "description", "arch"];

/** The options schema mini-language: str(min,max), int(...), float(...), list(a|b), match(re), …, `?` = optional. */
const SCHEMA_RE = /^(?:str(?:\((\d*),(\d*)\))?|password|email|url|port|bool|int(?:\((-?\d*),(-?\d*)\))?|float(?:\((-?[\d.]*),(-?[\d.]*)\))?|match\((.+)\)|list\(([^()]+)\)|device(?:\(subsystem=[a-z]+\))?)(\?)?$/;

/** Checks one option value against its schema string; returns null when valid. */
function checkOption(schema: string, value: unknown): string | null {
  const m = SCHEMA_RE.exec(schema);
  if (m === null) return `schema ${JSON.stringify(schema)} is not in the mini-language`;
  const type = schema.replace(/\(.*$/, "").replace(/\?$/, "");
  if (value === null || value === undefined) return m[9] === "?" ? null : "is required but has no default";
  switch (type) {
    case "str":
    case "password":
    case "email":
    case "url": {
      if (typeof value !== "string") return "must be a string";
      const min = m[1] === undefined || m[1] === "" ? 0 : Number(m[1]);
      const max = m[2] === undefined || m[2] === "" ? Infinity : Number(m[2]);
      return value.length >= min && value.length <= max ? null : `length must be ${min}..${max}`;
    }
    case "bool":
      return typeof value === "boolean" ? null : "must be a boolean";
    case "int": {
      const min = m[3] === undefined || m[3] === "" ? -Infinity : Number(m[3]);
      const max = m[4] === undefined || m[4] === "" ? Infinity : Number(m[4]);
      return typeof value === "number" && Number.isInteger(value) && value >= min && value <= max ? null : `must be an integer in ${min}..${max}`;
    }
    case "float":
      return typeof value === "number" ? null : "must be a number";
    case "port":
      return typeof value === "number" && Number.isInteger(value) && value >= 1 && value <= 65535 ? null : "must be a port";
    case "match":
      return typeof value === "string" && new RegExp(`^${m[7] ?? ""}$`).test(value) ? null : "does not match";
    case "list":
      return typeof value === "string" && (m[8] ?? "").split("|").includes(value) ? null : `must be one of ${m[8] ?? ""}`;
    default:
      return typeof value === "string" ? null : "must be a string";
  }
}

const manifest = parseYaml(readFileSync(path.join(ROOT, "config.yaml"), "utf8")) as Record<string, unknown>;
const translations = parseYaml(readFileSync(path.join(ROOT, "translations", "en.yaml"), "utf8")) as Record<string, unknown>;

describe("config.yaml (add-on manifest)", () => {
  it("has the required keys and only known keys, each of the right type and value", () => {
    for (const key of REQUIRED) expect(manifest, `missing ${key}`).toHaveProperty(key);
    const problems: string[] = [];
    for (const [key, value] of Object.entries(manifest)) {
      const check = KEYS[key];
      if (check === undefined) problems.push(`${key}: unknown key`);
      else {
        const err = check(value);
        if (err !== null) problems.push(`${key}: ${err}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it("matches the design: ingress panel, host network, Core API, stdin, esphome discovery, s6 image, current archs", () => {
    expect(manifest).toMatchObject({
      ingress: true,
      host_network: true,
      homeassistant_api: true,
      stdin: true,
      discovery: ["esphome"],
      init: false,
      arch: ["aarch64", "amd64"],
    });
    expect(manifest.panel_icon).toMatch(/^mdi:/);
    expect(manifest.panel_title).toBeTypeOf("string");
    // With host networking the Supervisor picks the ingress port (0); a fixed one could collide on the host.
    expect(manifest.ingress_port).toBe(0);
    expect(manifest.version).toBe((JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { version: string }).version);
  });

  it("maps Home Assistant's configuration so device YAMLs come from /config/esphome, like the official ESPHome add-on", () => {
    const map = manifest.map as ({ type: string; path?: string; read_only?: boolean } | string)[];
    const types = map.map((m) => (typeof m === "string" ? (m.split(":")[0] ?? "") : m.type));
    // The legacy `config` type cannot be combined with homeassistant_config / addon_config.
    expect(types.includes("config") && (types.includes("homeassistant_config") || types.includes("addon_config"))).toBe(false);
    const haConfig = map.find((m) => typeof m !== "string" && m.type === "homeassistant_config");
    expect(haConfig).toMatchObject({ type: "homeassistant_config", read_only: false, path: "/config" });
    // The builder's add-on default config dir lives inside that mount.
    const config = parseConfig([], { SUPERVISOR_TOKEN: "t", ESPHOME_BUILDER_ADDON_OPTIONS: optionsFile() });
    if (config === "help") throw new Error("help");
    expect(config.configDir).toBe("/config/esphome");
    expect(config.dataDir).toBe("/data");
  });

  it("has an options schema in the Supervisor's mini-language, a valid default for every required option, and no stray keys", () => {
    const options = manifest.options as Record<string, unknown>;
    const schema = manifest.schema as Record<string, string>;
    for (const key of Object.keys(options)) expect(schema, `option ${key} has no schema`).toHaveProperty(key);
    const problems: string[] = [];
    for (const [key, rule] of Object.entries(schema)) {
      const err = checkOption(rule, options[key]);
      if (err !== null) problems.push(`${key}: ${err}`);
    }
    expect(problems).toEqual([]);
    // At least: log level, the build-server switch, compile concurrency, the builder's label.
    expect(Object.keys(schema)).toEqual(expect.arrayContaining(["log_level", "build_server", "compile_concurrency", "label"]));
    expect(options.build_server).toBe(false);
    // Compiles stay here by default; small hosts are told to pick `fallback` (DOCS.md, translations).
    expect(options.local_builds).toBe("always");
    expect(checkOption(schema.local_builds ?? "", "sometimes")).not.toBeNull();
  });

  it("has a translation (name and description) for every option, and none for options that do not exist", () => {
    expect(Object.keys(translations).every((k) => k === "configuration" || k === "network")).toBe(true);
    const configuration = translations.configuration as Record<string, { name?: unknown; description?: unknown }>;
    const schema = manifest.schema as Record<string, string>;
    expect(Object.keys(configuration).sort()).toEqual(Object.keys(schema).sort());
    for (const [key, entry] of Object.entries(configuration)) {
      expect(typeof entry.name === "string" && entry.name !== "", `${key}.name`).toBe(true);
      expect(typeof entry.description === "string" && entry.description !== "", `${key}.description`).toBe(true);
    }
  });

  it("the validator itself rejects what the Supervisor rejects", () => {
    expect(KEYS.slug!("my addon")).not.toBeNull();
    expect(KEYS.arch!(["armv7", "amd64"])).not.toBeNull();
    expect(KEYS.startup!("later")).not.toBeNull();
    expect(KEYS.map!(["config:rw", { type: "share", read_only: "no" }])).not.toBeNull();
    expect(checkOption("int(1,8)", 9)).not.toBeNull();
    expect(checkOption("str(,3)", "long")).not.toBeNull();
    expect(checkOption("list(a|b)", "c")).not.toBeNull();
    expect(checkOption("bool", null)).not.toBeNull();
    expect(checkOption("bool?", null)).toBeNull();
    expect(checkOption("strng", "x")).not.toBeNull();
    expect(checkOption("match(^[a-z]+$)", "abc")).toBeNull();
  });
});

describe("add-on options in the builder", () => {
  it("reads every option from /data/options.json in add-on mode", async () => {
    const dir = await tempDir();
    const file = path.join(dir, "options.json");
    await writeFile(file, JSON.stringify({ log_level: "debug", build_server: true, compile_concurrency: 3, label: "Garage Pi", home_assistant_dashboard_integration: false }));
    const config = parseConfig([], { SUPERVISOR_TOKEN: "tok", ESPHOME_BUILDER_ADDON_OPTIONS: file });
    if (config === "help") throw new Error("help");
    expect(config).toMatchObject({
      addon: true,
      logLevel: "debug",
      buildServer: true,
      compileConcurrency: 3,
      label: "Garage Pi",
      dashboardIntegration: false,
      supervisorToken: "tok",
      supervisorUrl: "http://supervisor",
      portFromSupervisor: true,
      ingressAddresses: ["172.30.32.2"],
      host: "0.0.0.0",
    });
  });

  it("accepts the defaults config.yaml ships", () => {
    const config = parseConfig([], { SUPERVISOR_TOKEN: "tok", ESPHOME_BUILDER_ADDON_OPTIONS: optionsFile() });
    if (config === "help") throw new Error("help");
    expect(config).toMatchObject({ buildServer: false, compileConcurrency: 1, dashboardIntegration: true, logLevel: "info" });
    // The default `label: ""` is no label: the builder is named after the Home Assistant host at start.
    expect(manifest.options).toMatchObject({ label: "" });
    expect(config).toMatchObject({ label: os.hostname(), labelFromSupervisor: true });
  });

  it("takes a label option (trimmed) over the host's name; a blank one counts as none", async () => {
    const file = path.join(await tempDir(), "options.json");
    const parse = (label: string, argv: string[] = []) => {
      writeFileSync(file, JSON.stringify({ ...(manifest.options as object), label }));
      const config = parseConfig(argv, { SUPERVISOR_TOKEN: "tok", ESPHOME_BUILDER_ADDON_OPTIONS: file });
      if (config === "help") throw new Error("help");
      return { label: config.label, labelFromSupervisor: config.labelFromSupervisor };
    };
    expect(parse("  Garage Pi ")).toEqual({ label: "Garage Pi", labelFromSupervisor: false });
    expect(parse("   ")).toEqual({ label: os.hostname(), labelFromSupervisor: true });
    expect(parse("", ["--label", "Bench"])).toEqual({ label: "Bench", labelFromSupervisor: false });
  });

  it("asks no Supervisor for a name outside the add-on", () => {
    const config = parseConfig(["--label", ""], {});
    if (config === "help") throw new Error("help");
    expect(config).toMatchObject({ label: os.hostname(), labelFromSupervisor: false });
  });
});

/** The default options as the Supervisor would write them to /data/options.json. */
function optionsFile(): string {
  const file = path.join(os.tmpdir(), `esphome-builder-options-${process.pid}.json`);
  writeFileSync(file, JSON.stringify(manifest.options));
  return file;
}
