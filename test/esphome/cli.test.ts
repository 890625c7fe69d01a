/**
 * What an ESPHome process sees of the builder's environment. A YAML can read
 * any variable with `!env_var`, so the builder's own secrets (its password,
 * Home Assistant token, the Supervisor's token) never reach one, and a build
 * of a paired peer's YAML sees only what a build needs.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { esphomeEnv, isBuilderSecret, subprocessEnv } from "../../src/esphome/cli.ts";
import { ApiClient } from "../helpers/api-client.ts";
import { STAND_IN, configDir, spawnBuilder } from "../helpers/builder.ts";
import { waitFor } from "../helpers/tmp.ts";

const BASE = {
  PATH: "/usr/bin",
  HOME: "/root",
  LC_ALL: "C.UTF-8",
  ESPHOME_BUILDER_PASSWORD: "hunter2",
  ESPHOME_BUILDER_HA_TOKEN: "ha-token",
  SUPERVISOR_TOKEN: "sv-token",
  HASSIO_TOKEN: "old-sv-token",
  ESPHOME_LOG_LEVEL: "DEBUG",
  PLATFORMIO_AUTH_TOKEN: "pio-secret",
  PLATFORMIO_CORE_DIR: "/data/platformio",
  AWS_SECRET_ACCESS_KEY: "aws",
  WIFI_PASSWORD: "owner's own",
};

describe("esphomeEnv", () => {
  it("never passes the builder's settings or the Supervisor's tokens", () => {
    for (const name of ["ESPHOME_BUILDER_PASSWORD", "ESPHOME_BUILDER_HA_TOKEN", "ESPHOME_BUILDER_LABEL", "SUPERVISOR_TOKEN", "HASSIO_TOKEN"]) expect(isBuilderSecret(name)).toBe(true);
    for (const scope of ["own", "peer"] as const) {
      const env = esphomeEnv("/data", scope, BASE);
      expect(Object.keys(env).filter(isBuilderSecret)).toEqual([]);
      expect(Object.values(env)).not.toContain("hunter2");
      expect(env).toMatchObject({ ESPHOME_DATA_DIR: "/data", PYTHONUNBUFFERED: "1", PATH: "/usr/bin" });
    }
  });

  it("keeps the owner's variables for the owner's YAML (they may use !env_var)", () => {
    expect(subprocessEnv("own", BASE)).toMatchObject({ WIFI_PASSWORD: "owner's own", AWS_SECRET_ACCESS_KEY: "aws", ESPHOME_LOG_LEVEL: "DEBUG" });
  });

  it("gives a peer's YAML only what a build needs", () => {
    expect(subprocessEnv("peer", BASE)).toEqual({ PATH: "/usr/bin", HOME: "/root", LC_ALL: "C.UTF-8", ESPHOME_LOG_LEVEL: "DEBUG", PLATFORMIO_CORE_DIR: "/data/platformio" });
  });
});

interface Invocation {
  command: string;
  env_names: string[];
}

describe("a builder process's ESPHome subprocesses", () => {
  it("run the owner's jobs without the builder's password, Home Assistant token or Supervisor token", async () => {
    const dir = await configDir({ kitchen: "" });
    const record = path.join(dir, "record.jsonl");
    const proc = await spawnBuilder(
      ["--config-dir", dir, "--port", "0", "--peer-link-port", "0", "--peer-link-host", "127.0.0.1", "--no-mdns", "--esphome", STAND_IN, "--ha-url", "http://127.0.0.1:9", "--log-level", "error"],
      {
        ESPHOME_BUILDER_PASSWORD: "hunter2",
        ESPHOME_BUILDER_HA_TOKEN: "ha-token",
        HASSIO_TOKEN: "old-sv-token",
        WIFI_PASSWORD: "owner's own",
        ESPHOME_STANDIN_RECORD: record,
        ESPHOME_STANDIN_COMPILE_SECONDS: "0.1",
      },
    );
    const api = await ApiClient.connect(proc.port, { headers: { authorization: `Basic ${Buffer.from("esphome:hunter2").toString("base64")}` } });
    const { job_id } = await api.call<{ job_id: string }>("firmware/compile", { configuration: "kitchen.yaml" });
    await waitFor(async () => (await api.call<{ status: string }>("firmware/get_job", { job_id })).status === "completed", 20_000, "the compile");
    api.close();
    const runs = (await readFile(record, "utf8")).trim().split("\n").map((l) => JSON.parse(l) as Invocation);
    const compile = runs.find((r) => r.command === "compile");
    expect(compile).toBeDefined();
    expect(compile?.env_names.filter(isBuilderSecret)).toEqual([]);
    expect(compile?.env_names).toContain("WIFI_PASSWORD");
    expect(compile?.env_names).toContain("ESPHOME_DATA_DIR");
  });
});
