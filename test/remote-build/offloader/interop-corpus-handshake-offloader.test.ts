/**
 * Our offloader against upstream's intent responses, replayed from the capture
 * (../shared/interop/upstream-2026-05-31/frames.jsonl): a listener that runs
 * our own responder handshake on a real socket but answers each intent with
 * the exact JSON upstream's build server sent for it. Each answer must mean to
 * ours what it means to upstream's offloader (WIRE-FACTS §2: a pending
 * pairing, a closed window, a terminal or a transient refusal). Upstream
 * cannot run here, so its recorded answers stand in for it.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { EventBus, type EventMap } from "../../../src/events.ts";
import { resolvePaths } from "../../../src/paths.ts";
import { accept } from "../../../src/remote-build/transport/handshake.ts";
import { IdentityStore } from "../../../src/remote-build/transport/identity.ts";
import { msg1Schema, PEER_LINK_PATH } from "../../../src/remote-build/transport/messages.ts";
import { generateStaticKey } from "../../../src/remote-build/transport/noise-primitives.ts";
import { Offloader } from "../../../src/remote-build/offloader/offloader.ts";
import { corpusFrames, corpusMissing } from "../../helpers/corpus.ts";
import { tempDir, waitFor } from "../../helpers/tmp.ts";

type Frame = Record<string, unknown>;

/** The intent response upstream's build server sent for `intent` with this answer and reason, exactly as recorded. */
function upstreamAnswer(intent: string, answer: string, reason?: string): Frame {
  const intents = new Map<string, string>();
  for (const r of corpusFrames()) {
    if (r.layer.startsWith("handshake msg1")) {
      const m = msg1Schema.safeParse(r.frame);
      intents.set(r.session, m.success ? m.data.intent : "");
      continue;
    }
    const f = r.frame as Frame | null;
    if (r.dir !== "upstream->peer" || r.layer !== "transport" || f?.["intent_response"] !== answer || intents.get(r.session) !== intent) continue;
    if (f["reason"] === reason) return f;
  }
  throw new Error(`the capture has no ${intent} answered ${answer}/${reason ?? "-"}`);
}

/** A build server that answers the intents it is asked, in order, with `script`'s recorded answers; an `ok` peer_link stays open. */
async function replayServer(script: { intent: string; answer: Frame }[]) {
  const key = generateStaticKey();
  const asked: string[] = [];
  const server = http.createServer();
  const wss = new WebSocketServer({ server, path: PEER_LINK_PATH, perMessageDeflate: false });
  wss.on("connection", (ws, req) => {
    void accept(ws, req, { staticPrivateKey: key }).then((a) => {
      asked.push(a.intent);
      const step = script.shift();
      if (step === undefined || step.intent !== a.intent) {
        a.hangUp("not in the script");
        return;
      }
      const ch = a.respond(step.answer);
      if (step.answer["intent_response"] === "ok" && a.intent === "peer_link") ch.send({ type: "queue_status", idle: true, running: false, queue_depth: 0 });
      else ch.close("done");
    }, () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    asked,
    left: () => script.length,
    stop: async () => {
      for (const c of wss.clients) c.terminate();
      await new Promise((r) => server.close(r));
    },
  };
}

async function ourOffloader() {
  const paths = resolvePaths({ configDir: await tempDir() });
  const bus = new EventBus();
  const events: { name: keyof EventMap; payload: unknown }[] = [];
  bus.onAny((name, payload) => events.push({ name, payload }));
  const identity = new IdentityStore({ keyFile: paths.peerLinkKeyFile, idFile: paths.identityFile });
  const offloader = new Offloader({ bus, paths, identity, label: () => "Pi", timings: { backoffInitialMs: 20, backoffMaxMs: 40 } });
  await offloader.start();
  return { offloader, events };
}

describe.skipIf(corpusMissing())("upstream's intent responses, as our offloader reads them", () => {
  it("preview ok: the pin and upstream's ESPHome version; no friendly name (upstream 2026-05 sends none) reads as none", async () => {
    const server = await replayServer([{ intent: "preview", answer: upstreamAnswer("preview", "ok") }]);
    const { offloader } = await ourOffloader();
    try {
      const preview = await offloader.previewPair("127.0.0.1", server.port);
      expect(preview).toMatchObject({ esphome_version: "2026.6.5", label: "" });
      expect(preview.pin_sha256).toMatch(/^[0-9a-f]{64}$/);
    } finally {
      await offloader.stop();
      await server.stop();
    }
  });

  it.each([
    ["no_pairing_window", undefined, /not accepting pairing requests: open the pairing window on the build server/],
    ["rejected", "pin_mismatch", /refused the pairing request \(pin_mismatch\)/],
  ])("pair_request answered %s %s: refused with a message that names it, nothing paired", async (answer, reason, message) => {
    const server = await replayServer([
      { intent: "preview", answer: upstreamAnswer("preview", "ok") },
      { intent: "pair_request", answer: upstreamAnswer("pair_request", answer, reason) },
    ]);
    const { offloader } = await ourOffloader();
    try {
      const { pin_sha256 } = await offloader.previewPair("127.0.0.1", server.port);
      await expect(offloader.requestPair("127.0.0.1", server.port, pin_sha256)).rejects.toThrow(message);
      expect(offloader.snapshot()).toEqual([]);
    } finally {
      await offloader.stop();
      await server.stop();
    }
  });

  it("pair_request pending, then the long poll answered rejected/no_approved_peer: the pairing request is dropped", async () => {
    const server = await replayServer([
      { intent: "preview", answer: upstreamAnswer("preview", "ok") },
      { intent: "pair_request", answer: upstreamAnswer("pair_request", "pending") },
      { intent: "pair_status", answer: upstreamAnswer("pair_status", "rejected", "no_approved_peer") },
    ]);
    const { offloader, events } = await ourOffloader();
    try {
      const { pin_sha256 } = await offloader.previewPair("127.0.0.1", server.port);
      expect(await offloader.requestPair("127.0.0.1", server.port, pin_sha256)).toMatchObject({ status: "pending" });
      await waitFor(() => events.some((e) => e.name === "offloader_pairing_removed"), 5000, "the pairing dropped");
      expect(events.find((e) => e.name === "offloader_pairing_removed")?.payload).toEqual({ pin_sha256, reason: "no_approved_peer" });
      expect(offloader.snapshot()).toEqual([]);
    } finally {
      await offloader.stop();
      await server.stop();
    }
  });

  it("pair_request pending, pair_status approved, a peer_link answered pending/pending_not_approved is retried (transient), then ok opens the session", async () => {
    const server = await replayServer([
      { intent: "preview", answer: upstreamAnswer("preview", "ok") },
      { intent: "pair_request", answer: upstreamAnswer("pair_request", "pending") },
      { intent: "pair_status", answer: upstreamAnswer("pair_status", "approved") },
      { intent: "peer_link", answer: upstreamAnswer("peer_link", "pending", "pending_not_approved") },
      { intent: "peer_link", answer: upstreamAnswer("peer_link", "ok") },
    ]);
    const { offloader } = await ourOffloader();
    try {
      const { pin_sha256 } = await offloader.previewPair("127.0.0.1", server.port);
      await offloader.requestPair("127.0.0.1", server.port, pin_sha256);
      await waitFor(() => offloader.session(pin_sha256)?.queueStatus?.idle === true, 5000, "the session");
      expect(server.asked).toEqual(["preview", "pair_request", "pair_status", "peer_link", "peer_link"]);
      expect(offloader.alerts()).toEqual([]);
      // Upstream's answer says nothing of reset_build_env or auto-provisioning: neither is assumed.
      expect(offloader.snapshot()[0]).toMatchObject({ status: "approved", stored: { esphome_version: "2026.6.5", auto_provision_supported: false } });
      expect(offloader.session(pin_sha256)?.resetBuildEnvSupported).toBe(false);
    } finally {
      await offloader.stop();
      await server.stop();
    }
  });

  it.each([["no_approved_peer"], ["pin_mismatch"]])("a peer_link answered rejected/%s is terminal: an alert to pair again, no reconnecting", async (reason) => {
    const server = await replayServer([
      { intent: "preview", answer: upstreamAnswer("preview", "ok") },
      { intent: "pair_request", answer: upstreamAnswer("pair_request", "approved") },
      { intent: "peer_link", answer: upstreamAnswer("peer_link", "rejected", reason) },
    ]);
    const { offloader } = await ourOffloader();
    try {
      const { pin_sha256 } = await offloader.previewPair("127.0.0.1", server.port);
      expect(await offloader.requestPair("127.0.0.1", server.port, pin_sha256)).toMatchObject({ status: "approved" });
      await waitFor(() => offloader.alerts().length > 0, 5000, "the alert");
      expect(offloader.alerts()).toEqual([expect.objectContaining({ pin_sha256, kind: "peer_revoked" })]);
      // Backoff here is 20-40 ms: a transient answer would have been retried many times over.
      await new Promise((r) => setTimeout(r, 300));
      expect(server.asked).toEqual(["preview", "pair_request", "peer_link"]);
    } finally {
      await offloader.stop();
      await server.stop();
    }
  });
});
