/** Pairing two builder processes as their panels do, and a stand-in bundle of a device. */
import { execFileSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import path from "node:path";
import type { ApiClient } from "./api-client.ts";
import { STAND_IN } from "./config.ts";
import { tempDir, waitFor } from "./tmp.ts";

/**
 * A pairs with build server B through both panels' API and waits until B is
 * connected and idle (or only connected, with `idle: false`: a job waiting on
 * A may already keep B busy); resolves with B's pin.
 */
export async function pairBuilders(a: { api: ApiClient }, b: { api: ApiClient; peerPort: number }, opts: { idle?: boolean } = {}): Promise<string> {
  await b.api.call("remote_build/set_pairing_window", { open: true });
  const preview = await a.api.call<{ pin_sha256: string }>("remote_build/preview_pair", { hostname: "127.0.0.1", port: b.peerPort });
  await a.api.call("remote_build/request_pair", { hostname: "127.0.0.1", port: b.peerPort, pin_sha256: preview.pin_sha256 });
  const id = (await a.api.call<{ dashboard_id: string }>("remote_build/get_identity")).dashboard_id;
  await b.api.call("remote_build/approve_peer", { dashboard_id: id });
  await waitFor(async () => {
    const s = await a.api.call<{ pairings: { connected: boolean; idle: boolean | null }[] }>("remote_build/get_offloader_settings");
    return s.pairings[0]?.connected === true && (opts.idle === false || s.pairings[0].idle === true);
  }, 10_000, "A connected to an idle B");
  return preview.pin_sha256;
}

/** `esphome bundle` of `<dir>/kitchen.yaml` by the stand-in CLI. */
export async function standInBundle(dir: string, yaml = "kitchen.yaml"): Promise<Buffer> {
  const out = path.join(await tempDir(), "bundle.tar.gz");
  execFileSync(STAND_IN, ["bundle", path.join(dir, yaml), "-o", out], { stdio: "ignore" });
  return readFile(out);
}
