import { describe, expect, it } from "vitest";
import {
  LineSplitter,
  OUTPUT_CHARS_INFLIGHT,
  OUTPUT_CHARS_RETAINED,
  OUTPUT_LINE_KEPT_BYTES,
  OUTPUT_LINE_MAX_BYTES,
  OUTPUT_LINES_INFLIGHT,
  OUTPUT_LINES_RETAINED,
  OutputHistory,
  lineCutNotice,
  ProgressParser,
  findErrorPattern,
  splitStoredLog,
  stripAnsi,
  trimNotice,
} from "../../src/firmware/output.ts";

describe("LineSplitter", () => {
  it("splits on \\n and \\r and keeps each terminator", () => {
    const s = new LineSplitter();
    expect(s.push("a\nb\rc\r\nd")).toEqual(["a\n", "b\r", "c\r\n"]);
    expect(s.end()).toEqual(["d"]);
  });

  it("treats \\r\\n split across chunks as one terminator", () => {
    const s = new LineSplitter();
    expect(s.push("line\r")).toEqual([]);
    expect(s.push("\nnext\n")).toEqual(["line\r\n", "next\n"]);
  });

  it("emits a lone \\r line once the next chunk shows it is not \\r\\n", () => {
    const s = new LineSplitter();
    expect(s.push("Uploading: 10%\r")).toEqual([]);
    expect(s.push("Uploading: 20%\r")).toEqual(["Uploading: 10%\r"]);
    expect(s.end()).toEqual(["Uploading: 20%\r"]);
  });

  it("keeps a multi-byte character split across chunks whole", () => {
    const s = new LineSplitter();
    const bytes = Buffer.from("température ✓\n", "utf8");
    const cut = bytes.indexOf(0xe2) + 1; // inside the 3-byte check mark
    expect(s.push(bytes.subarray(0, cut))).toEqual([]);
    expect(s.push(bytes.subarray(cut))).toEqual(["température ✓\n"]);
  });

  it("replaces invalid UTF-8 with U+FFFD instead of failing", () => {
    const s = new LineSplitter();
    expect(s.push(Buffer.from([0x61, 0xff, 0x62, 0x0a]))).toEqual(["a\uFFFDb\n"]);
  });

  it("round-trips stored logs exactly", () => {
    const lines = ["a\n", "b\r", "c\r\n", "\n", "tail"];
    expect(splitStoredLog(lines.join(""))).toEqual(lines);
  });
});

/** Feeds `bytes` to a new splitter in pseudo-random chunks of 1 to `max` bytes. */
function splitInChunks(bytes: Buffer, max: number, seed = 7): string[] {
  const rand = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
  const s = new LineSplitter();
  const got: string[] = [];
  for (let off = 0; off < bytes.length;) {
    const size = 1 + rand(max);
    got.push(...s.push(bytes.subarray(off, off + size)));
    off += size;
  }
  got.push(...s.end());
  return got;
}

describe("LineSplitter: the longest line", () => {
  it("keeps a line of exactly the cap whole and cuts one byte more, marker within the cap", () => {
    const whole = "y".repeat(OUTPUT_LINE_MAX_BYTES);
    const long = "z".repeat(OUTPUT_LINE_MAX_BYTES + 1);
    const got = splitInChunks(Buffer.from(`${whole}\r\n${long}\rnext\n`), 5000);
    expect(got).toEqual([`${whole}\r\n`, `${"z".repeat(OUTPUT_LINE_KEPT_BYTES)}${lineCutNotice(OUTPUT_LINE_MAX_BYTES + 1 - OUTPUT_LINE_KEPT_BYTES)}\r`, "next\n"]);
    expect(Buffer.byteLength(got[1]!)).toBeLessThanOrEqual(OUTPUT_LINE_MAX_BYTES + 1);
  });

  it("cuts the same way however the bytes arrive, and counts every byte it dropped", () => {
    const text = `start\n${"x".repeat(100_000)}\nmiddle\r${"w".repeat(40_000)}`;
    const expected = ["start\n", `${"x".repeat(OUTPUT_LINE_KEPT_BYTES)}${lineCutNotice(100_000 - OUTPUT_LINE_KEPT_BYTES)}\n`, "middle\r", `${"w".repeat(OUTPUT_LINE_KEPT_BYTES)}${lineCutNotice(40_000 - OUTPUT_LINE_KEPT_BYTES)}`];
    for (const [max, seed] of [[3, 1], [700, 2], [5000, 3], [70_000, 4], [1 << 20, 5]] as const) {
      expect(splitInChunks(Buffer.from(text), max, seed)).toEqual(expected);
    }
  });

  it("never ends the kept part inside a character", () => {
    // 1 + 3k bytes: the limit falls inside a 3-byte check mark.
    const text = `a${"\u2713".repeat(8000)}\n`;
    const kept = Math.floor((OUTPUT_LINE_KEPT_BYTES - 1) / 3);
    const expected = [`a${"\u2713".repeat(kept)}${lineCutNotice(Buffer.byteLength(text) - 1 - (1 + 3 * kept))}\n`];
    for (const max of [2, 4096, 100_000]) expect(splitInChunks(Buffer.from(text), max)).toEqual(expected);
  });

  it("reads its own output back unchanged: a stored log, or a build server's lines split again", () => {
    const lines = ["a\n", `${"q".repeat(OUTPUT_LINE_KEPT_BYTES)}${lineCutNotice(123_456)}\n`, `\uFFFD`.repeat(OUTPUT_LINE_MAX_BYTES) + "\n", "tail"];
    expect(splitStoredLog(lines.join(""))).toEqual(lines);
    const again = new LineSplitter();
    expect([...again.push(lines[1]!), ...again.end()]).toEqual([lines[1]]);
  });

  it("holds one capped line whatever it is fed: 256 MiB without a newline goes through in linear time", () => {
    const chunk = Buffer.alloc(64 * 1024, "m");
    const s = new LineSplitter();
    const t0 = performance.now();
    for (let i = 0; i < 4096; i++) expect(s.push(chunk)).toEqual([]);
    const [line, ...rest] = s.end();
    const seconds = (performance.now() - t0) / 1000;
    expect(rest).toEqual([]);
    expect(line).toBe(`${"m".repeat(OUTPUT_LINE_KEPT_BYTES)}${lineCutNotice(256 * 1024 * 1024 - OUTPUT_LINE_KEPT_BYTES)}`);
    // Quadratic joining took over a minute for 100 MB; a linear scan takes well under a second.
    expect(seconds).toBeLessThan(5);
  });
});

describe("OutputHistory", () => {
  it("trims by characters too: long lines cannot hold more than OUTPUT_CHARS_INFLIGHT", () => {
    const h = new OutputHistory();
    const line = `${"c".repeat(9_999)}\n`;
    const count = Math.floor(OUTPUT_CHARS_INFLIGHT / line.length) + 1; // the append that passes the limit
    for (let i = 0; i < count; i++) h.append(line);
    expect(h.trims).toBe(1);
    expect(h.chars).toBeLessThanOrEqual(OUTPUT_CHARS_RETAINED + 100);
    const kept = h.length - 1;
    expect(kept).toBe(Math.floor(OUTPUT_CHARS_RETAINED / line.length));
    expect(h.lines[0]).toBe(trimNotice(count - kept));
    expect(h.chars).toBe(h.lines.join("").length);
  });

  it("keeps the newest line even when it alone is past the character limit", () => {
    const h = new OutputHistory(["a\n", "b\n"]);
    h.append("x".repeat(OUTPUT_CHARS_INFLIGHT + 1));
    expect(h.lines).toEqual([trimNotice(2), "x".repeat(OUTPUT_CHARS_INFLIGHT + 1)]);
  });

  it("collapses \\r overwrites into the last line", () => {
    const h = new OutputHistory();
    h.append("start\n");
    h.append("Uploading:  10%\r");
    h.append("Uploading:  50%\r");
    h.append("Uploading: 100% Done...\r\n");
    h.append("INFO OTA successful\n");
    expect(h.lines).toEqual(["start\n", "Uploading: 100% Done...\r\n", "INFO OTA successful\n"]);
  });

  it("does not let a bare \\n after a \\r line replace it", () => {
    const h = new OutputHistory();
    h.append("bar 100%\r");
    h.append("\n");
    expect(h.lines).toEqual(["bar 100%\r", "\n"]);
  });

  it("trims past the in-flight limit and counts every elided line", () => {
    const h = new OutputHistory();
    for (let i = 0; i <= OUTPUT_LINES_INFLIGHT; i++) h.append(`line ${i}\n`);
    expect(h.length).toBe(OUTPUT_LINES_RETAINED + 1);
    const elided = OUTPUT_LINES_INFLIGHT + 1 - OUTPUT_LINES_RETAINED;
    expect(h.lines[0]).toBe(trimNotice(elided));
    expect(h.lines[1]).toBe(`line ${elided}\n`);
    expect(h.trims).toBe(1);
    // A second trim folds the earlier count in.
    for (let i = 0; i < OUTPUT_LINES_INFLIGHT; i++) h.append(`more ${i}\n`);
    const notice = h.lines[0]!;
    const count = Number(/(\d+) earlier/.exec(notice)![1]);
    expect(count + (h.length - 1)).toBe(OUTPUT_LINES_INFLIGHT + 1 + OUTPUT_LINES_INFLIGHT);
  });

  it("keeps the elided count when history is rebuilt from a trimmed log", () => {
    const h = new OutputHistory([trimNotice(500), "a\n", "b\n"]);
    h.trim(1);
    expect(h.lines).toEqual([trimNotice(501), "b\n"]);
  });
});

describe("ProgressParser", () => {
  it.each([
    ["[  1%] Compiling .pioenvs/x/src/main.cpp.o\n", 1],
    ["[ 17%] Compiling foo\n", 17],
    ["[100%] Linking\n", 100],
    ["Writing at 0x00010000... (45 %)\n", 45],
    ["Writing at 0x00010000... (45%)\r", 45],
    ["\x1b[2KWriting at 0x00010000 [=====>     ] 84.8% 1000/2000 bytes...\r", 84],
    ["\\033[2KWriting at 0x00010000 [=====>     ] 84.8% 1000/2000 bytes...\r", 84],
    ["Uploading: [=========                   ]  35% \r", 35],
    ["\\033[32mUploading: [====] 12% \r", 12],
    ["[ 907/1424] Building C object esp-idf/main.c.obj\n", 63],
  ])("reads %j as %i", (line, expected) => {
    expect(new ProgressParser().feed(line)).toBe(expected);
  });

  it.each([
    "Unpacking  [####################################]  100%\n",
    "RAM:   [=         ]  11.2% (used 36668 bytes from 327680 bytes)\n",
    "Flash: [======    ]  57.3% (used 1050905 bytes from 1835008 bytes)\n",
    "The build is 50% done according to nobody\n",
    "Compiling .pioenvs/x/src/main.cpp.o\n",
    "[150%] nonsense\n",
    "[5/0] nothing to count\n",
    "[21/20] more done than there is\n",
  ])("ignores %j", (line) => {
    expect(new ProgressParser().feed(line)).toBeNull();
  });

  it("never goes backwards within a phase and restarts at 0 after reset", () => {
    const p = new ProgressParser();
    expect(p.feed("[ 40%] a\n")).toBe(40);
    expect(p.feed("[ 20%] b\n")).toBeNull();
    expect(p.value).toBe(40);
    p.reset();
    expect(p.value).toBe(0);
    expect(p.feed("Uploading: [==] 10% \r")).toBe(10);
  });

  it("reads a real ESPHome host build's ninja counters (56 steps, then an incremental 3)", () => {
    const p = new ProgressParser();
    expect(p.feed("[1/56] CC obj/src/esphome/components/esphome/ota/ota_esphome_inflate.c.o\n")).toBe(1);
    expect(p.feed("[2/56] PCH esphome_pch.h.gch\n")).toBe(3);
    expect(p.feed("[28/56] CXX obj/src/esphome/components/network/util.cpp.o\n")).toBe(50);
    expect(p.feed("[56/56] LINK program\n")).toBe(100);
    p.reset();
    expect(["[1/3] CXX obj/src/esphome/core/build_info_data.cpp.o\n", "[2/3] CXX obj/src/main.cpp.o\n", "[3/3] LINK program\n"].map((l) => p.feed(l))).toEqual([33, 66, 100]);
  });

  it("reads ESP-IDF's collapsed status lines (a carriage return before each, erase-line after)", () => {
    const p = new ProgressParser();
    expect(p.feed("[907/1424] Building C object esp-idf/main/CMakeFiles/main.c.obj\\033[K\r")).toBe(63);
  });

  it("ignores ninja sub-builds smaller than the largest seen", () => {
    const p = new ProgressParser();
    expect(p.feed("[500/1000] main\n")).toBe(50);
    expect(p.feed("[199/200] bootloader\n")).toBeNull();
    expect(p.feed("[600/1000] main\n")).toBe(60);
  });
});

describe("error patterns on exit 0", () => {
  it.each(["ModuleNotFoundError: No module named 'foo'", "ImportError: x", "FileNotFoundError: y", "sh: 1: pio: command not found"])(
    "flags %j",
    (line) => {
      expect(findErrorPattern(line)).toMatch(/output contains errors/);
    },
  );

  it("names a missing esphome module specifically", () => {
    expect(findErrorPattern("ModuleNotFoundError: No module named 'esphome'")).toMatch(/not importable/);
  });

  it("does not flag a bare 'No module named' from PlatformIO's nanopb script", () => {
    expect(findErrorPattern("No module named google.protobuf, skipping")).toBeNull();
  });
});

describe("stripAnsi", () => {
  it("removes real and literal escape codes", () => {
    expect(stripAnsi("\x1b[32mINFO ok\x1b[0m")).toBe("INFO ok");
    expect(stripAnsi("\\033[32mINFO ok\\033[0m")).toBe("INFO ok");
  });
});

describe("chunk boundaries and hand-read patterns", () => {
  it("splits the same lines however the bytes are cut", () => {
    const text = "a\nbb\r\ncc\rdd\r\r\n\nUploading: 10%\rUploading: 20%\r\nlast \u00e9\u2713 line\rtail";
    const bytes = Buffer.from(text, "utf8");
    const whole = splitStoredLog(text);
    let seed = 7;
    const rand = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    for (let round = 0; round < 500; round++) {
      const s = new LineSplitter();
      const got: string[] = [];
      let off = 0;
      while (off < bytes.length) {
        const size = 1 + rand(6);
        got.push(...s.push(bytes.subarray(off, off + size)));
        off += size;
      }
      got.push(...s.end());
      expect(got).toEqual(whole);
    }
  });

  it("reads the PlatformIO gauge and the OTA bar exactly as their regular expressions do", async () => {
    const { PIO_GAUGE, OTA_BAR } = await import("../../src/firmware/output.ts");
    const samples = [
      "[ 17%] Compiling", "[100%]", "[  1 % ] x", "[1000%] x", "[ 5%", "[%]", "  [ 42%] x", "[ 42%]x", "[\t9\t%\t]",
      "Uploading: [===   ] 43% ", "Uploading: 100% Done", "Uploading: x1234% y", "Uploading: a5% 6%", "Uploading: 7 %",
      "Uploading: [====] 1000% 50%", "Uploading:50%", "Uploading: _12% 13%", "  Uploading: [=] 9%", "Uploading: no percent",
    ];
    for (const line of samples) {
      const expected = PIO_GAUGE.exec(line)?.[1] ?? OTA_BAR.exec(line)?.[1];
      const value = new ProgressParser().feed(line);
      const want = expected === undefined || Number(expected) > 100 || Number(expected) === 0 ? null : Number(expected);
      expect([line, value]).toEqual([line, want]);
    }
  });
});
