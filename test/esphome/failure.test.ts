/**
 * The failure reader on output real ESPHome 2026.10.0 printed under `--dashboard`
 * (literal `\033` colour codes), captured on a host-platform device. The real CLI
 * produces these again in test/real-device/real-esphome.test.ts.
 */
import { describe, expect, it } from "vitest";
import { FAILURE_MAX_CHARS, FailureReader } from "../../src/esphome/failure.ts";

const E = "\\033";
const info = (m: string): string => `${E}[32mINFO ${m}${E}[0m\n`;
const warning = (m: string): string => `${E}[33mWARNING ${m}${E}[0m\n`;
const errorLine = (m: string): string => `${E}[31mERROR ${m}${E}[0m\n`;

function read(lines: string[]): string | null {
  const reader = new FailureReader();
  for (const line of lines) reader.feed(line);
  return reader.message;
}

describe("FailureReader", () => {
  it("a wrong OTA password", () => {
    expect(
      read([
        info("Connecting to 10.214.77.2 port 8082..."),
        info("Connection established; device supports OTA version 2"),
        errorLine("receiving auth result: Authentication invalid. Is the password correct?"),
        warning("Failed to upload to ['10.214.77.2']"),
      ]),
    ).toBe("receiving auth result: Authentication invalid. Is the password correct?");
  });

  it("an unreachable device: the last ERROR record wins over the warnings before it", () => {
    expect(
      read([
        warning("Connecting to 10.214.77.3 port 8082 failed: [Errno 113] No route to host"),
        info("Retrying in 5 seconds (attempt 2 of 3)..."),
        errorLine("Upload failed after 3 attempts: connecting to 10.214.77.3 failed: [Errno 113] No route to host"),
        warning("Failed to upload to ['10.214.77.3']"),
      ]),
    ).toBe("Upload failed after 3 attempts: connecting to 10.214.77.3 failed: [Errno 113] No route to host");
  });

  it("a record over several lines ends at its colour reset", () => {
    expect(
      read([
        info("Reading configuration bad2.yaml..."),
        `${E}[31mERROR Error while reading config: Invalid YAML syntax:\n`,
        "\n",
        "while parsing a flow node\n",
        "expected the node content, but found '<stream end>'\n",
        `  in "bad2.yaml", line 6, column 1${E}[0m\n`,
        "unrelated tail\n",
      ]),
    ).toBe(`Error while reading config: Invalid YAML syntax: while parsing a flow node expected the node content, but found '<stream end>' in "bad2.yaml", line 6, column 1`);
  });

  it("a configuration that does not validate: the Failed config block's path and message", () => {
    expect(
      read([
        info("Reading configuration bad.yaml..."),
        `${E}[1;31mFailed config${E}[0m\n`,
        "\n",
        `${E}[1;31msensor.uptime:${E}[0m ${E}[36m[source bad.yaml:6]${E}[0m\n`,
        "  platform: uptime\n",
        "  name: Uptime\n",
        "  \n",
        `  ${E}[1;31mUnknown value 'often', valid options are 'ns', 's', 'min'.${E}[0m\n`,
        "  update_interval: often\n",
      ]),
    ).toBe("Failed config in sensor.uptime: Unknown value 'often', valid options are 'ns', 's', 'min'.");
  });

  it("a compiler error: ESPHome's record and the first diagnostic", () => {
    expect(
      read([
        "[55/56] CXX obj/src/main.cpp.o\n",
        "FAILED: obj/src/main.cpp.o \n",
        "cerr.yaml: In lambda function:\n",
        "cerr.yaml:18:14: error: ‘nonsense_call’ was not declared in this scope\n",
        "cerr.yaml:19:3: error: a second one\n",
        "ninja: build stopped: subcommand failed.\n",
        errorLine("Host build failed"),
      ]),
    ).toBe("Host build failed; cerr.yaml:18:14: error: ‘nonsense_call’ was not declared in this scope");
  });

  it("real escape bytes and uncoloured records read the same", () => {
    expect(read(["\x1b[31mERROR Upload failed\x1b[0m\n"])).toBe("Upload failed");
    expect(read(["ERROR Upload failed\n", "the next line is not part of it\n"])).toBe("Upload failed");
  });

  it("a record is cut at the next log line or after a few lines, and the message is capped", () => {
    expect(read([`${E}[31mERROR first\n`, "second\n", info("not part of it")])).toBe("first second");
    const long = "x".repeat(FAILURE_MAX_CHARS * 2);
    expect(read([errorLine(long)])).toHaveLength(FAILURE_MAX_CHARS);
  });

  it("nothing when the output names no failure", () => {
    expect(read([info("Successfully compiled program."), "[3/3] LINK program\n", warning("careful")])).toBeNull();
  });
});
