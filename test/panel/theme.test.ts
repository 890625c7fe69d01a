import { describe, expect, it } from "vitest";
import { isDarkColor, parseColor, pickTheme, themeFromQuery } from "../../panel/src/common/theme.ts";

describe("theme", () => {
  it("reads ?theme=dark|light", () => {
    expect(themeFromQuery("?theme=dark")).toBe("dark");
    expect(themeFromQuery("?x=1&theme=LIGHT")).toBe("light");
    expect(themeFromQuery("?theme=blue")).toBeNull();
    expect(themeFromQuery("")).toBeNull();
  });

  it("parses hex and rgb colours", () => {
    expect(parseColor("#fff")).toEqual([255, 255, 255]);
    expect(parseColor(" #111111 ")).toEqual([17, 17, 17]);
    expect(parseColor("rgb(28, 28, 28)")).toEqual([28, 28, 28]);
    expect(parseColor("rgba(250,250,250,0.5)")).toEqual([250, 250, 250]);
    expect(parseColor("var(--x)")).toBeNull();
  });

  it("tells dark backgrounds from light ones", () => {
    expect(isDarkColor("#111111")).toBe(true);
    expect(isDarkColor("#1c1c1c")).toBe(true);
    expect(isDarkColor("#fafafa")).toBe(false);
    expect(isDarkColor("white")).toBeNull();
  });

  it("lets the query win, then the parent theme, then the OS preference", () => {
    expect(pickTheme("light", true, true)).toBe("light");
    expect(pickTheme(null, true, false)).toBe("dark");
    expect(pickTheme(null, false, true)).toBe("light");
    expect(pickTheme(null, null, true)).toBe("dark");
    expect(pickTheme(null, null, false)).toBe("light");
  });
});
