/**
 * The peer link against the upstream Device Builder's captured frames
 * (../shared/interop/upstream-2026-05-31/frames.jsonl): every frame upstream
 * sent decodes with our schemas to the same meaning, the deliberately broken
 * frames of the capture get the verdict upstream gave them, and the frames our
 * own builders send in the same scenarios carry upstream's fields with
 * upstream's JSON types.
 */
import { execFileSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { esphomeEnv } from "../../../src/esphome/cli.ts";
import { EventBus } from "../../../src/events.ts";
import { FirmwareQueue } from "../../../src/firmware/queue.ts";
import { resolvePaths } from "../../../src/paths.ts";
import { SecureChannel } from "../../../src/remote-build/transport/channel.ts";
import { IdentityStore } from "../../../src/remote-build/transport/identity.ts";
import {
  dashboardIdPayloadSchema,
  intentResponseSchema,
  msg1Schema,
  offloaderInbound,
  pairRequestSchema,
  parseMessage,
  receiverInbound,
} from "../../../src/remote-build/transport/messages.ts";
import { Offloader } from "../../../src/remote-build/offloader/offloader.ts";
import { Receiver } from "../../../src/remote-build/build-server/receiver.ts";
import { DEVICE_YAML, STAND_IN } from "../../helpers/builder.ts";
import { corpusFrames, corpusMissing, jsonType, upstreamRole, type CorpusRecord } from "../../helpers/corpus.ts";
import { standInBundle } from "../../helpers/pairing.ts";
import { watchJob } from "../../helpers/remote-job.ts";
import { ScriptedRunner } from "../../helpers/scripted-runner.ts";
import { tempDir, waitFor } from "../../helpers/tmp.ts";

type Frame = Record<string, unknown>;
const isObject = (v: unknown): v is Frame => typeof v === "object" && v !== null && !Array.isArray(v);

type ObjectRecord = CorpusRecord & { frame: Frame };
const transport = (pred: (r: ObjectRecord) => boolean): ObjectRecord[] =>
  corpusFrames()
    .filter((r): r is ObjectRecord => r.layer === "transport" && isObject(r.frame))
    .filter(pred);

/**
 * Fields newer upstream added after this corpus was captured, as our schemas read their
 * absence: the same meaning upstream gives it (WIRE-FACTS "Newer upstream additions" D:
 * no target version = the installed ESPHome; no failure reason = an ordinary failure).
 */
const NEWER_FIELDS_ABSENT: Readonly<Record<string, Frame>> = {
  submit_job: { target_esphome_version: "" },
  job_state_changed: { failure_reason: "" },
};

describe.skipIf(corpusMissing())("upstream's frames (frames.jsonl)", () => {
  it("every application frame upstream sent decodes with our schemas to the same meaning", () => {
    const frames = transport((r) => r.dir === "upstream->peer" && typeof r.frame["type"] === "string");
    expect(frames.length).toBeGreaterThan(1500);
    const types = new Set<string>();
    for (const r of frames) {
      // Upstream as build server talks to an offloader (ours reads it with offloaderInbound), and the other way round.
      const table = upstreamRole(r) === "build server" ? offloaderInbound : receiverInbound;
      const parsed = parseMessage(table, r.frame);
      expect(parsed, `${JSON.stringify(r.frame).slice(0, 200)} (${r.context.slice(0, 80)})`).toMatchObject({ kind: "ok" });
      if (parsed.kind === "ok") expect(parsed.message).toEqual({ ...NEWER_FIELDS_ABSENT[String(r.frame["type"])], ...r.frame });
      types.add(`${upstreamRole(r)}:${String(r.frame["type"])}`);
    }
    // Both roles' whole vocabulary was exercised.
    expect([...types].sort()).toEqual(
      [
        "build server:artifacts_chunk", "build server:artifacts_end", "build server:artifacts_start", "build server:job_output",
        "build server:job_state_changed", "build server:ping", "build server:pong", "build server:queue_status", "build server:submit_job_ack",
        "build server:terminate", "offloader:cancel_job", "offloader:download_artifacts", "offloader:ping", "offloader:pong", "offloader:submit_job",
        "offloader:submit_job_chunk", "offloader:terminate",
      ].sort(),
    );
  });

  it("upstream's queue_status is read as upstream means it: running is a boolean", () => {
    const statuses = transport((r) => r.dir === "upstream->peer" && r.frame["type"] === "queue_status");
    expect(new Set(statuses.map((r) => typeof r.frame["running"]))).toEqual(new Set(["boolean"]));
    const busy = statuses.find((r) => r.frame["running"] === true)!;
    expect(parseMessage(offloaderInbound, busy.frame)).toMatchObject({ kind: "ok", message: { running: true, idle: false } });
  });

  it("every intent response upstream sent decodes, and a long output line and an empty error_message are accepted", () => {
    const responses = transport((r) => r.dir === "upstream->peer" && "intent_response" in r.frame);
    expect(responses.length).toBeGreaterThan(50);
    for (const r of responses) expect(intentResponseSchema.parse(r.frame)).toMatchObject(r.frame);
    const long = transport((r) => r.frame["type"] === "job_output" && String(r.frame["line"]).length > 20_000);
    expect(long.length).toBeGreaterThan(0);
    for (const r of long) expect(parseMessage(offloaderInbound, r.frame)).toMatchObject({ kind: "ok" });
    const failed = transport((r) => r.dir === "upstream->peer" && r.frame["type"] === "job_state_changed" && r.frame["status"] === "failed");
    expect(failed.map((r) => r.frame["error_message"])).toContain("");
  });

  it("the handshake payloads upstream sent as offloader decode for their intent", () => {
    const intents = new Map<string, string>();
    let checked = 0;
    for (const r of corpusFrames()) {
      if (r.dir !== "upstream->peer" || upstreamRole(r) !== "offloader" || !r.layer.startsWith("handshake")) continue;
      if (r.layer.startsWith("handshake msg1")) {
        intents.set(r.session, msg1Schema.parse(r.frame).intent);
        continue;
      }
      const intent = intents.get(r.session);
      if (intent === undefined || intent === "preview" || !isObject(r.frame)) continue;
      const schema = intent === "pair_request" ? pairRequestSchema : dashboardIdPayloadSchema;
      expect(schema.parse(r.frame), `${intent} ${JSON.stringify(r.frame)}`).toMatchObject(r.frame);
      checked++;
    }
    expect(checked).toBeGreaterThan(3);
  });

  it("the capture's broken frames get upstream's verdict from our build server's schemas", () => {
    const sent = transport((r) => r.dir === "peer->upstream" && upstreamRole(r) === "build server");
    const verdicts = sent.map((r) => ({ frame: r.frame, kind: parseMessage(receiverInbound, r.frame).kind }));
    // Unknown or missing types are ignored, as upstream ignores them.
    expect(verdicts.filter((v) => v.kind === "unknown").map((v) => v.frame)).toEqual([{ type: "hello_from_the_future", x: 1 }, { no_type: true }]);
    // Known types with a bad shape: upstream refused each (terminate, or a silent drop for cancel_job).
    expect(verdicts.filter((v) => v.kind === "malformed").map((v) => v.frame)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ type: "submit_job", job_id: "t-nosha" }),
        expect.objectContaining({ type: "submit_job", job_id: "t-bool", num_chunks: true }),
        expect.objectContaining({ type: "submit_job_chunk", job_id: "t-chk" }),
        { type: "download_artifacts" },
        { type: "cancel_job" },
      ]),
    );
    expect(verdicts.filter((v) => v.kind === "malformed")).toHaveLength(5);
    // Pings without a nonce or with a string one are answered upstream, so they decode here.
    expect(parseMessage(receiverInbound, { type: "ping" })).toMatchObject({ kind: "ok", message: { nonce: null } });
    expect(parseMessage(receiverInbound, { type: "ping", nonce: "abc" })).toMatchObject({ kind: "ok", message: { nonce: "abc" } });
  });
});

/** Upstream's field types per frame type, from the frames upstream itself sent. */
function upstreamShapes(): Map<string, { types: Map<string, Set<string>>; always: Set<string> }> {
  const shapes = new Map<string, { types: Map<string, Set<string>>; always: Set<string> }>();
  for (const r of transport((r) => r.dir === "upstream->peer" && typeof r.frame["type"] === "string")) {
    const type = String(r.frame["type"]);
    let shape = shapes.get(type);
    if (shape === undefined) {
      shape = { types: new Map(), always: new Set(Object.keys(r.frame)) };
      shapes.set(type, shape);
    }
    for (const key of [...shape.always]) if (!(key in r.frame)) shape.always.delete(key);
    for (const [key, value] of Object.entries(r.frame)) {
      const set = shape.types.get(key) ?? new Set<string>();
      set.add(jsonType(value));
      shape.types.set(key, set);
    }
  }
  return shapes;
}

describe.skipIf(corpusMissing())("our frames in the capture's scenarios", () => {
  afterEach(() => { vi.restoreAllMocks(); });

  it("have upstream's fields with upstream's JSON types, in both roles", async () => {
    const decoder = new TextDecoder();
    // Every frame either of our builders sends, read as it goes out (sendChunks reuses its frame
    // buffer once sendEncoded returns); the real send still happens.
    const outgoing: Frame[] = [];
    const send = Object.getOwnPropertyDescriptor(SecureChannel.prototype, "sendEncoded")!.value as (this: SecureChannel, json: Uint8Array) => boolean;
    vi.spyOn(SecureChannel.prototype, "sendEncoded").mockImplementation(function (this: SecureChannel, json: Uint8Array) {
      outgoing.push(JSON.parse(decoder.decode(json)) as Frame);
      return send.call(this, json);
    });
    const frames = (): Frame[] => outgoing;

    // Our build server (a scripted queue, stand-in builds) and our offloader, paired on loopback.
    process.env.ESPHOME_STANDIN_COMPILE_SECONDS = "0";
    const serverPaths = resolvePaths({ configDir: await tempDir() });
    const serverBus = new EventBus();
    const runner = new ScriptedRunner();
    const queue = new FirmwareQueue({ bus: serverBus, paths: serverPaths, runner });
    await queue.start();
    const timings = { heartbeatIntervalMs: 50, heartbeatTimeoutMs: 5000 };
    const receiver = new Receiver({
      bus: serverBus, queue, paths: serverPaths,
      identity: new IdentityStore({ keyFile: serverPaths.peerLinkKeyFile, idFile: serverPaths.identityFile }),
      host: "127.0.0.1", port: 0, label: () => "Desktop", esphomeVersion: () => "2026.11.0", defaultEnabled: true, timings,
    });
    await receiver.start();
    const dir = await tempDir();
    await writeFile(path.join(dir, "kitchen.yaml"), DEVICE_YAML("kitchen"));
    await writeFile(path.join(dir, "secrets.yaml"), "wifi_ssid: a\nwifi_password: b\n");
    const paths = resolvePaths({ configDir: dir });
    const bus = new EventBus();
    const identity = new IdentityStore({ keyFile: paths.peerLinkKeyFile, idFile: paths.identityFile });
    const offloader = new Offloader({ bus, paths, identity, label: () => "Pi", timings });
    await offloader.start();
    receiver.setPairingWindow("t", true);
    const preview = await offloader.previewPair("127.0.0.1", receiver.port!);
    await offloader.requestPair("127.0.0.1", receiver.port!, preview.pin_sha256);
    receiver.approve((await identity.load()).dashboard_id);
    await waitFor(() => offloader.session(preview.pin_sha256)?.queueStatus?.idle === true, 5000, "a connected, idle build server");
    const session = offloader.session(preview.pin_sha256)!;

    // A compile, its output and its artifacts.
    const bundle = await standInBundle(dir);
    const compiled = watchJob(session, "0123456789ab");
    const cancelled = watchJob(session, "ba9876543210");
    expect(await session.submitJob("0123456789ab", "compile", "kitchen.yaml", bundle, "kitchen", "kitchen")).toEqual({ accepted: true });
    const run = await runner.next();
    run.line("INFO Compiling\n");
    execFileSync(STAND_IN, ["--dashboard", "compile", serverPaths.jobYaml(run.job)], { env: { ...process.env, ...esphomeEnv(serverPaths.jobDataDir(run.job)) }, stdio: "ignore" });
    run.succeed();
    await waitFor(() => compiled.statuses().includes("completed"), 10_000, "the compile");
    expect((await session.downloadArtifacts("0123456789ab")).length).toBeGreaterThan(0);
    // A cancel of a running job, and heartbeats both ways.
    expect(await session.submitJob("ba9876543210", "compile", "kitchen.yaml", bundle, "kitchen", "kitchen")).toEqual({ accepted: true });
    await runner.next();
    session.cancelJob("ba9876543210");
    await waitFor(() => cancelled.statuses().includes("cancelled"), 10_000, "the cancel");
    await waitFor(() => frames().filter((f) => f.type === "pong").length >= 2, 5000, "pongs both ways");
    await offloader.stop();
    await waitFor(() => frames().some((f) => f.type === "terminate"), 5000, "the terminate");
    const sent = frames();
    await receiver.stop();
    await queue.stop();

    const shapes = upstreamShapes();
    const seen = new Set<string>();
    for (const frame of sent) {
      const type = String(frame["type"]);
      const shape = shapes.get(type);
      expect(shape, `upstream never sends ${type}`).toBeDefined();
      if (shape === undefined) continue;
      seen.add(type);
      for (const key of shape.always) expect(frame, `${type} lacks ${key}`).toHaveProperty(key);
      for (const [key, value] of Object.entries(frame)) {
        expect(shape.types.get(key), `${type}.${key}: upstream has no such field`).toBeDefined();
        expect([...(shape.types.get(key) ?? [])], `${type}.${key} is ${jsonType(value)} here`).toContain(jsonType(value));
      }
    }
    expect([...seen].sort()).toEqual(
      [
        "artifacts_chunk", "artifacts_end", "artifacts_start", "cancel_job", "download_artifacts", "job_output", "job_state_changed",
        "ping", "pong", "queue_status", "submit_job", "submit_job_ack", "submit_job_chunk", "terminate",
      ].sort(),
    );
    // Our build server says `queued` before `running`, as upstream does.
    const states = sent.filter((f) => f.type === "job_state_changed" && f.job_id === "0123456789ab").map((f) => f.status);
    expect(states).toEqual(["queued", "running", "completed"]);
  });
});
