/**
 * ESPHome versions on the peer link: what counts as a version a peer sent,
 * which versions can be installed by name, and the version policies of both
 * roles (upstream's table for the sending builder; what a build server does
 * with a job for another version).
 */
import { describe, expect, it } from "vitest";
import { isPinnable, normalizeVersion, releaseLine, serveVersion, versionsMatch } from "../../src/esphome/version-policy.ts";

describe("normalizeVersion (target_esphome_version, intent_response.esphome_version)", () => {
  it.each(["2026.10.0", "2026.11.0b2", "2026.11.0rc1", "2026.10.0.dev20261001", "1.20.4", "2026.10.0+local.1", "2026.10.0.post1", "v2026.10.0", "1!2026.1"])(
    "keeps the well-formed PEP 440 version %s",
    (v) => { expect(normalizeVersion(v)).toBe(v); },
  );

  it("drops surrounding spaces, as PEP 440 parsing does", () => {
    expect(normalizeVersion("  2026.10.0\n")).toBe("2026.10.0");
  });

  it.each([
    ["an empty string", ""],
    ["words", "latest"],
    ["a shell injection", "2026.10.0; rm -rf /"],
    ["a pip requirement", "esphome>=2026.1"],
    ["a path", "../../etc/passwd"],
    ["a version over 64 characters", `2026.${"1".repeat(70)}`],
    ["a huge string", "9".repeat(100_000)],
    ["a number", 2026.1],
    ["null", null],
    ["an object", { version: "2026.10.0" }],
    ["missing", undefined],
  ])("turns %s into \"\" (unknown: the installed ESPHome builds)", (_what, raw) => {
    expect(normalizeVersion(raw)).toBe("");
  });
});

describe("isPinnable", () => {
  it("accepts releases and a, b, rc pre-releases in canonical form", () => {
    for (const v of ["2026.10.0", "2026.9.1", "2026.11.0b2", "2026.11.0a1", "2026.11.0rc3"]) expect(isPinnable(v)).toBe(true);
  });

  it("refuses dev, post and local versions and spellings pip would not find by name", () => {
    for (const v of ["2026.10.0.dev1", "2026.10.0.post1", "2026.10.0+local", "v2026.10.0", "2026.10.0-beta.1", ""]) expect(isPinnable(v)).toBe(false);
  });
});

describe("releaseLine", () => {
  it("is the year and month", () => {
    expect(releaseLine("2026.10.3")).toBe("2026.10");
    expect(releaseLine("2026.9.0b1")).toBe("2026.9");
    expect(releaseLine("2026")).toBe("2026.0");
    expect(releaseLine("")).toBe("");
  });
});

describe("versionsMatch (upstream's version_match_policy table)", () => {
  it.each([
    ["any", "2026.10.0", "2025.1.0", true],
    ["release", "2026.10.0", "2026.10.3", true],
    ["release", "2026.10.0", "2026.9.1", false],
    ["release", "", "2026.9.1", true],
    ["release", "2026.10.0", "", true],
    ["exact", "2026.10.0", "2026.10.0", true],
    ["exact", "2026.10.0", "2026.10.1", false],
    ["exact", "2026.10.0", "", true],
    ["exact_required", "2026.10.0", "2026.10.0", true],
    ["exact_required", "2026.10.0", "", false],
    ["exact_required", "", "", false],
    ["exact_required", "2026.10.0", "2026.10.1", false],
  ] as const)("%s: ours %s, theirs %s -> %s", (policy, ours, theirs, expected) => {
    expect(versionsMatch(policy, ours, theirs)).toBe(expected);
  });
});

describe("serveVersion (a build server's version policy)", () => {
  it("builds with its own ESPHome when the versions are the same, whatever the policy", () => {
    for (const policy of ["any", "release", "exact", "exact_required"] as const) {
      expect(serveVersion(policy, "2026.10.0", "2026.10.0", true)).toEqual({ kind: "installed", note: "" });
    }
  });

  it("any: builds with its own and says so in the job", () => {
    const d = serveVersion("any", "2026.10.0", "2026.9.1", true);
    expect(d.kind).toBe("installed");
    expect(d.kind === "installed" && d.note).toContain("the sending builder runs 2026.9.1");
  });

  it("release: serves the same release line, refuses another with a reason that names the fix", () => {
    expect(serveVersion("release", "2026.10.0", "2026.10.2", true).kind).toBe("installed");
    const d = serveVersion("release", "2026.10.0", "2026.9.1", true);
    expect(d).toEqual({ kind: "refuse", reason: expect.stringContaining("runs ESPHome 2026.10.0 and its version policy release builds only for 2026.10.x") as unknown });
    expect(d.kind === "refuse" && d.reason).toContain("Set its policy to exact");
  });

  it("exact and exact_required: install the sender's version when it can be installed by name", () => {
    expect(serveVersion("exact", "2026.10.0", "2026.9.1", true)).toEqual({ kind: "provision", version: "2026.9.1" });
    expect(serveVersion("exact_required", "2026.10.0", "2026.11.0b2", true)).toEqual({ kind: "provision", version: "2026.11.0b2" });
  });

  it("exact: refuses what cannot be installed, and says so when it cannot install at all", () => {
    expect(serveVersion("exact", "2026.10.0", "2026.10.0.dev5", true)).toEqual({ kind: "refuse", reason: expect.stringContaining("cannot be installed from PyPI") as unknown });
    expect(serveVersion("exact", "2026.10.0", "2026.9.1", false)).toEqual({ kind: "refuse", reason: expect.stringContaining("cannot install other ESPHome versions") as unknown });
  });

  it("an unsaid version builds with the installed ESPHome, except under exact_required", () => {
    expect(serveVersion("exact", "2026.10.0", "", true).kind).toBe("installed");
    expect(serveVersion("release", "2026.10.0", "", true).kind).toBe("installed");
    const d = serveVersion("exact_required", "2026.10.0", "", true);
    expect(d.kind).toBe("refuse");
    expect(d.kind === "refuse" && d.reason).toContain("did not say which ESPHome it runs");
  });
});
