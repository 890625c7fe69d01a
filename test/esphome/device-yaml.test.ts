import { describe, expect, it } from "vitest";
import { parseDevice, PLATFORM_KEYS } from "../../src/esphome/device-yaml.ts";

const CFG = "/config/esphome";

function parse(text: string, file = "dev.yaml") {
  return parseDevice(CFG, file, text);
}

describe("parseDevice: names", () => {
  it("reads name, friendly_name and comment from the esphome block", () => {
    const d = parse("esphome:\n  name: kitchen\n  friendly_name: Kitchen Light\n  comment: Over the sink\n", "k.yaml");
    expect(d).toEqual({
      name: "kitchen",
      friendly_name: "Kitchen Light",
      configuration: "k.yaml",
      path: "/config/esphome/k.yaml",
      platform: null,
      board: null,
      address: "kitchen.local",
      comment: "Over the sink",
      web_port: null,
      loaded_integrations: [],
      error: null,
    });
  });

  it("falls back to the file stem without esphome: name, and friendly_name to the name", () => {
    const d = parse("logger:\n", "garage-door.yml");
    expect(d.name).toBe("garage-door");
    expect(d.friendly_name).toBe("garage-door");
    expect(d.address).toBe("garage-door.local");
    expect(d.comment).toBeNull();
  });

  it("resolves ${var} and $var substitutions, including substitutions that use others", () => {
    const d = parse(
      [
        "substitutions:",
        "  room: kitchen",
        "  devicename: ${room}-sensor",
        "  nice: Kitchen Sensor",
        "  num: 2",
        "esphome:",
        "  name: $devicename-$num",
        "  friendly_name: ${ nice }",
        "  comment: In the $room",
      ].join("\n"),
    );
    expect(d.name).toBe("kitchen-sensor-2");
    expect(d.friendly_name).toBe("Kitchen Sensor");
    expect(d.comment).toBe("In the kitchen");
    expect(d.address).toBe("kitchen-sensor-2.local");
  });

  it("falls back to the stem when the name uses a substitution it cannot resolve (e.g. from a package)", () => {
    const d = parse("packages:\n  base: !include base.yaml\nesphome:\n  name: ${devicename}\n  friendly_name: ${label}\n", "porch.yaml");
    expect(d.name).toBe("porch");
    expect(d.address).toBe("porch.local");
    // Display text keeps the unresolved reference rather than inventing one.
    expect(d.friendly_name).toBe("${label}");
  });

  it("survives self-referencing substitutions", () => {
    const d = parse("substitutions:\n  a: $b\n  b: $a\nesphome:\n  name: $a\n", "loop.yaml");
    expect(d.name).toBe("loop");
    expect(d.error).toBeNull();
  });

  it("treats a numeric name as text and an empty one as absent", () => {
    expect(parse("esphome:\n  name: 1234\n").name).toBe("1234");
    expect(parse("esphome:\n  name: ''\n", "stem.yaml").name).toBe("stem");
  });
});

describe("parseDevice: ESPHome tags", () => {
  const tagged: [string, string][] = [
    ["!secret", "wifi:\n  ssid: !secret wifi_ssid\n  password: !secret wifi_password\n"],
    ["!include (scalar)", "packages:\n  common: !include common/base.yaml\n"],
    ["!include (mapping)", "packages:\n  common: !include\n    file: common/base.yaml\n    vars:\n      room: kitchen\n"],
    ["!include as a whole component", "sensor: !include sensors.yaml\n"],
    ["!include_dir_named", "packages: !include_dir_named packages\n"],
    ["!include_dir_list", "sensor: !include_dir_list sensors\n"],
    ["!include_dir_merge_list", "binary_sensor: !include_dir_merge_list binary\n"],
    ["!include_dir_merge_named", "script: !include_dir_merge_named scripts\n"],
    ["!lambda", "sensor:\n  - platform: template\n    lambda: !lambda |-\n      return id(x).state * 2;\n"],
    ["!extend", "sensor:\n  - id: !extend uptime_sensor\n    update_interval: 10s\n"],
    ["!remove (empty)", "captive_portal: !remove\n"],
    ["!remove (on an id)", "sensor:\n  - id: !remove wifi_signal\n"],
    ["!env_var", "api:\n  encryption:\n    key: !env_var API_KEY\n"],
    ["!force", "substitutions:\n  x: !force 1\n"],
    ["an unknown scalar tag", "logger:\n  level: !future_tag DEBUG\n"],
    ["an unknown mapping tag", "logger: !future_tag {level: DEBUG}\n"],
    ["an unknown sequence tag", "sensor: !future_tag [1, 2]\n"],
    ["a verbatim local tag", "logger: !<!custom> x\n"],
  ];
  it.each(tagged)("parses a config using %s without error", (_label, body) => {
    const d = parse(`esphome:\n  name: tagged\n${body}`);
    expect(d.error).toBeNull();
    expect(d.name).toBe("tagged");
  });

  it("does not treat a tagged name or address as real values", () => {
    const d = parse(
      "esphome:\n  name: !secret name\n  friendly_name: !secret fn\nwifi:\n  use_address: !secret addr\nweb_server: !include web.yaml\n",
      "hidden.yaml",
    );
    expect(d.name).toBe("hidden");
    expect(d.friendly_name).toBe("hidden");
    expect(d.address).toBe("hidden.local");
    expect(d.web_port).toBeNull();
    expect(d.loaded_integrations).toEqual(["web_server", "wifi"]);
  });

  it("keeps core YAML tags meaningful", () => {
    const d = parse("esphome:\n  name: !!str 42\nweb_server:\n  port: !!int 8080\n");
    expect(d.name).toBe("42");
    expect(d.web_port).toBe(8080);
  });

  it("applies merge keys from anchors and skips unresolvable !include merges", () => {
    const d = parse(
      [
        "common: &common",
        "  board: esp32dev",
        "  framework: {type: esp-idf}",
        "<<: !include base.yaml",
        "esphome:",
        "  name: merged",
        "esp32:",
        "  <<: *common",
        "wifi:",
        "  <<: [*common, !include net.yaml]",
        "  use_address: 10.1.1.1",
      ].join("\n"),
    );
    expect(d.error).toBeNull();
    expect(d.board).toBe("esp32dev");
    expect(d.address).toBe("10.1.1.1");
    expect(d.loaded_integrations).toEqual(["common", "esp32", "wifi"]);
  });
});

describe("parseDevice: platform, board and integrations", () => {
  it.each(PLATFORM_KEYS.map((p) => [p]))("detects %s", (platform) => {
    const d = parse(`esphome:\n  name: p\n${platform}:\n  board: some-board\n`);
    expect(d.platform).toBe(platform);
    expect(d.board).toBe("some-board");
  });

  it("takes the first platform key in file order", () => {
    expect(parse("rp2040:\n  board: rpipicow\nesp32:\n  board: esp32dev\n").platform).toBe("rp2040");
  });

  it("reports no board when the platform block has none", () => {
    const d = parse("host:\n");
    expect(d.platform).toBe("host");
    expect(d.board).toBeNull();
  });

  it("resolves a substituted board", () => {
    expect(parse("substitutions:\n  b: d1_mini\nesp8266:\n  board: ${b}\n").board).toBe("d1_mini");
  });

  it("reads the pre-2021.10 platform/board from the esphome block", () => {
    const d = parse("esphome:\n  name: old\n  platform: ESP8266\n  board: nodemcuv2\n");
    expect(d.platform).toBe("esp8266");
    expect(d.board).toBe("nodemcuv2");
  });

  it("has no platform for a package fragment", () => {
    expect(parse("sensor:\n  - platform: uptime\n").platform).toBeNull();
  });

  it("lists sorted component keys without substitutions, packages, esphome or dot keys", () => {
    const d = parse(
      "substitutions: {a: b}\npackages: {}\nesphome: {name: x}\n.base: &b {}\nwifi:\nlogger:\napi:\nesp32:\n  board: x\nsensor: []\n",
    );
    expect(d.loaded_integrations).toEqual(["api", "esp32", "logger", "sensor", "wifi"]);
  });
});

describe("parseDevice: address and web port", () => {
  it("uses wifi: use_address, resolved", () => {
    const d = parse("substitutions:\n  ip: 192.168.1.50\nesphome:\n  name: n\nwifi:\n  use_address: ${ip}\n");
    expect(d.address).toBe("192.168.1.50");
  });

  it("uses ethernet: and openthread: use_address", () => {
    expect(parse("ethernet:\n  type: LAN8720\n  use_address: eth-dev.lan\n").address).toBe("eth-dev.lan");
    expect(parse("openthread:\n  use_address: thread-dev.local\n").address).toBe("thread-dev.local");
  });

  it("uses a static IP like esphome does when use_address is absent", () => {
    expect(parse("esphome:\n  name: n\nwifi:\n  manual_ip:\n    static_ip: 10.0.0.9\n    gateway: 10.0.0.1\n").address).toBe("10.0.0.9");
  });

  it("applies a custom wifi domain", () => {
    expect(parse("esphome:\n  name: n\nwifi:\n  domain: .home.arpa\n").address).toBe("n.home.arpa");
  });

  it("defaults to <name>.local", () => {
    expect(parse("esphome:\n  name: n\nwifi:\n  ssid: x\n").address).toBe("n.local");
  });

  it("puts a host-platform device, which has no network block and no mDNS, at 127.0.0.1", () => {
    expect(parse("esphome:\n  name: hostdev\nhost:\napi:\n").address).toBe("127.0.0.1");
    // Without the host platform the name is the address, as before.
    expect(parse("esphome:\n  name: hostdev\nesp32:\n  board: x\n").address).toBe("hostdev.local");
  });

  it("reads web_server port, defaulting to 80 and null without web_server", () => {
    expect(parse("web_server:\n  port: 8080\n").web_port).toBe(8080);
    expect(parse("web_server:\n").web_port).toBe(80);
    expect(parse("web_server:\n  version: 3\n").web_port).toBe(80);
    expect(parse("substitutions: {p: 81}\nweb_server:\n  port: ${p}\n").web_port).toBe(81);
    expect(parse("logger:\n").web_port).toBeNull();
  });

  it("reports an unreadable web_server port as null rather than guessing", () => {
    expect(parse("web_server:\n  port: !secret port\n").web_port).toBeNull();
    expect(parse("web_server:\n  port: 70000\n").web_port).toBeNull();
    expect(parse("web_server:\n  port: eighty\n").web_port).toBeNull();
  });
});

describe("parseDevice: broken files are still listed", () => {
  const broken: [string, string, RegExp][] = [
    ["a syntax error", "esphome:\n  name: [unclosed\n", /^YAML syntax error: /],
    ["a tab-indented block", "esphome:\n\tname: x\n", /^YAML syntax error: /],
    ["an empty file", "", /file is empty/],
    ["a comment-only file", "# TODO\n", /file is empty/],
    ["a list at top level", "- a\n- b\n", /not a mapping/],
    ["a scalar at top level", "just text\n", /not a mapping/],
    ["an unknown alias", "a: *nowhere\n", /^YAML (syntax )?error: .*alias/i],
  ];
  it.each(broken)("lists %s with the stem and an error", (_label, text, error) => {
    const d = parse(text, "broken.yaml");
    expect(d).toMatchObject({ name: "broken", friendly_name: "broken", address: "broken.local", platform: null });
    expect(d.error).toMatch(error);
    expect(d.error).not.toContain("\n");
  });

  it("stops an alias expansion bomb instead of hanging", () => {
    const lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
    for (let i = 1; i < 10; i++) {
      const prev = String.fromCharCode(96 + i);
      const cur = String.fromCharCode(97 + i);
      lines.push(`${cur}: &${cur} [${Array(10).fill(`*${prev}`).join(", ")}]`);
    }
    const d = parse(lines.join("\n"), "bomb.yaml");
    expect(d.name).toBe("bomb");
    expect(d.error).toMatch(/alias/i);
  });

  it("tolerates duplicate keys (last one wins) and a byte order mark", () => {
    const d = parse("\uFEFFesphome:\n  name: first\nesphome:\n  name: second\n");
    expect(d.error).toBeNull();
    expect(d.name).toBe("second");
  });
});
