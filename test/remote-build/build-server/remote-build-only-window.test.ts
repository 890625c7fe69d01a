/**
 * The headless build server's first-pair window inside a real builder (in
 * this process, with a short window): the key lapses unused, and then
 * pairs nobody.
 */
import { describe, expect, it, onTestFinished } from "vitest";
import { Builder } from "../../../src/builder.ts";
import { EventBus } from "../../../src/events.ts";
import { resolvePaths } from "../../../src/paths.ts";
import { IdentityStore } from "../../../src/remote-build/transport/identity.ts";
import { Offloader } from "../../../src/remote-build/offloader/offloader.ts";
import { configDir, testConfig } from "../../helpers/builder.ts";
import { tempDir } from "../../helpers/tmp.ts";

async function headless(windowMs: number, dir?: string) {
  const printed: string[] = [];
  const builder = new Builder(testConfig(dir ?? (await configDir({})), { remoteBuildOnly: true }), { remoteBuildOnly: { write: (t) => printed.push(t), windowMs } });
  await builder.start();
  onTestFinished(() => builder.stop());
  const line = printed.join("").split("\n").find((l) => l.includes('"pairing_key"'));
  return { builder, printed, key: line === undefined ? null : (JSON.parse(line) as { pairing_key: string }).pairing_key, port: builder.remote.receiver.port ?? 0 };
}

async function offloader() {
  const paths = resolvePaths({ configDir: await tempDir() });
  const o = new Offloader({ bus: new EventBus(), paths, identity: new IdentityStore({ keyFile: paths.peerLinkKeyFile, idFile: paths.identityFile }), label: () => "Laptop", timings: { stepTimeoutMs: 2000 } });
  await o.start();
  onTestFinished(() => o.stop());
  return o;
}

describe("the headless build server's key window in a builder", () => {
  it("turns the build server on even when receiver.json says off", async () => {
    const dir = await configDir({});
    const first = await headless(60_000, dir);
    await first.builder.remote.receiver.setEnabled(false);
    await first.builder.stop();
    const again = await headless(60_000, dir);
    expect(again.builder.remote.receiver.enabled).toBe(true);
    expect(again.port).toBeGreaterThan(0);
    // Still nobody paired: a fresh key, not the first one.
    expect(again.key).not.toBeNull();
    expect(again.key).not.toBe(first.key);
  });

  it("lapses unused: the outcome says expired (the process then exits) and the key pairs nobody", async () => {
    const { builder, key, port } = await headless(300);
    expect(key).not.toBeNull();
    await expect(builder.remoteBuildOnly?.outcome).resolves.toBe("expired");
    const o = await offloader();
    const preview = await o.previewPair("127.0.0.1", port);
    expect(preview.requires_pairing_key).toBe(true);
    await expect(o.requestPair("127.0.0.1", port, preview.pin_sha256, "Box", key ?? "")).rejects.toMatchObject({ code: "pairing_key_refused" });
    expect(builder.remote.receiver.peers()).toEqual([]);
  });

  it("pairs once within the window, then says paired and keeps serving", async () => {
    const { builder, key, port } = await headless(60_000);
    const o = await offloader();
    const preview = await o.previewPair("127.0.0.1", port);
    const pairing = await o.requestPair("127.0.0.1", port, preview.pin_sha256, "Box", key ?? "");
    expect(pairing.status).toBe("approved");
    await expect(builder.remoteBuildOnly?.outcome).resolves.toBe("paired");
    expect(builder.remote.receiver.peers()).toEqual([expect.objectContaining({ status: "approved", label: "Laptop" })]);
    // A pair_request again from the same builder is answered from the approved row (no key needed).
    await expect(o.requestPair("127.0.0.1", port, preview.pin_sha256, "Box")).resolves.toMatchObject({ status: "approved" });
  });
});
