import { describe, expect, it } from "vitest";
import type { PackedArtifacts } from "../../../src/remote-build/archives/artifacts.ts";
import { ArtifactCache } from "../../../src/remote-build/build-server/artifact-cache.ts";

const packed = (bytes: number, tag = "x"): PackedArtifacts => ({ tarball: Buffer.alloc(bytes), firmwareOffset: "0x0", sha256: tag, names: [], firmware: "firmware.bin" });

describe("ArtifactCache", () => {
  it("hands out the pack made at completion, one per device: a new job for the device drops it", async () => {
    const cache = new ArtifactCache({ maxBytes: 1000, ttlMs: 60_000 });
    cache.start("j1", "pin/kitchen.yaml", () => Promise.resolve(packed(10, "a")));
    cache.start("j2", "pin/garage.yaml", () => Promise.resolve(packed(10, "b")));
    expect((await cache.get("j1"))?.sha256).toBe("a");
    cache.start("j3", "pin/kitchen.yaml", () => Promise.resolve(packed(10, "c")));
    expect(cache.get("j1")).toBeUndefined();
    expect((await cache.get("j3"))?.sha256).toBe("c");
    cache.forgetDevice("pin/garage.yaml");
    expect(cache.get("j2")).toBeUndefined();
  });

  it("forgets a pack after its time, and the oldest ones past the byte cap", async () => {
    let now = 0;
    const cache = new ArtifactCache({ maxBytes: 250, ttlMs: 1000, now: () => now });
    cache.start("a", "d1", () => Promise.resolve(packed(100)));
    cache.start("b", "d2", () => Promise.resolve(packed(100)));
    await cache.get("b");
    expect(cache.bytes).toBe(200);
    cache.start("c", "d3", () => Promise.resolve(packed(100)));
    await cache.get("c");
    await new Promise((r) => setImmediate(r));
    expect(cache.get("a")).toBeUndefined();
    expect(cache.bytes).toBe(200);
    now = 1001;
    expect(cache.get("b")).toBeUndefined();
  });

  it("forgets a pack that failed, so the download packs again and says why", async () => {
    const cache = new ArtifactCache({ maxBytes: 1000, ttlMs: 60_000 });
    cache.start("j", "d", () => Promise.reject(new Error("no storage.json")));
    await expect(cache.get("j")).rejects.toThrow("no storage.json");
    await new Promise((r) => setImmediate(r));
    expect(cache.get("j")).toBeUndefined();
  });
});
