/**
 * Progress read from pip's output: packages collected against those expected,
 * then pip's install step; it never falls and never claims 100 before the end.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { PipProgress, expectedPackages } from "../../src/esphome/pip-progress.ts";
import { ROOT } from "../helpers/builder.ts";

describe("pip progress", () => {
  it("expects every package the pinned version's constraints list, plus ESPHome", () => {
    const text = readFileSync(path.join(ROOT, "addon", "constraints.txt"), "utf8");
    const pinned = text.split("\n").filter((l) => /^[A-Za-z0-9][\w.-]*==/.test(l)).length;
    expect(expectedPackages(text)).toBe(pinned + 1);
    expect(expectedPackages("# comment\n\nfoo==1.0\nbar==2\n")).toBe(3);
  });

  it("counts Collecting lines into 5-70 %, then the install step, and never falls", () => {
    const p = new PipProgress(4);
    const seen: number[] = [p.state.percent];
    const feed = (line: string): void => {
      p.feed(line);
      seen.push(p.state.percent);
    };
    feed("Looking in links: /opt/wheels\n");
    feed("Collecting esphome==2026.10.0\n");
    feed("  Downloading esphome-2026.10.0-py3-none-any.whl (7.4 MB)\n");
    feed("\x1b[2K     ━━━━━━━━━━━━━━━━━━━━━━━━ 7.4/7.4 MB 128.8 MB/s eta 0:00:00\r");
    feed("Collecting cryptography==50.0.2 (from esphome==2026.10.0)\n");
    expect(p.state).toMatchObject({ phase: "downloading", collected: 2, percent: 5 + Math.floor((2 / 4) * 65) });
    feed("Requirement already satisfied: pip in ./lib/python3.13/site-packages\n");
    feed("Collecting voluptuous==0.16.0 (from esphome==2026.10.0)\n");
    expect(p.state.percent).toBe(70);
    // More packages than expected (an estimate for another version): capped, not past 70 %.
    feed("Collecting extra==1.0\n");
    expect(p.state.percent).toBe(70);
    feed("Installing collected packages: voluptuous, cryptography, esphome\n");
    expect(p.state).toMatchObject({ phase: "installing", percent: 75 });
    // A late Collecting line (pip prints none after this) cannot move it back.
    feed("Collecting late==1\n");
    feed("Successfully installed cryptography-50.0.2 esphome-2026.10.0 voluptuous-0.16.0\n");
    expect(p.state).toMatchObject({ phase: "installing", percent: 90 });
    for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeGreaterThanOrEqual(seen[i - 1] ?? 0);
    expect(Math.max(...seen)).toBeLessThan(100);
  });

  it("says whether a line changed anything", () => {
    const p = new PipProgress(85);
    expect(p.feed("  Using cached esptool-5.4.0-py3-none-any.whl\n")).toBe(false);
    expect(p.feed("Collecting esptool==5.4.0\n")).toBe(false);
    expect(p.feed("Collecting click==8.5.0\n")).toBe(true);
  });
});
