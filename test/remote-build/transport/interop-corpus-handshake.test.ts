/**
 * The peer link's handshake layer against the upstream Device Builder's
 * captured frames (../shared/interop/upstream-2026-05-31/frames.jsonl): the
 * msg1, msg2 and msg3 payloads and the intent responses. Every payload
 * upstream sent decodes with our schemas to the same meaning; every payload a
 * peer sent upstream's build server gets upstream's answer from ours when
 * replayed in the capture's order; and the payloads our own builders send in
 * the same scenarios carry upstream's fields with upstream's JSON types.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import WebSocket from "ws";
import { EventBus } from "../../../src/events.ts";
import { FirmwareQueue } from "../../../src/firmware/queue.ts";
import { resolvePaths } from "../../../src/paths.ts";
import { IdentityStore } from "../../../src/remote-build/transport/identity.ts";
import { dashboardIdPayloadSchema, intentResponseSchema, msg1Schema, pairRequestSchema } from "../../../src/remote-build/transport/messages.ts";
import { NoiseHandshake } from "../../../src/remote-build/transport/noise.ts";
import { CipherState, generateStaticKey } from "../../../src/remote-build/transport/noise-primitives.ts";
import { Offloader } from "../../../src/remote-build/offloader/offloader.ts";
import { Receiver } from "../../../src/remote-build/build-server/receiver.ts";
import { corpusFrames, corpusMissing, jsonType, upstreamRole, type CorpusRecord } from "../../helpers/corpus.ts";
import { ScriptedRunner } from "../../helpers/scripted-runner.ts";
import { tempDir, waitFor } from "../../helpers/tmp.ts";

type Frame = Record<string, unknown>;
const isObject = (v: unknown): v is Frame => typeof v === "object" && v !== null && !Array.isArray(v);

const MSG1 = "handshake msg1";
const MSG2 = "handshake msg2";
const MSG3 = "handshake msg3";
const isResponse = (r: CorpusRecord): r is CorpusRecord & { frame: Frame } => r.layer === "transport" && isObject(r.frame) && "intent_response" in r.frame;

/**
 * Fields newer upstream added to the handshake after this corpus was captured,
 * as our schemas read their absence: the same meaning newer upstream gives it
 * (WIRE-FACTS "Newer upstream additions" A, B, D, G: no friendly name, not an
 * add-on, a label typed by hand, no reset_build_env, no auto-provisioning).
 * `version_policy` is ours only: absent, it reads as not said.
 */
const NEWER_FIELDS_ABSENT = {
  pair_request: { friendly_name: "", ha_addon: false, label_auto: false },
  dashboard_id: { friendly_name: "", ha_addon: false },
  // requires_pairing_key: a 2026-05 build server is never a headless one with a key.
  intent_response: { friendly_name: "", ha_addon: false, reset_build_env_supported: false, auto_provision_supported: false, version_policy: null, requires_pairing_key: false },
} as const;

/** Each handshake's records (msg1, msg2, msg3 and the intent response), grouped by the upstream connection they belong to. */
function handshakes(pred: (r: CorpusRecord) => boolean): { session: string; records: CorpusRecord[] }[] {
  const bySession = new Map<string, CorpusRecord[]>();
  for (const r of corpusFrames()) {
    if (!pred(r) || !(r.layer.startsWith("handshake") || isResponse(r))) continue;
    const list = bySession.get(r.session) ?? [];
    list.push(r);
    bySession.set(r.session, list);
  }
  return [...bySession].map(([session, records]) => ({ session, records }));
}

/** The intent each upstream connection's msg1 named ("" when it named none). */
function intentsBySession(): Map<string, string> {
  const intents = new Map<string, string>();
  for (const r of corpusFrames()) {
    if (!r.layer.startsWith(MSG1)) continue;
    const parsed = msg1Schema.safeParse(r.frame);
    intents.set(r.session, parsed.success ? parsed.data.intent : "");
  }
  return intents;
}

describe.skipIf(corpusMissing())("upstream's handshake payloads (frames.jsonl)", () => {
  it("every msg1 and msg3 upstream sent as offloader decodes with our schemas to the same meaning", () => {
    const intents = intentsBySession();
    const seen = new Set<string>();
    let msg3s = 0;
    for (const r of corpusFrames()) {
      if (r.dir !== "upstream->peer" || upstreamRole(r) !== "offloader" || !r.layer.startsWith("handshake")) continue;
      expect(r.layer.startsWith(MSG2), "an offloader never writes msg2").toBe(false);
      if (r.layer.startsWith(MSG1)) {
        // Exactly {"intent": …}: nothing else rides in the cleartext message.
        expect(msg1Schema.parse(r.frame)).toEqual(r.frame);
        continue;
      }
      const intent = intents.get(r.session);
      seen.add(String(intent));
      msg3s++;
      if (intent === "preview") {
        // Upstream's preview msg3 is empty (0 bytes); ours reads that as no payload.
        expect(r.frame, r.note).toBeNull();
        continue;
      }
      expect(isObject(r.frame), `${intent} msg3 is an object`).toBe(true);
      if (intent === "pair_request") {
        expect(pairRequestSchema.parse(r.frame)).toEqual({ ...NEWER_FIELDS_ABSENT.pair_request, ...(r.frame as Frame) });
      } else {
        expect(dashboardIdPayloadSchema.parse(r.frame)).toEqual({ ...NEWER_FIELDS_ABSENT.dashboard_id, ...(r.frame as Frame) });
      }
    }
    expect(msg3s).toBeGreaterThan(10);
    expect([...seen].sort()).toEqual(["pair_request", "pair_status", "peer_link", "preview"]);
  });

  it("every msg2 upstream sent as build server is empty, and every intent response decodes to the same meaning", () => {
    const msg2s = corpusFrames().filter((r) => r.dir === "upstream->peer" && r.layer.startsWith(MSG2));
    expect(msg2s.length).toBe(60);
    for (const r of msg2s) expect(r.frame, r.session).toBeNull();

    const responses = corpusFrames().filter((r) => r.dir === "upstream->peer" && isResponse(r)).map((r) => r.frame as Frame);
    expect(responses.length).toBe(60);
    const kinds = new Set<string>();
    for (const frame of responses) {
      expect(intentResponseSchema.parse(frame), JSON.stringify(frame)).toEqual({ ...NEWER_FIELDS_ABSENT.intent_response, ...frame });
      kinds.add(`${String(frame["intent_response"])}/${typeof frame["reason"] === "string" ? frame["reason"] : ""}`);
    }
    // Every answer of WIRE-FACTS §15 was in the capture, and each reads as itself.
    expect([...kinds].sort()).toEqual(
      [
        "approved/", "no_pairing_window/", "ok/", "pending/", "pending/pending_not_approved", "rejected/bad_dashboard_id",
        "rejected/bad_intent", "rejected/no_approved_peer", "rejected/pin_mismatch",
      ].sort(),
    );
  });

  it("the label upstream's peers send is read as upstream reads it: trimmed, cut to 128 characters", () => {
    expect(pairRequestSchema.parse({ dashboard_id: "abc", label: "  probe-1  " }).label).toBe("probe-1");
    expect(pairRequestSchema.parse({ dashboard_id: "abc", label: "x".repeat(200) }).label).toHaveLength(128);
    // Keys upstream ignores are ignored here too (a newer peer's pairing_key, connect_back_port).
    expect(dashboardIdPayloadSchema.parse({ dashboard_id: "abc", connect_back_port: 6055, pairing_key: "K" })).toEqual({ dashboard_id: "abc", ...NEWER_FIELDS_ABSENT.dashboard_id });
  });
});

// ---- the peers' payloads, replayed against our build server ----

/** The build server's user, between or during the capture's handshakes (from each record's context). */
type AdminAction = (receiver: Receiver, ids: { here: string; of: (peer: string) => string }) => void;
const ADMIN: Readonly<Record<number, { when: "before" | "during"; act: AdminAction }[]>> = {
  9: [{ when: "before", act: (r) => { r.setPairingWindow("admin", true); } }], // "pair_request (new peer, window open)"
  14: [{ when: "during", act: (r, id) => { r.approve(id.here); } }], // "admin approves after ~2 s"
  22: [{ when: "during", act: (r, id) => { r.remove(id.here); } }], // "admin rejects (remove_peer)"
  // P4 is approved at some point before its session (26); it must be before the window closes, which drops pending rows.
  25: [{ when: "before", act: (r, id) => { r.approve(id.of("P4")); } }, { when: "during", act: (r) => { r.setPairingWindow("admin", false); } }],
  43: [{ when: "before", act: (r, id) => { r.remove(id.here); } }], // "revoke test: reconnect after removal"
  47: [{ when: "before", act: (r) => { r.setPairingWindow("admin", true); } }], // a new pair_request answered pending
  48: [{ when: "before", act: (r, id) => { r.approve(id.here); } }], // "session open" for P6
  51: [{ when: "during", act: (r, id) => { r.approve(id.here); } }], // "admin approves -> long-poll answers approved"
};

/** A payload as the peer put it on the wire: null is empty, a string was sent as its bytes, an object as JSON. */
function payloadBytes(frame: unknown): Buffer {
  if (frame === null) return Buffer.alloc(0);
  return Buffer.from(typeof frame === "string" ? frame : JSON.stringify(frame));
}

/**
 * One handshake by hand with exactly the corpus's payloads; `during` runs once
 * the build server has read msg3. Resolves with the decrypted intent response,
 * or null when the build server closed without one.
 */
async function replay(port: number, key: Uint8Array, msg1: Buffer, msg3: Buffer, split: { calls: () => number }, during: () => void): Promise<Frame | null> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/remote-build/peer-link`, { perMessageDeflate: false });
  const inbox: Buffer[] = [];
  let wake: (() => void) | null = null;
  let closed = false;
  ws.on("message", (d: Buffer) => { inbox.push(d); wake?.(); });
  ws.on("close", () => { closed = true; wake?.(); });
  await new Promise((resolve, reject) => { ws.once("open", resolve); ws.once("error", reject); });
  const read = async (): Promise<Buffer | null> => {
    while (inbox.length === 0 && !closed) await new Promise<void>((r) => { wake = r; });
    return inbox.shift() ?? null;
  };
  try {
    const hs = NoiseHandshake.initiator(key);
    ws.send(hs.writeMessage(msg1));
    const msg2 = await read();
    if (msg2 === null) return null;
    expect(hs.readMessage(msg2)).toHaveLength(0); // ours sends msg2 empty, as upstream does
    const before = split.calls();
    ws.send(hs.writeMessage(msg3));
    const { receive } = hs.split();
    // Our split and the build server's: then it has read msg3 and acts on it.
    await waitFor(() => split.calls() >= before + 2 || closed, 5000, "the build server reading msg3");
    during();
    const reply = await read();
    return reply === null ? null : (JSON.parse(Buffer.from(receive.decrypt(reply)).toString("utf8")) as Frame);
  } finally {
    ws.terminate();
  }
}

async function ourReceiver(): Promise<{ receiver: Receiver; queue: FirmwareQueue }> {
  const paths = resolvePaths({ configDir: await tempDir() });
  const bus = new EventBus();
  const queue = new FirmwareQueue({ bus, paths, runner: new ScriptedRunner() });
  await queue.start();
  const receiver = new Receiver({
    bus, queue, paths,
    identity: new IdentityStore({ keyFile: paths.peerLinkKeyFile, idFile: paths.identityFile }),
    host: "127.0.0.1", port: 0, label: () => "Desktop", esphomeVersion: () => "2026.6.5", defaultEnabled: true,
  });
  await receiver.start();
  return { receiver, queue };
}

describe.skipIf(corpusMissing())("the peers' handshake payloads, replayed against our build server", () => {
  afterEach(() => { vi.restoreAllMocks(); });

  it("get the answer upstream's build server gave, in the capture's order", { timeout: 60_000 }, async () => {
    const split = vi.spyOn(NoiseHandshake.prototype, "split");
    const { receiver, queue } = await ourReceiver();
    const keys = new Map<string, Uint8Array>();
    const ids = new Map<string, string>();
    const verdicts: { session: string; upstream: Frame; ours: Frame | null }[] = [];
    try {
      // up1 as build server, against the test client and the TypeScript builder (up2's own handshakes are upstream's, checked above).
      for (const { session, records } of handshakes((r) => /^up1:22814:\d+$/.test(r.session))) {
        const msg1 = records.find((r) => r.layer.startsWith(MSG1) && r.dir === "peer->upstream");
        const msg3 = records.find((r) => r.layer.startsWith(MSG3) && r.dir === "peer->upstream");
        const answer = records.find(isResponse);
        if (msg1 === undefined || msg3 === undefined || answer === undefined) continue;
        const peer = /peer = (?:test client (\S+)|TypeScript builder (\S+))\]/.exec(msg1.context);
        expect(peer, msg1.context).not.toBeNull();
        const who = peer?.[1] ?? peer?.[2] ?? "";
        const key = keys.get(who) ?? generateStaticKey();
        keys.set(who, key);
        const here = isObject(msg3.frame) && typeof msg3.frame["dashboard_id"] === "string" ? msg3.frame["dashboard_id"] : "";
        if (here !== "" && !ids.has(who)) ids.set(who, here);
        const idOf = { here, of: (p: string) => ids.get(p) ?? "" };
        const actions = ADMIN[Number(session.split(":")[2])] ?? [];
        for (const a of actions) if (a.when === "before") a.act(receiver, idOf);
        const ours = await replay(receiver.port!, key, payloadBytes(msg1.frame), payloadBytes(msg3.frame), { calls: () => split.mock.calls.length }, () => {
          for (const a of actions) if (a.when === "during") a.act(receiver, idOf);
        });
        verdicts.push({ session, upstream: answer.frame, ours });
        if (session === "up1:22814:9") {
          // Stored as upstream stored it: "  probe-1  " became "probe-1".
          expect(receiver.peers()).toEqual([expect.objectContaining({ dashboard_id: here, label: "probe-1", status: "pending" })]);
        }
      }
      expect(verdicts.length).toBeGreaterThan(45);
      for (const v of verdicts) {
        // The decision (answer and reason) is upstream's; ours adds its documented fields, and says its own esphome_version.
        const pick = (f: Frame | null) => (f === null ? null : { intent_response: f["intent_response"], reason: f["reason"] });
        expect(pick(v.ours), `${v.session}: upstream answered ${JSON.stringify(v.upstream)}`).toEqual(pick(v.upstream));
      }
    } finally {
      await receiver.stop();
      await queue.stop();
    }
  });
});

// ---- our payloads, in the capture's scenarios ----

interface Shape {
  /** "empty" (0 bytes) or the payload's JSON type. */
  forms: Set<string>;
  types: Map<string, Set<string>>;
  /** Keys every object payload of this kind had. */
  always: Set<string> | null;
}

function addShape(shapes: Map<string, Shape>, kind: string, frame: unknown): void {
  let shape = shapes.get(kind);
  if (shape === undefined) {
    shape = { forms: new Set(), types: new Map(), always: null };
    shapes.set(kind, shape);
  }
  shape.forms.add(frame === null ? "empty" : jsonType(frame));
  if (!isObject(frame)) return;
  shape.always ??= new Set(Object.keys(frame));
  for (const key of [...shape.always]) if (!(key in frame)) shape.always.delete(key);
  for (const [key, v] of Object.entries(frame)) {
    const set = shape.types.get(key) ?? new Set<string>();
    set.add(jsonType(v));
    shape.types.set(key, set);
  }
}

/** Upstream's handshake payload shapes, from what upstream itself sent: `msg1`, `msg2`, `msg3:<intent>`, `response:<intent>`. */
function upstreamShapes(): Map<string, Shape> {
  const intents = intentsBySession();
  const shapes = new Map<string, Shape>();
  // up2's (offloader) msg1/msg3 pair with up1's (build server) msg2/response by order within each handshake; the intent comes from msg1.
  let lastIntent = "";
  for (const r of corpusFrames()) {
    if (r.dir !== "upstream->peer") continue;
    if (r.layer.startsWith(MSG1)) lastIntent = intents.get(r.session) ?? "";
    const intent = upstreamRole(r) === "offloader" ? (intents.get(r.session) ?? "") : intents.get(r.session) ?? lastIntent;
    if (r.layer.startsWith(MSG1)) addShape(shapes, "msg1", r.frame);
    else if (r.layer.startsWith(MSG2)) addShape(shapes, "msg2", r.frame);
    else if (r.layer.startsWith(MSG3)) addShape(shapes, `msg3:${intent}`, r.frame);
    else if (isResponse(r)) addShape(shapes, `response:${intent}`, r.frame);
  }
  return shapes;
}

/**
 * Our documented additions, with their JSON types: upstream 2026-05-31 ignores
 * every one of them (it reads only `intent`, `dashboard_id`, `label`,
 * `intent_response`, `esphome_version` and `reason`); newer upstream reads and
 * sends all but `version_policy`, which is ours only (WIRE-FACTS "Differences" 12, G).
 */
const OUR_ADDITIONS: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  "msg3:pair_request": { friendly_name: "string", ha_addon: "boolean", label_auto: "boolean" },
  "msg3:pair_status": { friendly_name: "string", ha_addon: "boolean" },
  "msg3:peer_link": { friendly_name: "string", ha_addon: "boolean" },
  response: { friendly_name: "string", ha_addon: "boolean", reset_build_env_supported: "boolean", auto_provision_supported: "boolean", version_policy: "string" },
};

describe.skipIf(corpusMissing())("our handshake payloads in the capture's scenarios", () => {
  afterEach(() => { vi.restoreAllMocks(); });

  it("have upstream's fields with upstream's JSON types, as offloader and as build server", { timeout: 60_000 }, async () => {
    const decoder = new TextDecoder();
    // What our two sides write into the handshake, and what they encrypt (the intent response is the first transport frame).
    const initiators = vi.spyOn(NoiseHandshake, "initiator");
    const writes = vi.spyOn(NoiseHandshake.prototype, "writeMessage");
    const encrypts = vi.spyOn(CipherState.prototype, "encrypt");
    // null: empty; the handshake's own encrypted keys go through encrypt too, and are not JSON.
    const text = (b: Uint8Array | undefined): unknown => {
      if (b === undefined || b.length === 0) return null;
      try {
        return JSON.parse(decoder.decode(b));
      } catch {
        return "(not JSON)";
      }
    };

    const { receiver, queue } = await ourReceiver();
    const dir = await tempDir();
    const paths = resolvePaths({ configDir: dir });
    const bus = new EventBus();
    const identity = new IdentityStore({ keyFile: paths.peerLinkKeyFile, idFile: paths.identityFile });
    const timings = { backoffInitialMs: 50, backoffMaxMs: 100 };
    let offloader = new Offloader({ bus, paths, identity, label: () => "Pi", timings });
    try {
      await offloader.start();
      const port = receiver.port!;
      // The capture's scenarios: preview; pair_request with the window closed; pair_request → pending;
      // the pair_status long poll answered by an approval; the peer_link session; and, once the build
      // server removed the peer, a peer_link refused with no_approved_peer.
      const preview = await offloader.previewPair("127.0.0.1", port);
      await expect(offloader.requestPair("127.0.0.1", port, preview.pin_sha256)).rejects.toThrow(/not accepting pairing requests/);
      receiver.setPairingWindow("admin", true);
      await offloader.requestPair("127.0.0.1", port, preview.pin_sha256);
      const id = (await identity.load()).dashboard_id;
      await waitFor(() => writes.mock.calls.length >= 12, 5000, "the pair_status poll"); // its msg3: the 4th handshake's 3rd message
      receiver.approve(id);
      await waitFor(() => offloader.session(preview.pin_sha256)?.queueStatus !== undefined, 5000, "the session");
      await offloader.stop();
      receiver.remove(id);
      offloader = new Offloader({ bus, paths, identity, label: () => "Pi", timings });
      await offloader.start();
      await waitFor(() => offloader.alerts().some((a) => a.kind === "peer_revoked"), 5000, "peer_link refused");
    } finally {
      await offloader.stop();
      await receiver.stop();
      await queue.stop();
    }

    // Sort what was written by handshake: an initiator writes msg1 then msg3, a responder msg2.
    const initiatorObjects = new Set(initiators.mock.results.map((r) => r.value as NoiseHandshake));
    const ours = new Map<string, Shape>();
    const perHandshake = new Map<NoiseHandshake, unknown[]>();
    writes.mock.calls.forEach(([payload], i) => {
      const hs = writes.mock.contexts[i] as NoiseHandshake;
      const list = perHandshake.get(hs) ?? [];
      list.push(text(payload));
      perHandshake.set(hs, list);
    });
    const intentsSent: string[] = [];
    for (const [hs, payloads] of perHandshake) {
      if (!initiatorObjects.has(hs)) {
        for (const p of payloads) addShape(ours, "msg2", p);
        continue;
      }
      const intent = String((payloads[0] as Frame)["intent"]);
      intentsSent.push(intent);
      addShape(ours, "msg1", payloads[0]);
      if (payloads.length > 1) addShape(ours, `msg3:${intent}`, payloads[1]);
    }
    const responses = encrypts.mock.calls.map(([plain]) => text(plain)).filter((f): f is Frame => isObject(f) && "intent_response" in f);
    // Our build server's answers, in order: preview ok, no_pairing_window, pending, approved, ok, rejected.
    expect(responses.map((f) => `${String(f["intent_response"])}/${typeof f["reason"] === "string" ? f["reason"] : ""}`)).toEqual([
      "ok/", "no_pairing_window/", "pending/", "approved/", "ok/", "rejected/no_approved_peer",
    ]);
    expect(intentsSent).toEqual(["preview", "pair_request", "pair_request", "pair_status", "peer_link", "peer_link"]);
    for (const [i, f] of responses.entries()) addShape(ours, `response:${intentsSent[i] ?? ""}`, f);

    const upstream = upstreamShapes();
    for (const [kind, shape] of ours) {
      const theirs = upstream.get(kind);
      expect(theirs, `upstream never sends ${kind}`).toBeDefined();
      if (theirs === undefined) continue;
      const additions = OUR_ADDITIONS[kind.startsWith("response:") ? "response" : kind] ?? {};
      // Empty where upstream's is empty, an object where upstream's is one.
      for (const form of shape.forms) expect([...theirs.forms], `${kind} is ${form} here`).toContain(form);
      for (const key of theirs.always ?? []) expect([...(shape.always ?? [])], `${kind} lacks ${key}`).toContain(key);
      for (const [key, types] of shape.types) {
        const allowed = theirs.types.get(key) ?? (key in additions ? new Set([additions[key]]) : undefined);
        expect(allowed, `${kind}.${key}: upstream has no such field`).toBeDefined();
        for (const t of types) expect([...(allowed ?? [])], `${kind}.${key} is ${t} here`).toContain(t);
      }
    }
    // The preview's msg3 and every msg2 are empty, as upstream sends them (not "{}").
    expect(ours.get("msg3:preview")?.forms).toEqual(new Set(["empty"]));
    expect(ours.get("msg2")?.forms).toEqual(new Set(["empty"]));
    expect([...ours.keys()].sort()).toEqual(
      [
        "msg1", "msg2", "msg3:pair_request", "msg3:pair_status", "msg3:peer_link", "msg3:preview",
        "response:pair_request", "response:pair_status", "response:peer_link", "response:preview",
      ].sort(),
    );
  });
});
