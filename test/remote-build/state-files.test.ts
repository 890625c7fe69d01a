/**
 * Unreadable remote-build state files at start-up, against real builder
 * processes: receiver.json, offloader.json, the identity and the key. A bad
 * row is skipped and the others kept; a corrupt receiver.json leaves the
 * build server off (also after a restart); the original is kept beside the
 * file; and every finding is a problem the API reports (initial_state's
 * remote_build.problems) until it is dismissed.
 */
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { InitialState, RemoteBuildProblem } from "../../src/api/wire.ts";
import { resolvePaths, type Paths } from "../../src/paths.ts";
import { pinSha256 } from "../../src/remote-build/transport/fingerprint.ts";
import { NoiseHandshake } from "../../src/remote-build/transport/noise.ts";
import { generateStaticKey, publicKeyOf } from "../../src/remote-build/transport/noise-primitives.ts";
import { keepCopy } from "../../src/remote-build/state-files.ts";
import { ApiClient } from "../helpers/api-client.ts";
import { configDir, spawnBuilder, STAND_IN, type BuilderProcess } from "../helpers/builder.ts";
import { tempDir } from "../helpers/tmp.ts";

interface Running {
  proc: BuilderProcess;
  api: ApiClient;
  peerPort: number | null;
  initial: InitialState;
}

async function start(dir: string): Promise<Running> {
  const proc = await spawnBuilder(["--config-dir", dir, "--port", "0", "--peer-link-port", "0", "--peer-link-host", "127.0.0.1", "--esphome", STAND_IN, "--no-mdns", "--log-level", "error"]);
  const listening = JSON.parse(proc.stdout.join("").split("\n").find((l) => l.includes("listening")) ?? "{}") as { peer_link_port: number | null };
  const api = await ApiClient.connect(proc.port);
  const initial = (await api.stream("subscribe_events").until((f) => f.event === "initial_state")).data as InitialState;
  return { proc, api, peerPort: listening.peer_link_port, initial };
}

async function stop(r: Running): Promise<void> {
  r.api.close();
  r.proc.child.kill("SIGTERM");
  await r.proc.exited;
}

async function withFiles(files: (paths: Paths) => Record<string, string | Buffer>): Promise<{ dir: string; paths: Paths; originals: Record<string, string | Buffer> }> {
  const dir = await configDir();
  const paths = resolvePaths({ configDir: dir });
  await mkdir(paths.stateDir, { recursive: true });
  const originals = files(paths);
  for (const [file, content] of Object.entries(originals)) await writeFile(file, content);
  return { dir, paths, originals };
}

function peer(label: string) {
  const key = generateStaticKey();
  const pub = publicKeyOf(key);
  const row = {
    dashboard_id: `${label}${"x".repeat(32 - label.length)}`,
    pin_sha256: pinSha256(pub),
    public_key: Buffer.from(pub).toString("base64"),
    label,
    friendly_name: label,
    peer_ip: "192.0.2.9",
    paired_at: "2026-01-01T00:00:00.000Z",
  };
  return { key, row };
}

function pairing(label: string, pin = "ab".repeat(32)) {
  return { pin_sha256: pin, label, receiver_hostname: `${label}.local`, receiver_port: 6055, paired_at: "2026-01-01T00:00:00.000Z", enabled: true, esphome_version: "", friendly_name: label };
}

/** A peer_link handshake with `key`; resolves with the intent response. */
async function peerLink(port: number, key: Uint8Array, dashboardId: string): Promise<Record<string, unknown>> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/remote-build/peer-link`);
  const inbound: Buffer[] = [];
  let wake: (() => void) | null = null;
  ws.on("message", (d: Buffer) => { inbound.push(d); wake?.(); });
  await new Promise((r) => ws.once("open", r));
  const next = async (): Promise<Buffer> => {
    while (inbound.length === 0) await new Promise<void>((r) => { wake = r; });
    return inbound.shift()!;
  };
  const hs = NoiseHandshake.initiator(key);
  ws.send(hs.writeMessage(Buffer.from(JSON.stringify({ intent: "peer_link" }))));
  hs.readMessage(await next());
  ws.send(hs.writeMessage(Buffer.from(JSON.stringify({ dashboard_id: dashboardId }))));
  const { receive } = hs.split();
  const response = JSON.parse(Buffer.from(receive.decrypt(await next())).toString()) as Record<string, unknown>;
  ws.terminate();
  return response;
}

function problems(r: Running): RemoteBuildProblem[] {
  return r.initial.remote_build.problems;
}

describe("receiver.json", () => {
  it("not JSON: moved aside, the build server stays off (also after a restart), and the panel is told", { timeout: 30_000 }, async () => {
    const { dir, paths } = await withFiles((p) => ({ [p.receiverFile]: '{"enabled": true, "peers": [' }));
    const first = await start(dir);
    expect(first.peerPort).toBeNull();
    expect(await first.api.call("remote_build/get_settings")).toMatchObject({ enabled: false, peers: [] });
    expect(problems(first)).toEqual([
      expect.objectContaining({ id: "receiver_file", kind: "receiver_file", file: paths.receiverFile, kept_at: `${paths.receiverFile}.corrupt` }),
    ]);
    expect(problems(first)[0]!.message).toMatch(/left off.*turn the build server on/);
    expect(await readFile(`${paths.receiverFile}.corrupt`, "utf8")).toBe('{"enabled": true, "peers": [');
    expect(JSON.parse(await readFile(paths.receiverFile, "utf8"))).toEqual({ enabled: false, version_policy: "any", peers: [] });
    expect((await stat(paths.receiverFile)).mode & 0o777).toBe(0o600);
    await stop(first);

    const again = await start(dir);
    expect(again.peerPort).toBeNull(); // not the standalone default (on)
    expect(problems(again)).toEqual([]);
    await stop(again);
  });

  it("one bad approved-builder row: skipped and reported, the others stay approved and can connect", { timeout: 30_000 }, async () => {
    const a = peer("Attic");
    const b = peer("Garage");
    const original = JSON.stringify({
      enabled: true,
      peers: [a.row, { ...peer("Broken").row, pin_sha256: "not a pin" }, b.row, { ...a.row, label: "Attic again" }, 42],
    });
    const { dir, paths } = await withFiles((p) => ({ [p.receiverFile]: original }));
    const r = await start(dir);
    expect(r.peerPort).not.toBeNull();
    const settings = await r.api.call<{ enabled: boolean; peers: { dashboard_id: string; status: string }[] }>("remote_build/get_settings");
    expect(settings.enabled).toBe(true);
    expect(settings.peers.map((p) => [p.dashboard_id, p.status])).toEqual([[a.row.dashboard_id, "approved"], [b.row.dashboard_id, "approved"]]);
    const found = problems(r);
    expect(found.map((p) => [p.id, p.kind])).toEqual([["receiver_peer:1", "receiver_peer"], ["receiver_peer:3", "receiver_peer"], ["receiver_peer:4", "receiver_peer"]]);
    expect(found[0]!.message).toMatch(/Approved builder #2 \("Broken"\).*pin_sha256.*skipped.*pairs again/);
    expect(found[1]!.message).toMatch(/#4 \("Attic again"\).*repeats an earlier entry/);
    expect(found[2]!.message).toMatch(/#5 .*could not be read/);
    for (const p of found) expect(p.kept_at).toBe(`${paths.receiverFile}.corrupt`);
    expect(await readFile(`${paths.receiverFile}.corrupt`, "utf8")).toBe(original);
    const rewritten = JSON.parse(await readFile(paths.receiverFile, "utf8")) as { enabled: boolean; peers: { dashboard_id: string }[] };
    expect(rewritten.enabled).toBe(true);
    expect(rewritten.peers.map((p) => p.dashboard_id)).toEqual([a.row.dashboard_id, b.row.dashboard_id]);
    // The kept peers are really approved: their keys open a session.
    expect(await peerLink(r.peerPort!, a.key, a.row.dashboard_id)).toMatchObject({ intent_response: "ok" });
    expect(await peerLink(r.peerPort!, b.key, b.row.dashboard_id)).toMatchObject({ intent_response: "ok" });
    await stop(r);
  });

  it("a switch that is not true or false: the build server stays off, the peers are kept", { timeout: 30_000 }, async () => {
    const a = peer("Attic");
    const { dir, paths } = await withFiles((p) => ({ [p.receiverFile]: JSON.stringify({ enabled: "yes", peers: [a.row] }) }));
    const r = await start(dir);
    expect(r.peerPort).toBeNull();
    expect(await r.api.call("remote_build/get_settings")).toMatchObject({ enabled: false, peers: [expect.objectContaining({ dashboard_id: a.row.dashboard_id, status: "approved" })] });
    expect(problems(r)).toEqual([expect.objectContaining({ id: "receiver_file:enabled", kind: "receiver_file", kept_at: `${paths.receiverFile}.corrupt` })]);
    expect(problems(r)[0]!.message).toMatch(/"enabled" .* "yes", not true or false: the build server was left off/);
    await stop(r);
  });
});

describe("offloader.json", () => {
  it("one bad pairing and an unreadable master switch: the rest is kept, builds stay here, and it is reported", { timeout: 30_000 }, async () => {
    const upper = "CD".repeat(32);
    const original = JSON.stringify({
      remote_builds_enabled: "maybe",
      pairings: [pairing("Desk"), { ...pairing("Broken", "ef".repeat(32)), receiver_port: 70000 }, pairing("Shed", upper)],
    });
    const { dir, paths } = await withFiles((p) => ({ [p.offloaderFile]: original }));
    const r = await start(dir);
    const settings = await r.api.call<{ remote_builds_enabled: boolean; pairings: { label: string; pin_sha256: string }[] }>("remote_build/get_offloader_settings");
    expect(settings.remote_builds_enabled).toBe(false);
    expect(settings.pairings.map((p) => [p.label, p.pin_sha256])).toEqual([["Desk", "ab".repeat(32)], ["Shed", "cd".repeat(32)]]); // the one pin rule: lowercased
    expect(problems(r).map((p) => p.id)).toEqual(["offloader_file:remote_builds_enabled", "offloader_pairing:1"]);
    expect(problems(r)[0]!.message).toMatch(/turned off, so builds run here/);
    expect(problems(r)[1]!.message).toMatch(/Paired build server #2 \("Broken"\).*receiver_port.*pair it again/);
    expect(await readFile(`${paths.offloaderFile}.corrupt`, "utf8")).toBe(original);
    const rewritten = JSON.parse(await readFile(paths.offloaderFile, "utf8")) as { remote_builds_enabled: boolean; pairings: unknown[] };
    expect(rewritten.remote_builds_enabled).toBe(false);
    expect(rewritten.pairings).toHaveLength(2);
    await stop(r);
  });

  it("not JSON: moved aside and reported; nothing is paired", { timeout: 30_000 }, async () => {
    const { dir, paths } = await withFiles((p) => ({ [p.offloaderFile]: "\u0000\u0001garbage" }));
    const r = await start(dir);
    expect(await r.api.call("remote_build/get_offloader_settings")).toMatchObject({ pairings: [] });
    expect(problems(r)).toEqual([expect.objectContaining({ id: "offloader_file", kind: "offloader_file", kept_at: `${paths.offloaderFile}.corrupt` })]);
    expect(problems(r)[0]!.message).toMatch(/builds run on this builder: pair the build servers again/);
    await stop(r);
  });
});

describe("identity and key", () => {
  it("an unreadable id file and a key of the wrong size are replaced and reported", { timeout: 30_000 }, async () => {
    const { dir, paths } = await withFiles((p) => ({ [p.identityFile]: '{"dashboard_id": "no spaces allowed"}', [p.peerLinkKeyFile]: Buffer.alloc(5) }));
    const r = await start(dir);
    expect(problems(r).map((p) => [p.id, p.kept_at])).toEqual([
      ["identity_file", `${paths.identityFile}.corrupt`],
      ["key_file", `${paths.peerLinkKeyFile}.corrupt`],
    ]);
    expect(problems(r)[1]!.message).toMatch(/is 5 bytes, expected 32.*new fingerprint.*must pair again/);
    expect((await readFile(paths.peerLinkKeyFile)).length).toBe(32);
    await stop(r);
  });
});

describe("dismissing a problem", () => {
  it("hides it from every panel until the next start; an unknown id is not_found", { timeout: 30_000 }, async () => {
    const { dir, paths } = await withFiles((p) => ({ [p.receiverFile]: "[]", [p.offloaderFile]: "7" }));
    const r = await start(dir);
    expect(problems(r).map((p) => p.id).sort()).toEqual(["offloader_file", "receiver_file"]);
    const other = await ApiClient.connect(r.proc.port);
    const events = other.stream("subscribe_events");
    await events.until((f) => f.event === "initial_state");
    expect(await r.api.call("remote_build/dismiss_problem", { id: "receiver_file" })).toEqual({ dismissed: true });
    expect((await events.until((f) => f.event === "remote_build_problem_dismissed")).data).toEqual({ id: "receiver_file" });
    const later = (await other.stream("subscribe_events").until((f) => f.event === "initial_state")).data as InitialState;
    expect(later.remote_build.problems.map((p) => p.id)).toEqual(["offloader_file"]);
    expect((await r.api.request("remote_build/dismiss_problem", { id: "receiver_file" })).error_code).toBe("not_found");
    expect((await r.api.request("remote_build/dismiss_problem", { id: "" })).error_code).toBe("invalid_args");
    expect(JSON.parse(await readFile(paths.receiverFile, "utf8"))).toEqual({ enabled: false, version_policy: "any", peers: [] });
    other.close();
    await stop(r);
  });
});

describe("keepCopy", () => {
  it("copies the original beside the file, never over an earlier copy, and leaves the file in place", async () => {
    const file = `${await tempDir()}/receiver.json`;
    await writeFile(file, "first");
    expect(await keepCopy(file, () => 1)).toBe(`${file}.corrupt`);
    await writeFile(file, "second");
    expect(await keepCopy(file, () => 1234)).toBe(`${file}.1234.corrupt`);
    expect(await readFile(`${file}.corrupt`, "utf8")).toBe("first");
    expect(await readFile(`${file}.1234.corrupt`, "utf8")).toBe("second");
    expect(await readFile(file, "utf8")).toBe("second");
  });
});
