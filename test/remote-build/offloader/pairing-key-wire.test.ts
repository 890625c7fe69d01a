/**
 * The pairing key on the wire, from the offloader's side: it rides in
 * pair_request msg3 only after the build server's key matched the pin (a
 * wrong pin never sends it), beside the fields newer upstream sends; and
 * `ha_addon` tells the truth on both sides.
 */
import { describe, expect, it, onTestFinished } from "vitest";
import { WebSocketServer } from "ws";
import { EventBus } from "../../../src/events.ts";
import { resolvePaths } from "../../../src/paths.ts";
import { accept, initiate, type Accepted } from "../../../src/remote-build/transport/handshake.ts";
import { pinSha256 } from "../../../src/remote-build/transport/fingerprint.ts";
import { IdentityStore } from "../../../src/remote-build/transport/identity.ts";
import { generateStaticKey, publicKeyOf } from "../../../src/remote-build/transport/noise-primitives.ts";
import { Offloader } from "../../../src/remote-build/offloader/offloader.ts";
import { startBuilder } from "../../helpers/builder.ts";
import { tempDir } from "../../helpers/tmp.ts";

const KEY = "ABCD-EFGH-JKMN-PQRS";

/** A bare peer-link responder that records every frame it is sent and what its handshakes accepted. */
async function recordingServer(answer: Record<string, unknown>) {
  const key = generateStaticKey();
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false });
  onTestFinished(() => new Promise<void>((r) => { for (const c of wss.clients) c.terminate(); wss.close(() => { r(); }); }));
  await new Promise((r) => wss.once("listening", r));
  const frames: number[] = [];
  const accepted: Accepted[] = [];
  const failures: string[] = [];
  wss.on("connection", (ws, req) => {
    ws.on("message", (data: Buffer) => frames.push(data.length));
    accept(ws, req, { staticPrivateKey: key, stepTimeoutMs: 2000 }).then(
      (a) => {
        accepted.push(a);
        a.respond({ intent_response: answer.intent_response, esphome_version: "2026.10.0", ...answer }).close("done");
      },
      (err: unknown) => failures.push((err as Error).message),
    );
  });
  return { port: (wss.address() as { port: number }).port, pin: pinSha256(publicKeyOf(key)), frames, accepted, failures };
}

async function offloader(haAddon = false) {
  const paths = resolvePaths({ configDir: await tempDir() });
  const o = new Offloader({
    bus: new EventBus(),
    paths,
    identity: new IdentityStore({ keyFile: paths.peerLinkKeyFile, idFile: paths.identityFile }),
    label: () => "Laptop",
    haAddon,
    timings: { stepTimeoutMs: 2000, backoffInitialMs: 50, backoffMaxMs: 100 },
  });
  await o.start();
  onTestFinished(() => o.stop());
  return o;
}

describe("the pairing key on the wire", () => {
  it("is never sent to a build server whose key does not match the pin: the handshake stops after msg2", async () => {
    const server = await recordingServer({ intent_response: "approved" });
    const o = await offloader();
    const wrongPin = "0".repeat(64);
    await expect(o.requestPair("127.0.0.1", server.port, wrongPin, "Box", KEY)).rejects.toMatchObject({ code: "invalid_args", message: expect.stringContaining("nothing was sent") as unknown });
    await expect.poll(() => server.failures.length).toBe(1);
    // The server got msg1 only: no msg3, so no key (and no transport frame).
    expect(server.frames).toHaveLength(1);
    expect(server.accepted).toHaveLength(0);
    expect(server.failures[0]).toMatch(/closed before handshake message 3/);
  });

  it("rides in pair_request msg3 with newer upstream's fields once the pin matched", async () => {
    const server = await recordingServer({ intent_response: "approved" });
    const o = await offloader(true);
    const pairing = await o.requestPair("127.0.0.1", server.port, server.pin, "Box", "abcd efgh jkmn pqrs");
    expect(pairing.status).toBe("approved");
    expect(server.accepted).toHaveLength(1);
    const msg3 = server.accepted[0]?.payload;
    expect(Object.keys(msg3 ?? {})).toEqual(["dashboard_id", "label", "friendly_name", "ha_addon", "label_auto", "pairing_key"]);
    // Sent in its printed form; the add-on says it is one.
    expect(msg3).toMatchObject({ label: "Laptop", friendly_name: "Laptop", ha_addon: true, label_auto: false, pairing_key: KEY });
  });

  it("is left out of msg3 when none is given, and a malformed one is refused before connecting", async () => {
    const server = await recordingServer({ intent_response: "pending" });
    const o = await offloader();
    await o.requestPair("127.0.0.1", server.port, server.pin, "Box");
    expect(server.accepted[0]?.payload).not.toHaveProperty("pairing_key");
    expect(server.accepted[0]?.payload).toMatchObject({ ha_addon: false });
    await expect(o.requestPair("127.0.0.1", server.port, server.pin, "Box", "ABCD")).rejects.toMatchObject({ code: "invalid_args" });
    expect(server.accepted).toHaveLength(1);
  });

  it("learns from the preview whether the build server needs a key (only a literal true counts)", async () => {
    for (const [flag, expected] of [[true, true], ["true", false], [1, false], [undefined, false]] as const) {
      const server = await recordingServer({ intent_response: "ok", ...(flag === undefined ? {} : { requires_pairing_key: flag }) });
      const o = await offloader();
      const preview = await o.previewPair("127.0.0.1", server.port);
      expect(preview.requires_pairing_key, String(flag)).toBe(expected);
    }
  });

  it("a wrong key is told apart from a closed window only on the offloader, by whether it sent one", async () => {
    const server = await recordingServer({ intent_response: "no_pairing_window" });
    const o = await offloader();
    await expect(o.requestPair("127.0.0.1", server.port, server.pin, "Box", KEY)).rejects.toMatchObject({ code: "pairing_key_refused", message: expect.stringContaining("wrong or expired") as unknown });
    await expect(o.requestPair("127.0.0.1", server.port, server.pin, "Box")).rejects.toMatchObject({ code: "unavailable", message: expect.stringContaining("open the pairing window") as unknown });
  });
});

describe("ha_addon in the build server's answers", () => {
  it("is true in the add-on and false standalone; a standalone build server's preview needs no key", async () => {
    for (const addon of [false, true]) {
      const { builder } = await startBuilder({ addon, ingressAddresses: ["127.0.0.1"] });
      await builder.remote.receiver.setEnabled(true);
      const port = builder.remote.receiver.port ?? 0;
      const { channel, response } = await initiate({ host: "127.0.0.1", port, staticPrivateKey: generateStaticKey(), intent: "preview", payload: null, stepTimeoutMs: 2000 });
      channel.close("done");
      expect(response.ha_addon, `addon ${addon}`).toBe(addon);
      expect(response.requires_pairing_key).toBe(false);
    }
  });
});
