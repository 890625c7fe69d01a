import { createHash } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { setLogSink } from "../../../src/logger.ts";
import { IdentityStore, isValidDashboardId, newDashboardId } from "../../../src/remote-build/transport/identity.ts";
import { publicKeyOf } from "../../../src/remote-build/transport/noise-primitives.ts";
import { tempDir } from "../../helpers/tmp.ts";

const toHex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const modeOf = async (file: string): Promise<number> => (await fs.stat(file)).mode & 0o777;

let logs: string[] = [];
let restoreLogs: () => void = () => undefined;
beforeEach(() => {
  logs = [];
  restoreLogs = setLogSink((line) => logs.push(line));
});
afterEach(() => {
  restoreLogs();
});

async function setup(): Promise<{ dir: string; keyFile: string; idFile: string; store: () => IdentityStore }> {
  const dir = await tempDir();
  const keyFile = path.join(dir, ".peer-link-key.bin");
  const idFile = path.join(dir, "remote-build-identity.json");
  return { dir, keyFile, idFile, store: () => new IdentityStore({ keyFile, idFile, now: () => new Date("2026-01-02T03:04:05Z") }) };
}

describe("dashboard ids", () => {
  it("are 32 base64url characters from 24 random bytes", () => {
    const id = newDashboardId();
    expect(id).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(newDashboardId()).not.toBe(id);
  });

  it("isValidDashboardId accepts 1..64 base64url characters only", () => {
    expect(isValidDashboardId("a")).toBe(true);
    expect(isValidDashboardId("A-z_09".padEnd(64, "x"))).toBe(true);
    expect(isValidDashboardId("x".repeat(65))).toBe(false);
    expect(isValidDashboardId("")).toBe(false);
    expect(isValidDashboardId("has space")).toBe(false);
    expect(isValidDashboardId("a/b")).toBe(false);
    expect(isValidDashboardId("a=")).toBe(false);
    expect(isValidDashboardId(12)).toBe(false);
    expect(isValidDashboardId(null)).toBe(false);
  });
});

describe("IdentityStore", () => {
  it("creates the identity once, with private files", async () => {
    const { keyFile, idFile, store } = await setup();
    const s = store();
    const first = await s.load();
    expect(isValidDashboardId(first.dashboard_id)).toBe(true);
    expect(first.dashboard_id).toHaveLength(32);
    expect(first.privateKey).toHaveLength(32);
    expect(toHex(first.publicKey)).toBe(toHex(publicKeyOf(first.privateKey)));
    expect(first.pin_sha256).toBe(createHash("sha256").update(first.publicKey).digest("hex"));

    const raw = await fs.readFile(keyFile);
    expect(raw).toHaveLength(32);
    expect(toHex(raw)).toBe(toHex(first.privateKey));
    expect(await modeOf(keyFile)).toBe(0o600);
    expect(await modeOf(idFile)).toBe(0o600);
    expect(JSON.parse(await fs.readFile(idFile, "utf8"))).toEqual({ dashboard_id: first.dashboard_id, created_at: "2026-01-02T03:04:05.000Z" });

    const again = await s.load();
    expect(again).toEqual(first);
    const reopened = await store().load();
    expect(reopened).toEqual(first);
  });

  it("hands out copies, so callers cannot alter the cached key", async () => {
    const { store } = await setup();
    const s = store();
    const a = await s.load();
    a.privateKey.fill(0);
    expect((await s.load()).privateKey.some((b) => b !== 0)).toBe(true);
  });

  it("serialises concurrent loads into one key", async () => {
    const { keyFile, store } = await setup();
    const s = store();
    const results = await Promise.all(Array.from({ length: 20 }, () => s.load()));
    expect(new Set(results.map((r) => r.pin_sha256)).size).toBe(1);
    expect(new Set(results.map((r) => r.dashboard_id)).size).toBe(1);
    expect(toHex(await fs.readFile(keyFile))).toBe(toHex(results[0]!.privateKey));
  });

  it("rotate writes a new key, keeps the dashboard_id, and persists", async () => {
    const { keyFile, store } = await setup();
    const s = store();
    const before = await s.load();
    const after = await s.rotate();
    expect(after.dashboard_id).toBe(before.dashboard_id);
    expect(after.pin_sha256).not.toBe(before.pin_sha256);
    expect(toHex(await fs.readFile(keyFile))).toBe(toHex(after.privateKey));
    expect(await modeOf(keyFile)).toBe(0o600);
    expect(await s.load()).toEqual(after);
    expect(await store().load()).toEqual(after);
    expect(logs.some((l) => l.includes("rotated") && l.includes(after.pin_sha256))).toBe(true);
  });

  it("rotate before any load creates the id and then the new key", async () => {
    const { store } = await setup();
    const s = store();
    const [loaded, rotated] = await Promise.all([s.load(), s.rotate()]);
    expect(rotated.dashboard_id).toBe(loaded.dashboard_id);
    expect(rotated.pin_sha256).not.toBe(loaded.pin_sha256);
    expect((await s.load()).pin_sha256).toBe(rotated.pin_sha256);
  });

  it("moves a wrong-length key file aside and makes a new key", async () => {
    const { keyFile, store } = await setup();
    const original = await store().load();
    await fs.writeFile(keyFile, Buffer.alloc(31, 1), { mode: 0o600 });
    const next = store();
    const recovered = await next.load();
    expect(recovered.dashboard_id).toBe(original.dashboard_id);
    expect(recovered.pin_sha256).not.toBe(original.pin_sha256);
    expect(await fs.readFile(`${keyFile}.corrupt`)).toEqual(Buffer.alloc(31, 1));
    expect(await fs.readFile(keyFile)).toHaveLength(32);
    expect(await modeOf(keyFile)).toBe(0o600);
    expect(logs.some((l) => l.includes("ERROR") && l.includes("31 bytes") && l.includes("pair again"))).toBe(true);
    // Shown in Build servers, not only logged.
    expect(next.problems).toEqual([expect.objectContaining({ id: "key_file", kind: "key_file", file: keyFile, kept_at: `${keyFile}.corrupt` })]);
    expect(next.problems[0]?.message).toMatch(/31 bytes.*new fingerprint.*must pair again/);
  });

  it("moves an unreadable key file aside", async () => {
    const { keyFile, store } = await setup();
    await fs.mkdir(keyFile); // reading a directory fails (EISDIR) even as root
    const identity = await store().load();
    expect((await fs.stat(`${keyFile}.corrupt`)).isDirectory()).toBe(true);
    expect(toHex(await fs.readFile(keyFile))).toBe(toHex(identity.privateKey));
    expect(logs.some((l) => l.includes("unreadable") && l.includes("pair again"))).toBe(true);
  });

  it("makes a key file readable by others private again", async () => {
    const { keyFile, store } = await setup();
    const original = await store().load();
    await fs.chmod(keyFile, 0o644);
    expect((await store().load()).pin_sha256).toBe(original.pin_sha256);
    expect(await modeOf(keyFile)).toBe(0o600);
  });

  it("replaces a corrupt id file, keeping it as evidence", async () => {
    const { idFile, store } = await setup();
    const original = await store().load();
    await fs.writeFile(idFile, JSON.stringify({ dashboard_id: "not valid!" }));
    const recovered = await store().load();
    expect(recovered.dashboard_id).not.toBe(original.dashboard_id);
    expect(isValidDashboardId(recovered.dashboard_id)).toBe(true);
    expect(recovered.pin_sha256).toBe(original.pin_sha256);
    expect(await fs.readFile(`${idFile}.corrupt`, "utf8")).toContain("not valid!");
  });

  it("reads an id file written without created_at", async () => {
    const { idFile, store } = await setup();
    await fs.writeFile(idFile, JSON.stringify({ dashboard_id: "hand-made_ID" }));
    expect((await store().load()).dashboard_id).toBe("hand-made_ID");
  });
});
