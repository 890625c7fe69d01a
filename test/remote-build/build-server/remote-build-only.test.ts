/**
 * A headless build server (`--remote-build-only`) as a real process, paired by
 * real offloader builder processes through their panel API on loopback with
 * the key it printed.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ApiClient } from "../../helpers/api-client.ts";
import { STAND_IN, configDir, spawnBuilder, type BuilderProcess } from "../../helpers/builder.ts";
import { waitFor } from "../../helpers/tmp.ts";
import { freePort } from "../../helpers/secure-pair.ts";

const COMMON = ["--port", "0", "--esphome", STAND_IN, "--no-mdns", "--log-level", "info"];
const STAND_IN_ENV = { ESPHOME_STANDIN_COMPILE_SECONDS: "0.2", ESPHOME_STANDIN_FAIL: "" };

interface Headless {
  proc: BuilderProcess;
  dir: string;
  peerPort: number;
  /** The JSON line it printed with the key, if it printed one. */
  printed: { pairing_key: string; expires_in_seconds: number; pin_sha256: string; peer_link_port: number } | null;
}

async function startHeadless(dir?: string, peerPort?: number, extra: string[] = []): Promise<Headless> {
  const config = dir ?? (await configDir({}));
  const port = peerPort ?? (await freePort());
  const proc = await spawnBuilder(
    ["--remote-build-only", "--config-dir", config, "--peer-link-port", String(port), "--peer-link-host", "127.0.0.1", "--label", "Headless box", ...COMMON, ...extra],
    STAND_IN_ENV,
  );
  const line = proc.stdout.join("").split("\n").find((l) => l.includes('"pairing_key"'));
  return { proc, dir: config, peerPort: port, printed: line === undefined ? null : (JSON.parse(line) as Headless["printed"]) };
}

async function startOffloader(label: string): Promise<{ proc: BuilderProcess; api: ApiClient }> {
  const proc = await spawnBuilder(["--config-dir", await configDir(), "--peer-link-port", "0", "--peer-link-host", "127.0.0.1", "--label", label, ...COMMON], STAND_IN_ENV);
  return { proc, api: await ApiClient.connect(proc.port) };
}

describe("a headless build server (--remote-build-only)", () => {
  it("prints a one-time key, pairs one builder with it (wrong keys refused), serves it, and never pairs a second with the same key", async () => {
    const server = await startHeadless();
    // The key is printed on stdout: a banner for people and one JSON line for scripts.
    expect(server.printed).not.toBeNull();
    const printed = server.printed ?? { pairing_key: "", expires_in_seconds: 0, pin_sha256: "", peer_link_port: 0 };
    expect(printed.pairing_key).toMatch(/^[A-HJKMNP-TV-Z2-9]{4}(-[A-HJKMNP-TV-Z2-9]{4}){3}$/);
    expect(printed.expires_in_seconds).toBe(900);
    expect(printed.peer_link_port).toBe(server.peerPort);
    const stdout = server.proc.stdout.join("");
    expect(stdout).toContain(`   ${printed.pairing_key}\n`);
    expect(stdout).toContain("valid for 15 minutes and pairs one builder");
    // Headless: the panel is on loopback only, and the listening line names both ports.
    expect(stdout).toMatch(/"event":"listening","port":\d+,"peer_link_port":\d+/);

    const a = await startOffloader("Laptop A");
    const preview = await a.api.call<{ pin_sha256: string; requires_pairing_key: boolean; label: string }>("remote_build/preview_pair", { hostname: "127.0.0.1", port: server.peerPort });
    expect(preview).toMatchObject({ pin_sha256: printed.pin_sha256, requires_pairing_key: true, label: "Headless box" });

    const ask = (api: ApiClient, key?: string) =>
      api.request("remote_build/request_pair", { hostname: "127.0.0.1", port: server.peerPort, pin_sha256: preview.pin_sha256, ...(key === undefined ? {} : { pairing_key: key }) });
    // A wrong key: refused as a closed window would be, and said so plainly.
    const wrong = await ask(a.api, "AAAA-AAAA-AAAA-AAAA");
    expect(wrong.error_code).toBe("pairing_key_refused");
    expect(wrong.details).toContain("wrong or expired");
    // No key at all: the window is closed to it.
    const none = await ask(a.api);
    expect(none.error_code).toBe("unavailable");
    expect(none.details).toContain("not accepting pairing requests");
    // Not a key (bad characters): refused by this builder's API, nothing sent.
    const malformed = await ask(a.api, "OOOO-OOOO-OOOO-OOOO");
    expect(malformed.error_code).toBe("invalid_args");
    expect(malformed.details).toContain("16 letters and digits");

    // The right key, typed in lower case without dashes: approved at once, on disk before the answer.
    const typed = printed.pairing_key.toLowerCase().replaceAll("-", " ");
    const paired = await a.api.call<{ status: string; pin_sha256: string }>("remote_build/request_pair", { hostname: "127.0.0.1", port: server.peerPort, pin_sha256: preview.pin_sha256, pairing_key: typed });
    expect(paired).toMatchObject({ status: "approved", pin_sha256: preview.pin_sha256 });
    const stored = JSON.parse(await readFile(path.join(server.dir, ".esphome", "builder", "receiver.json"), "utf8")) as { enabled: boolean; peers: { label: string }[] };
    expect(stored.enabled).toBe(true);
    expect(stored.peers.map((p) => p.label)).toEqual(["Laptop A"]);
    await waitFor(async () => {
      const s = await a.api.call<{ pairings: { connected: boolean; idle: boolean | null }[] }>("remote_build/get_offloader_settings");
      return s.pairings[0]?.connected === true && s.pairings[0].idle === true;
    }, 15_000, "A connected to the idle headless build server");

    // It does its job: a compile of A's device runs there.
    const job = await a.api.call<{ job_id: string }>("firmware/compile", { configuration: "kitchen.yaml" });
    await a.api.stream("firmware/follow_job", { job_id: job.job_id }).until((f) => f.event === "result", 60_000);
    const done = await a.api.call<{ status: string; source: string; source_label: string }>("firmware/get_job", { job_id: job.job_id });
    expect(done).toMatchObject({ status: "completed", source: "remote", source_label: "Headless box" });

    // The key is used up: another builder with the same key is refused.
    const b = await startOffloader("Laptop B");
    const reused = await ask(b.api, printed.pairing_key);
    expect(reused.error_code).toBe("pairing_key_refused");

    // Restarted with a paired builder: no key printed, previews still say a key is needed, A reconnects.
    server.proc.child.kill("SIGTERM");
    expect(await server.proc.exited).toBe(0);
    const again = await startHeadless(server.dir, server.peerPort);
    expect(again.printed).toBeNull();
    expect(again.proc.stdout.join("")).not.toContain("pairing key");
    const preview2 = await b.api.call<{ requires_pairing_key: boolean }>("remote_build/preview_pair", { hostname: "127.0.0.1", port: server.peerPort });
    expect(preview2.requires_pairing_key).toBe(true);
    await waitFor(async () => {
      const s = await a.api.call<{ pairings: { connected: boolean }[] }>("remote_build/get_offloader_settings");
      return s.pairings[0]?.connected === true;
    }, 15_000, "A reconnected after the restart");
  }, 120_000);

  it("pairs only from an allowed source when --allow-pairing-source is given", async () => {
    const server = await startHeadless(undefined, undefined, ["--allow-pairing-source", "192.0.2.0/24"]);
    expect(server.proc.stdout.join("")).toContain("Only 192.0.2.0/24 may pair with it.");
    const a = await startOffloader("Laptop A");
    const preview = await a.api.call<{ pin_sha256: string }>("remote_build/preview_pair", { hostname: "127.0.0.1", port: server.peerPort });
    const refused = await a.api.request("remote_build/request_pair", { hostname: "127.0.0.1", port: server.peerPort, pin_sha256: preview.pin_sha256, pairing_key: server.printed?.pairing_key });
    // The same answer as a wrong key: a prober learns nothing about which gate refused it.
    expect(refused.error_code).toBe("pairing_key_refused");
    await waitFor(() => server.proc.stderr.join("").includes("source not allowed"), 5000, "the refusal logged with its reason");
  }, 60_000);

  it("refuses to put the panel on the network, and a source list without the mode", async () => {
    for (const [args, message] of [
      [["--remote-build-only", "--host", "0.0.0.0"], "--host must be a loopback address"],
      [["--allow-pairing-source", "10.0.0.0/8"], "--allow-pairing-source goes with --remote-build-only"],
      [["--remote-build-only", "--allow-pairing-source", "builder.lan"], "--allow-pairing-source must list IP addresses or CIDR blocks"],
    ] as const) {
      const err = await spawnBuilder([...args, "--config-dir", await configDir({}), ...COMMON]).then(
        () => new Error("started"),
        (e: unknown) => e as Error,
      );
      expect(err.message).toContain(message);
    }
  }, 30_000);
});
