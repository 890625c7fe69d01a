/**
 * Upstream's real `esphome bundle` tarballs
 * (../shared/interop/upstream-2026-05-31/bundle-*.tar.gz), sent to our build
 * server exactly as upstream's offloader sent them (its recorded `submit_job`
 * and `submit_job_chunk` frames, replayed on a real session): each is
 * accepted, queued (`queued` first), compiled (by the stand-in CLI, as for
 * every chip platform here) and its artifacts can be downloaded.
 */
import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { EventBus } from "../../../src/events.ts";
import { LocalRunner } from "../../../src/firmware/local-runner.ts";
import { FirmwareQueue } from "../../../src/firmware/queue.ts";
import { resolvePaths } from "../../../src/paths.ts";
import { readArtifacts } from "../../../src/remote-build/archives/artifacts.ts";
import { IdentityStore } from "../../../src/remote-build/transport/identity.ts";
import { Offloader } from "../../../src/remote-build/offloader/offloader.ts";
import { Receiver } from "../../../src/remote-build/build-server/receiver.ts";
import { STAND_IN } from "../../helpers/builder.ts";
import { bundleHeader, corpusFile, corpusFrames, corpusMissing } from "../../helpers/corpus.ts";
import { watchJob } from "../../helpers/remote-job.ts";
import { tempDir, waitFor } from "../../helpers/tmp.ts";

const BUNDLES = [
  ["bundle-kitchen-esp32.tar.gz", "kitchen"],
  ["bundle-pico-rp2040.tar.gz", "pico"],
  ["bundle-node8266-esp8266.tar.gz", "node8266"],
] as const;

process.env.ESPHOME_STANDIN_COMPILE_SECONDS = "0";
process.env.ESPHOME_STANDIN_FAIL = "";

describe.skipIf(corpusMissing())("upstream's bundles on our build server", () => {
  it.each(BUNDLES)("%s: accepted, queued, compiled, and its artifacts downloadable", async (file, device) => {
    const header = bundleHeader(file);
    const bundle = await readFile(corpusFile(file));
    expect(bundle.length).toBe(header.total_bundle_bytes);
    // Upstream's own frames for this bundle (one chunk: kept whole in the capture).
    const frames = corpusFrames()
      .filter((r) => r.dir === "upstream->peer" && (r.frame as { job_id?: unknown } | null)?.job_id === header.job_id)
      .map((r) => r.frame as Record<string, unknown>)
      .filter((f) => f["type"] === "submit_job" || f["type"] === "submit_job_chunk");
    expect(frames.map((f) => f["type"])).toEqual(["submit_job", "submit_job_chunk"]);
    expect(Buffer.from(String(frames[1]!["data_b64"]), "base64")).toEqual(bundle);

    const serverPaths = resolvePaths({ configDir: await tempDir() });
    const serverBus = new EventBus();
    const queue = new FirmwareQueue({ bus: serverBus, paths: serverPaths, runner: new LocalRunner({ esphome: STAND_IN, paths: serverPaths }) });
    await queue.start();
    const receiver = new Receiver({
      bus: serverBus, queue, paths: serverPaths,
      identity: new IdentityStore({ keyFile: serverPaths.peerLinkKeyFile, idFile: serverPaths.identityFile }),
      host: "127.0.0.1", port: 0, label: () => "Desktop", esphomeVersion: () => "2026.11.0", defaultEnabled: true,
    });
    await receiver.start();
    const paths = resolvePaths({ configDir: await tempDir() });
    const bus = new EventBus();
    const identity = new IdentityStore({ keyFile: paths.peerLinkKeyFile, idFile: paths.identityFile });
    const offloader = new Offloader({ bus, paths, identity, label: () => "up2" });
    await offloader.start();
    try {
      receiver.setPairingWindow("t", true);
      const preview = await offloader.previewPair("127.0.0.1", receiver.port!);
      await offloader.requestPair("127.0.0.1", receiver.port!, preview.pin_sha256);
      receiver.approve((await identity.load()).dashboard_id);
      await waitFor(() => offloader.session(preview.pin_sha256) !== undefined, 5000, "a session");
      const session = offloader.session(preview.pin_sha256)!;
      const remoteJob = watchJob(session, header.job_id);
      // Upstream's captured frames as they were on the wire (the typed send is for our own).
      for (const frame of frames) session.channel.sendEncoded(Buffer.from(JSON.stringify(frame)));
      await waitFor(() => remoteJob.statuses().some((s) => s === "completed" || s === "failed"), 20_000, "the compile");
      expect(remoteJob.statuses()).toEqual(["queued", "running", "completed"]);
      const job = queue.list().find((j) => j.remote_job_id === header.job_id)!;
      // Keyed by the pin the offloader proved in the handshake.
      expect(job).toMatchObject({ status: "completed", remote_peer: (await identity.load()).pin_sha256, remote_peer_label: "up2" });
      expect(job.configuration).toMatch(new RegExp(`/${device}/${device}\\.yaml$`));
      const artifacts = await readArtifacts(await session.downloadArtifacts(header.job_id));
      expect(artifacts.storage["name"]).toBe(device);
      expect(artifacts.firmwareInBuild).toBe(`.pioenvs/${device}/firmware.bin`);
    } finally {
      await offloader.stop();
      await receiver.stop();
      await queue.stop();
    }
  });
});
