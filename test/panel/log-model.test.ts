import { describe, expect, it } from "vitest";
import { LogModel } from "../../panel/src/common/log-model.ts";

describe("LogModel", () => {
  it("replaces a line ending in a bare \\r with the next line", () => {
    const log = new LogModel();
    log.pushMany([
      "INFO Uploading firmware.bin\n",
      "\r",
      "Uploading: [==      ] 25% \r",
      "Uploading: [====    ] 50% \r",
      "Uploading: [========] 100% Done...\r\n",
      "\n",
      "INFO OTA successful\n",
    ]);
    expect(log.lines()).toEqual([
      "INFO Uploading firmware.bin\n",
      "Uploading: [========] 100% Done...\r\n",
      "\n",
      "INFO OTA successful\n",
    ]);
  });

  it("keeps \\r\\n lines and shows the open \\r line until it is replaced", () => {
    const log = new LogModel();
    log.push("a\r\n");
    log.push("b\r");
    expect(log.lines()).toEqual(["a\r\n", "b\r"]);
    log.push("c\n");
    expect(log.lines()).toEqual(["a\r\n", "c\n"]);
  });

  it("caps the kept lines and counts the hidden ones", () => {
    const log = new LogModel(1000);
    for (let i = 0; i < 2500; i++) log.push(`line ${i}\n`);
    expect(log.length).toBeLessThanOrEqual(1000);
    expect(log.hidden + log.length).toBe(2500);
    expect(log.line(log.length - 1)).toBe("line 2499\n");
    expect(log.line(0)).toBe(`line ${log.hidden}\n`);
  });

  it("notifies listeners and bumps the version; clear resets everything", () => {
    const log = new LogModel(10);
    let calls = 0;
    const off = log.subscribe(() => calls++);
    log.push("x\n");
    log.pushMany(["y\n", "z\n"]);
    expect(calls).toBe(2);
    const v = log.version;
    for (let i = 0; i < 20; i++) log.push("w\n");
    log.clear();
    expect(log.version).toBeGreaterThan(v);
    expect(log.length).toBe(0);
    expect(log.hidden).toBe(0);
    off();
    log.push("after\n");
    expect(calls).toBe(2 + 20 + 1);
  });

  it("takes 50,000 lines in well under a second", () => {
    const log = new LogModel();
    const start = performance.now();
    for (let i = 0; i < 50_000; i++) log.push(`[ ${i % 100}%] Compiling .pioenvs/kitchen/src/file${i}.cpp.o\n`);
    const ms = performance.now() - start;
    expect(log.length).toBe(50_000);
    expect(ms).toBeLessThan(500);
  });
});
