/** The pure parts of device state: versions, compilation times, update verdicts, state transitions, addresses. */
import { describe, expect, it } from "vitest";
import { resolveAddress } from "../../src/devices/address.ts";
import { markAnnounced, markAnswered, markAnsweredWithError, markMissed, newDeviceState } from "../../src/devices/state.ts";
import { updateVerdict } from "../../src/devices/update.ts";
import { compareEsphomeVersions, parseCompilationTime } from "../../src/devices/versions.ts";

const fw = (v: string, t: string | null = "2026-12-01 10:00:00 +0000") => ({ esphome_version: v, compilation_time: t, project_name: null, project_version: null, source: "api" as const });

describe("ESPHome versions", () => {
  it("orders releases, betas and dev builds", () => {
    const sorted = ["2026.11.0-dev", "2026.10.0b1", "2026.10.0b2", "2026.10.0", "2026.10.1", "2026.9.3", "2025.12.0"].sort((a, b) => compareEsphomeVersions(a, b) ?? 0);
    expect(sorted).toEqual(["2025.12.0", "2026.9.3", "2026.10.0b1", "2026.10.0b2", "2026.10.0", "2026.10.1", "2026.11.0-dev"]);
    expect(compareEsphomeVersions("2026.10.0", "2026.10.0")).toBe(0);
    expect(compareEsphomeVersions("garbage", "2026.10.0")).toBeNull();
  });

  it("reads both compilation-time forms, with the zone when there is one", () => {
    expect(parseCompilationTime("2026-12-02 07:38:44 +0000")).toBe(Date.UTC(2026, 11, 2, 7, 38, 44));
    expect(parseCompilationTime("2026-12-02 09:38:44 +0200")).toBe(Date.UTC(2026, 11, 2, 7, 38, 44));
    expect(parseCompilationTime("Dec  2 2026, 07:38:44")).toBe(new Date(2026, 11, 2, 7, 38, 44).getTime());
    expect(parseCompilationTime("yesterday")).toBeNull();
  });
});

describe("update available", () => {
  const compiled = Date.UTC(2026, 11, 1, 10, 0, 0);
  it("says nothing without firmware", () => {
    expect(updateVerdict(null, "2026.10.0", compiled + 1e9)).toEqual({ reasons: [], detail: null });
  });
  it("an older ESPHome than the builder's", () => {
    const v = updateVerdict(fw("2026.9.1"), "2026.10.0", compiled - 1000);
    expect(v.reasons).toEqual(["esphome_version"]);
    expect(v.detail).toBe("runs ESPHome 2026.9.1, this builder has 2026.10.0");
  });
  it("a configuration changed after the build, beyond two seconds of slack", () => {
    expect(updateVerdict(fw("2026.10.0"), "2026.10.0", compiled + 2000).reasons).toEqual([]);
    const v = updateVerdict(fw("2026.10.0"), "2026.10.0", compiled + 60_000);
    expect(v.reasons).toEqual(["configuration_changed"]);
    expect(v.detail).toContain("its configuration changed at 2026-12-01T10:01:00.000Z");
  });
  it("both reasons at once; a newer device than the builder is not outdated", () => {
    expect(updateVerdict(fw("2026.9.1"), "2026.10.0", compiled + 60_000).reasons).toEqual(["esphome_version", "configuration_changed"]);
    expect(updateVerdict(fw("2026.11.0"), "2026.10.0", null).reasons).toEqual([]);
    expect(updateVerdict(fw("2026.9.1", null), null, compiled + 60_000).reasons).toEqual([]);
  });
});

describe("device state transitions", () => {
  const at = (s: number) => new Date(Date.UTC(2026, 11, 2, 8, 0, s));
  it("unknown -> online on an answer; missed probes make it offline only at the threshold", () => {
    const s = newDeviceState("a.yaml", "a.local", "yaml", null);
    expect(markAnswered(s, fw("2026.10.0"), at(0))).toBe(true);
    expect(s).toMatchObject({ status: "online", last_seen: at(0).toISOString(), status_since: at(0).toISOString() });
    expect(markAnswered(s, fw("2026.10.0"), at(5)), "only last_seen moved").toBe(false);
    expect(s.last_seen).toBe(at(5).toISOString());
    expect(markMissed(s, "refused", 1, 3, at(10))).toBe(true);
    expect(s.status).toBe("online");
    expect(markMissed(s, "refused", 2, 3, at(11))).toBe(false);
    expect(markMissed(s, "refused", 3, 3, at(12))).toBe(true);
    expect(s).toMatchObject({ status: "offline", status_since: at(12).toISOString(), probe_error: "refused", last_seen: at(5).toISOString() });
  });
  it("an mDNS announcement is online with the TXT version, and the API's details win when they agree", () => {
    const s = newDeviceState("a.yaml", "a.local", "yaml", null);
    expect(markAnnounced(s, "2026.10.0", at(0))).toBe(true);
    expect(s.firmware).toMatchObject({ esphome_version: "2026.10.0", compilation_time: null, source: "mdns" });
    markAnswered(s, fw("2026.10.0"), at(1));
    expect(markAnnounced(s, "2026.10.0", at(2))).toBe(false);
    expect(s.firmware?.source).toBe("api");
    expect(markAnnounced(s, "2026.11.0", at(3)), "a new version: new firmware").toBe(true);
    expect(s.firmware).toMatchObject({ esphome_version: "2026.11.0", source: "mdns" });
  });
  it("an answer with an error is online and keeps the last known firmware", () => {
    const s = newDeviceState("a.yaml", "a.local", "yaml", null);
    markAnswered(s, fw("2026.10.0"), at(0));
    expect(markAnsweredWithError(s, "wrong key", at(1))).toBe(true);
    expect(s).toMatchObject({ status: "online", probe_error: "wrong key", firmware: { esphome_version: "2026.10.0" } });
  });
});

describe("addresses", () => {
  it("the owner's address wins; a host-platform YAML without a network block is 127.0.0.1; else the YAML's", () => {
    expect(resolveAddress({ platform: "host", address: "h.local" }, false, "10.0.0.5")).toEqual({ address: "10.0.0.5", source: "owner" });
    expect(resolveAddress({ platform: "host", address: "h.local" }, false, undefined)).toEqual({ address: "127.0.0.1", source: "host_default" });
    expect(resolveAddress({ platform: "host", address: "192.168.1.9" }, true, undefined)).toEqual({ address: "192.168.1.9", source: "yaml" });
    expect(resolveAddress({ platform: "esp32", address: "k.local" }, true, undefined)).toEqual({ address: "k.local", source: "yaml" });
  });
});
