/** What the prober reads from YAMLs: network block, deep_sleep, API key (literal and !secret), API port, includes and their times. */
import { mkdir, utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { newestMtime, readYamlFacts } from "../../src/devices/yaml-facts.ts";
import { tempDir } from "../helpers/tmp.ts";

const KEY = "px7tsbK3C7bpXHr2OevEV2ZMg/FrNBw2+O2pNPbedtA=";

describe("readYamlFacts", () => {
  it("a host device: no network block, its API port through a substitution, no key", async () => {
    const dir = await tempDir("facts-");
    const file = path.join(dir, "h.yaml");
    await writeFile(file, 'substitutions:\n  api_port: "6060"\nesphome:\n  name: h\nhost:\napi:\n  port: ${api_port}\n');
    expect(await readYamlFacts(dir, file)).toEqual({ hasNetworkBlock: false, deepSleep: false, apiKey: null, apiPort: 6060, includes: [] });
  });

  it("wifi, deep_sleep, a key from secrets.yaml, and includes followed through packages and nested files", async () => {
    const dir = await tempDir("facts-");
    await mkdir(path.join(dir, "common"));
    await writeFile(path.join(dir, "secrets.yaml"), `api_key: "${KEY}"\n`);
    await writeFile(path.join(dir, "common", "base.yaml"), "logger:\nsensor: !include sensors.yaml\n");
    await writeFile(path.join(dir, "common", "sensors.yaml"), "- platform: uptime\n");
    await writeFile(path.join(dir, "common", "wifi.yaml"), "wifi:\n  ssid: x\n");
    const file = path.join(dir, "n.yaml");
    await writeFile(
      file,
      "esphome:\n  name: n\nesp32:\n  board: esp32dev\nwifi: !include common/wifi.yaml\ndeep_sleep:\n  run_duration: 10s\n" +
        "api:\n  encryption:\n    key: !secret api_key\npackages:\n  base: !include common/base.yaml\n  remote: github://esphome/firmware/x.yaml\n",
    );
    const facts = await readYamlFacts(dir, file);
    expect(facts).toMatchObject({ hasNetworkBlock: true, deepSleep: true, apiKey: KEY, apiPort: 6053 });
    expect(facts.includes.sort()).toEqual(["common/base.yaml", "common/sensors.yaml", "common/wifi.yaml"].map((f) => path.join(dir, f)).sort());

    // The newest time of the YAML and what it includes.
    const old = new Date("2026-01-01T00:00:00Z");
    for (const f of [file, ...facts.includes]) await utimes(f, old, old);
    expect(await newestMtime(file, facts.includes)).toBe(old.getTime());
    const later = new Date("2026-06-01T00:00:00Z");
    await utimes(path.join(dir, "common", "sensors.yaml"), later, later);
    expect(await newestMtime(file, facts.includes)).toBe(later.getTime());
  });

  it("a literal key; a missing secret, a broken file or a missing one give defaults and never throw", async () => {
    const dir = await tempDir("facts-");
    const a = path.join(dir, "a.yaml");
    await writeFile(a, `api:\n  encryption:\n    key: ${KEY}\nethernet:\n  type: LAN8720\n`);
    expect(await readYamlFacts(dir, a)).toMatchObject({ apiKey: KEY, hasNetworkBlock: true });
    const b = path.join(dir, "b.yaml");
    await writeFile(b, "api:\n  encryption:\n    key: !secret nope\n");
    expect((await readYamlFacts(dir, b)).apiKey).toBeNull();
    const c = path.join(dir, "c.yaml");
    await writeFile(c, "api: [unclosed\n");
    expect(await readYamlFacts(dir, c)).toEqual({ hasNetworkBlock: false, deepSleep: false, apiKey: null, apiPort: 6053, includes: [] });
    expect((await readYamlFacts(dir, path.join(dir, "gone.yaml"))).includes).toEqual([]);
    // An include cycle ends.
    const d = path.join(dir, "d.yaml");
    await writeFile(path.join(dir, "loop.yaml"), "x: !include loop.yaml\n");
    await writeFile(d, "packages:\n  l: !include loop.yaml\n");
    expect((await readYamlFacts(dir, d)).includes).toEqual([path.join(dir, "loop.yaml")]);
  });
});
