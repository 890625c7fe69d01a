/**
 * Connect-back between two real builder processes on loopback: A sends
 * builds (its own build server off, so its listener runs in offloader-only
 * mode), B is the build server. B restarts on another peer-link port: A's
 * stored address is stale and it cannot find B by itself. B dials A back at
 * the port A announced; A probes B at the new address, moves its pairing
 * there, and builds go to B again.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { FirmwareJob, PairingSummary } from "../../src/api/wire.ts";
import { resolvePaths } from "../../src/paths.ts";
import { initiate } from "../../src/remote-build/transport/handshake.ts";
import { IdentityStore } from "../../src/remote-build/transport/identity.ts";
import { ApiClient } from "../helpers/api-client.ts";
import { STAND_IN, configDir, spawnBuilder, type BuilderProcess } from "../helpers/builder.ts";
import { pairBuilders } from "../helpers/pairing.ts";
import { tempDir, waitFor } from "../helpers/tmp.ts";
import { freePort } from "../helpers/secure-pair.ts";

/** Short connect-back timings for B (production: sweep 30 s, quiet 300 s, retries from 300 s). */
const FAST = JSON.stringify({ sweepIntervalMs: 200, quietAfterMs: 1500, backoffInitialMs: 1000, backoffMaxMs: 4000, dialTimeoutMs: 8000 });

async function builder(name: string, dir: string, peerPort: number): Promise<{ proc: BuilderProcess; api: ApiClient; dir: string; peerPort: number }> {
  const proc = await spawnBuilder(
    ["--config-dir", dir, "--port", "0", "--peer-link-port", String(peerPort), "--peer-link-host", "127.0.0.1", "--esphome", STAND_IN, "--no-mdns", "--label", name, "--log-level", "info"],
    { ESPHOME_STANDIN_COMPILE_SECONDS: "0.3", ESPHOME_STANDIN_FAIL: "", ESPHOME_STANDIN_HOST: name, ESPHOME_BUILDER_CONNECT_BACK_TIMINGS: FAST },
  );
  const line = proc.stdout.join("").split("\n").find((l) => l.includes("listening")) ?? "{}";
  const bound = (JSON.parse(line) as { peer_link_port: number | null }).peer_link_port;
  const api = await ApiClient.connect(proc.port);
  return { proc, api, dir, peerPort: bound ?? 0 };
}

async function storedPeers(dir: string): Promise<{ dashboard_id: string; peer_ip: string; connect_back_port: number }[]> {
  const text = await readFile(resolvePaths({ configDir: dir }).receiverFile, "utf8").catch(() => "{}");
  return ((JSON.parse(text) as { peers?: { dashboard_id: string; peer_ip: string; connect_back_port: number }[] }).peers) ?? [];
}

async function pairing(api: ApiClient): Promise<PairingSummary | undefined> {
  return (await api.call<{ pairings: PairingSummary[] }>("remote_build/get_offloader_settings")).pairings[0];
}

describe("connect-back between two builders", () => {
  it("a build server that moved dials its offloader back; the offloader probes, moves its pairing and builds there again", async () => {
    const a = await builder("Laptop", await configDir({ kitchen: "" }), 0);
    // A only sends builds: its build server is off, so nothing listens until it pairs.
    await a.api.call("remote_build/set_settings", { enabled: false });
    expect((await a.api.call<{ listener_port: number | null }>("remote_build/get_identity")).listener_port).toBeNull();
    const bDir = await configDir({ kitchen: "" });
    const b = await builder("Build box", bDir, await freePort());
    const pin = await pairBuilders(a, b);

    // A announced its listener (bound for connect-back only); B stored it with the address A came from.
    await waitFor(async () => ((await storedPeers(bDir))[0]?.connect_back_port ?? 0) > 0, 5000, "B to store A's connect-back port");
    const [stored] = await storedPeers(bDir);
    expect(stored).toMatchObject({ peer_ip: "127.0.0.1" });
    const aListener = stored!.connect_back_port;
    // Offloader-only mode: a stranger asking A for anything but connect_back gets bad_intent; A is no build server.
    const stranger = await new IdentityStore({ keyFile: path.join(await tempDir(), "key"), idFile: path.join(await tempDir(), "id.json") }).load();
    for (const intent of ["preview", "peer_link"]) {
      const { channel, response } = await initiate({ host: "127.0.0.1", port: aListener, staticPrivateKey: stranger.privateKey, intent, payload: { dashboard_id: stranger.dashboard_id }, stepTimeoutMs: 3000 });
      channel.close("done");
      expect(response).toMatchObject({ intent_response: "rejected", reason: "bad_intent" });
    }
    // A connect_back from a key A never paired with moves nothing.
    const cb = await initiate({ host: "127.0.0.1", port: aListener, staticPrivateKey: stranger.privateKey, intent: "connect_back", payload: { peer_link_port: b.peerPort }, stepTimeoutMs: 3000 });
    cb.channel.close("done");
    expect(cb.response).toMatchObject({ intent_response: "rejected", reason: "no_approved_peer" });

    // B moves to another port: A's stored address is stale, and A cannot find B by itself.
    b.proc.child.kill("SIGTERM");
    await b.proc.exited;
    await waitFor(async () => (await pairing(a.api))?.connected === false, 10_000, "A to lose its session");
    const movedPort = await freePort();
    const b2 = await builder("Build box", bDir, movedPort);
    expect(b2.peerPort).toBe(movedPort);
    expect(await pairing(a.api)).toMatchObject({ receiver_port: b.peerPort, connected: false });

    // After B's quiet time it dials A back; A probes B at 127.0.0.1:movedPort and reconnects there.
    await waitFor(async () => {
      const p = await pairing(a.api);
      return p?.connected === true && p.receiver_port === movedPort;
    }, 20_000, "A to reconnect to B at its new port");
    expect(await pairing(a.api)).toMatchObject({ pin_sha256: pin, receiver_hostname: "127.0.0.1", receiver_port: movedPort, last_connect_error: "" });
    expect(b2.proc.stdout.join("") + b2.proc.stderr.join("")).toMatch(/connect-back to .* it is moving to us/);
    // The move is kept across A's restart (written down like an edited endpoint).
    const savedPort = async (): Promise<number | undefined> =>
      (JSON.parse(await readFile(resolvePaths({ configDir: a.dir }).offloaderFile, "utf8")) as { pairings: { receiver_port: number }[] }).pairings[0]?.receiver_port;
    await waitFor(async () => (await savedPort()) === movedPort, 5000, "A to write the new port down");

    // A compile from A goes to B again.
    await waitFor(async () => (await pairing(a.api))?.idle === true, 10_000, "B idle");
    const job = await a.api.call<FirmwareJob>("firmware/compile", { configuration: "kitchen.yaml" });
    await a.api.stream("firmware/follow_job", { job_id: job.job_id }).until((f) => f.event === "result", 60_000);
    const done = await a.api.call<FirmwareJob>("firmware/get_job", { job_id: job.job_id });
    expect(done).toMatchObject({ status: "completed", source: "remote", source_label: "Build box" });

    // Its last pairing gone, A (build server off) stops listening.
    await a.api.call("remote_build/unpair", { pin_sha256: pin });
    await waitFor(async () => {
      try {
        (await initiate({ host: "127.0.0.1", port: aListener, staticPrivateKey: stranger.privateKey, intent: "connect_back", payload: {}, stepTimeoutMs: 1000 })).channel.close("done");
        return false;
      } catch (err) {
        return String(err).includes("cannot reach");
      }
    }, 5000, "A's connect-back listener to close");
  }, 90_000);
});
