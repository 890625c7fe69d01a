import { describe, expect, it } from "vitest";
import en from "../../translations/panel/en.json" with { type: "json" };
import { formatDuration, formatKilobytes } from "../../panel/src/common/format.ts";
import { ENGLISH, createLocalize, format, loadLocalize, pickLocale, type LocalizeKey } from "../../panel/src/common/localize.ts";

function leafKeys(node: unknown, prefix = ""): string[] {
  if (typeof node === "string") return [prefix.slice(0, -1)];
  return Object.entries(node as Record<string, unknown>).flatMap(([k, v]) => leafKeys(v, `${prefix}${k}.`));
}

describe("localize", () => {
  it("looks up nested keys and substitutes placeholders", () => {
    const localize = createLocalize(undefined);
    expect(localize("app.title")).toBe("ESPHome Builder");
    expect(localize("install.building_on", { label: "garage-server" })).toBe("Building on garage-server");
    expect(localize("devices.install_selected", { count: 3 })).toBe("Install selected (3)");
  });

  it("falls back to English for a key the locale lacks", () => {
    const localize = createLocalize({ app: { title: "ESPHome Bauer" }, common: { close: 42 } }, "de");
    expect(localize("app.title")).toBe("ESPHome Bauer");
    expect(localize("app.tabs.jobs")).toBe("Jobs");
    // A malformed entry (not a string) also falls back.
    expect(localize("common.close")).toBe("Close");
  });

  it("uses the locale's plural variant of a key when there is one", () => {
    const localize = createLocalize(undefined, "en");
    expect(localize("devices.count", { count: 1 })).toBe("1 device");
    expect(localize("devices.count", { count: 2 })).toBe("2 devices");
    expect(localize("devices.count", { count: 0 })).toBe("0 devices");
    expect(localize("log.hidden", { count: 1 })).toBe("1 earlier line hidden");
  });

  it("formats numbers for the locale and leaves unknown placeholders as written", () => {
    expect(createLocalize(undefined, "en")("log.hidden", { count: 12345 })).toBe("12,345 earlier lines hidden");
    expect(createLocalize(undefined, "de")("log.hidden", { count: 12345 })).toBe("12.345 earlier lines hidden");
    expect(format("{a} and {b}", { a: "x" })).toBe("x and {b}");
  });

  it("types keys from en.json", () => {
    const localize = createLocalize(undefined);
    // @ts-expect-error: not a key of en.json
    expect(localize("app.nope")).toBe("app.nope");
    const key: LocalizeKey = "jobs.clear_history";
    expect(localize(key)).toBe("Clear history");
  });

  it("has every string non-empty and every placeholder well formed", () => {
    const keys = leafKeys(ENGLISH);
    expect(keys.length).toBeGreaterThan(50);
    const localize = createLocalize(undefined);
    for (const key of keys) {
      const text = localize(key as LocalizeKey);
      expect(text, key).not.toBe("");
      expect(text, key).not.toMatch(/\{[^}]*$|\{\s*\}/);
    }
    expect(en.app.title).toBe("ESPHome Builder");
  });

  it("picks the locale: exact, then language, then English", () => {
    expect(pickLocale(["de-DE", "en-US"], ["en", "de", "pt-BR"])).toBe("de");
    expect(pickLocale(["pt_br"], ["en", "pt-BR"])).toBe("pt-BR");
    expect(pickLocale(["pt-PT"], ["en", "pt-BR"])).toBe("pt-BR");
    expect(pickLocale(["fr"], ["en", "de"])).toBe("en");
    expect(pickLocale([], ["en"])).toBe("en");
  });

  it("loads English for any browser language", async () => {
    const { locale, localize } = await loadLocalize(["xx-YY"]);
    expect(locale).toBe("en");
    expect(localize("app.tabs.devices")).toBe("Devices");
  });
});

describe("formatDuration", () => {
  const localize = createLocalize(undefined);
  it("uses seconds, minutes or hours", () => {
    expect(formatDuration(4_400, localize)).toBe("4 s");
    expect(formatDuration(65_000, localize)).toBe("1 min 5 s");
    expect(formatDuration(3_723_000, localize)).toBe("1 h 2 min");
    expect(formatDuration(-5, localize)).toBe("0 s");
  });

  it("formats kilobytes", () => {
    expect(formatKilobytes(65_536)).toBe("64");
    expect(formatKilobytes(2_048)).toBe("2.0");
  });
});
