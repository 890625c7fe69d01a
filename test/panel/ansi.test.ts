import { describe, expect, it } from "vitest";
import { parseAnsi, plainText, stripTerminator } from "../../panel/src/common/ansi.ts";

describe("parseAnsi", () => {
  it("returns one plain segment for a line without escapes, terminator removed", () => {
    expect(parseAnsi("Linking .pioenvs/kitchen/firmware.elf\n")).toEqual([
      { text: "Linking .pioenvs/kitchen/firmware.elf", fg: null, bold: false, underline: false },
    ]);
    expect(parseAnsi("\r\n")).toEqual([]);
  });

  it("renders real ESC colour sequences", () => {
    expect(parseAnsi("\x1b[32mINFO Reading configuration\x1b[0m\n")).toEqual([
      { text: "INFO Reading configuration", fg: 32, bold: false, underline: false },
    ]);
  });

  it("renders the literal \\033[ text the CLI prints with --dashboard", () => {
    const line = "========================= [\\033[32m\\033[1mSUCCESS\\033[0m] Took 1.02 seconds =========================\n";
    const segments = parseAnsi(line);
    expect(segments).toEqual([
      { text: "========================= [", fg: null, bold: false, underline: false },
      { text: "SUCCESS", fg: 32, bold: true, underline: false },
      { text: "] Took 1.02 seconds =========================", fg: null, bold: false, underline: false },
    ]);
    expect(plainText(line)).toBe("========================= [SUCCESS] Took 1.02 seconds =========================");
  });

  it("handles combined parameters, bright colours, bold off and default colour", () => {
    expect(parseAnsi("\x1b[1;91mE\x1b[22mrr\x1b[39m ok\x1b[m")).toEqual([
      { text: "E", fg: 91, bold: true, underline: false },
      { text: "rr", fg: 91, bold: false, underline: false },
      { text: " ok", fg: null, bold: false, underline: false },
    ]);
    expect(parseAnsi("\x1b[33mW\x1b[97mX")).toEqual([
      { text: "W", fg: 33, bold: false, underline: false },
      { text: "X", fg: 97, bold: false, underline: false },
    ]);
  });

  it("strips other CSI sequences and stray control characters", () => {
    expect(plainText("\x1b[2K\rUploading: [=====     ] 50%\r")).toBe("Uploading: [=====     ] 50%");
    expect(plainText("\\033[2K\\033[1Gabc\x07\b")).toBe("abc");
    expect(plainText("\x1b[?25lhidden cursor\x1b[?25h")).toBe("hidden cursor");
    expect(plainText("a\tb")).toBe("a\tb");
  });

  it("skips 256-colour and true-colour arguments instead of reading them as colours", () => {
    expect(parseAnsi("\x1b[38;5;31mx")).toEqual([{ text: "x", fg: null, bold: false, underline: false }]);
    expect(parseAnsi("\x1b[38;2;1;2;3;32mx")).toEqual([{ text: "x", fg: 32, bold: false, underline: false }]);
  });

  it("merges neighbouring segments with the same style", () => {
    expect(parseAnsi("\x1b[32ma\x1b[32mb")).toEqual([{ text: "ab", fg: 32, bold: false, underline: false }]);
  });

  it("parses 50,000 coloured lines quickly", () => {
    const line = "\\033[32mINFO Compiling .pioenvs/kitchen/src/main.cpp.o\\033[0m\n";
    const start = performance.now();
    let n = 0;
    for (let i = 0; i < 50_000; i++) n += parseAnsi(line).length;
    const ms = performance.now() - start;
    expect(n).toBe(50_000);
    expect(ms).toBeLessThan(1500);
  });
});

describe("stripTerminator", () => {
  it("removes \\n, \\r and \\r\\n only at the end", () => {
    expect(stripTerminator("a\r\n")).toBe("a");
    expect(stripTerminator("a\r")).toBe("a");
    expect(stripTerminator("a\nb\n")).toBe("a\nb");
    expect(stripTerminator("abc")).toBe("abc");
  });
});
