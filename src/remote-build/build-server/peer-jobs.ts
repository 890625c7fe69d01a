/**
 * A build server's work for its approved peers, one session at a time:
 * `submit_job` and its chunks → extraction into `.remote_builds/<pin>/<device>/`
 * → a job on this builder's own queue; `cancel_job`; the job's state and
 * output back to the peer; `download_artifacts` of a completed compile.
 *
 * Everything is keyed by the peer's pin (the key it proved in the
 * handshake), never by the dashboard_id it chose: a job carries
 * `remote_peer = <pin>`, and every lookup is by (pin, the peer's job id), so
 * no peer can see, cancel, supersede or download another's job.
 */
import path from "node:path";
import { errorMessage } from "../../errors.ts";
import { validateConfigurationName } from "../../esphome/configuration.ts";
import type { FirmwareJob } from "../../firmware/job.ts";
import type { FirmwareQueue } from "../../firmware/queue.ts";
import { getLogger } from "../../logger.ts";
import { resolvePaths, type Paths } from "../../paths.ts";
import { ArtifactCache } from "./artifact-cache.ts";
import { packArtifacts, type PackedArtifacts } from "../archives/artifacts.ts";
import { bundleDirFor, extractBundle } from "../archives/bundle.ts";
import type { SecureChannel } from "../transport/channel.ts";
import { ARTIFACTS_MAX_BYTES, BUNDLE_MAX_BYTES, ChunkAssembler, chunkCount, sendChunks, isAssemblyError } from "../transport/chunks.ts";
import { OutputRelay } from "./output-relay.ts";
import type { ReceiverInbound, BuildServerOutbound } from "../transport/messages.ts";
import type { ServeDecision } from "../../esphome/version-policy.ts";

const log = getLogger("receiver");

/** How long a pack made at completion waits for its download. */
export const PACKED_TTL_MS = 30 * 60 * 1000;

interface InflightSubmit {
  header: ReceiverInbound["submit_job"];
  assembler: ChunkAssembler;
}

/** What a peer session carries for its jobs. */
export interface JobSession {
  readonly peer: { readonly pin_sha256: string; readonly label: string };
  readonly channel: SecureChannel<BuildServerOutbound>;
  submit: InflightSubmit | null;
  downloading: boolean;
  /** Extractions run one at a time per peer. */
  extracting: Promise<void>;
  /** Offloader job ids whose bundle is still being extracted, and whether a cancel came for them. */
  readonly pendingJobs: Map<string, { cancelled: boolean }>;
}

/** The job part of a new session. */
export function newJobSession(): Pick<JobSession, "submit" | "downloading" | "extracting" | "pendingJobs"> {
  return { submit: null, downloading: false, extracting: Promise.resolve(), pendingJobs: new Map() };
}

export interface PeerJobsDeps {
  queue: FirmwareQueue;
  paths: Paths;
  /** The open sessions of one peer (by pin). */
  sessionsOf: (peerPin: string) => Iterable<JobSession>;
  /** What a compile for ESPHome `target` ("" unsaid) gets here: this builder's version policy. */
  serve?: (target: string) => ServeDecision;
}

export class PeerJobs {
  readonly #deps: PeerJobsDeps;

  /** Output of peers' jobs, back to them with a bounded backlog. */
  readonly #output: OutputRelay;

  /** Artifacts packed as each peer's compile completes, ready for its download. */
  readonly #packed = new ArtifactCache({ maxBytes: ARTIFACTS_MAX_BYTES, ttlMs: PACKED_TTL_MS });

  constructor(deps: PeerJobsDeps) {
    this.#deps = deps;
    this.#output = new OutputRelay({
      target: (jobId) => {
        const job = deps.queue.get(jobId);
        return job === undefined || job.remote_peer === "" ? null : { peer: job.remote_peer, remoteJobId: job.remote_job_id };
      },
      channels: (pin) => [...deps.sessionsOf(pin)].map((s) => s.channel),
    });
  }

  /** One line of a peer's job: to that peer's sessions, skipped (and counted) while they fall behind. */
  jobOutput(jobId: string, line: string): void {
    this.#output.line(jobId, line);
  }

  /** Forgets per-job output state and packed artifacts (the receiver stops). */
  clear(): void {
    this.#output.clear();
    this.#packed.clear();
  }

  /** Packs a peer's job from its build folder (`only`: our `download_artifacts.files` extension). */
  #pack(job: FirmwareJob, only?: ReadonlySet<string>): Promise<PackedArtifacts> {
    const yaml = this.#deps.paths.jobYaml(job);
    const jobPaths = resolvePaths({ configDir: path.dirname(yaml), dataDir: this.#deps.paths.jobDataDir(job) });
    return packArtifacts(jobPaths, path.basename(yaml), only === undefined ? {} : { only });
  }

  #ack(session: JobSession, jobId: string, reason?: string): void {
    session.channel.send(reason === undefined ? { type: "submit_job_ack", job_id: jobId, accepted: true } : { type: "submit_job_ack", job_id: jobId, accepted: false, reason });
  }

  /** A `submit_job` header: checked, then chunks are awaited. */
  submitHeader(session: JobSession, header: ReceiverInbound["submit_job"]): void {
    if (session.submit !== null || session.pendingJobs.has(header.job_id)) {
      this.#ack(session, header.job_id, "duplicate_submit");
      return;
    }
    if (header.target === "upload") {
      this.#ack(session, header.job_id, "upload_unsupported");
      return;
    }
    if (header.target !== "compile" && header.target !== "clean") {
      this.#ack(session, header.job_id, "invalid_header");
      return;
    }
    try {
      validateConfigurationName(header.configuration_filename);
    } catch {
      this.#ack(session, header.job_id, "invalid_header");
      return;
    }
    try {
      const assembler = new ChunkAssembler({
        totalBytes: header.total_bundle_bytes,
        numChunks: header.num_chunks,
        sha256Hex: header.bundle_sha256,
        maxBytes: BUNDLE_MAX_BYTES,
      });
      session.submit = { header, assembler };
    } catch (err) {
      this.#ack(session, header.job_id, isAssemblyError(err) ? err.code : "invalid_header");
    }
  }

  /** One `submit_job_chunk`; the last one acks, then extraction and queueing run in order per session. */
  submitChunk(session: JobSession, chunk: ReceiverInbound["submit_job_chunk"]): void {
    const inflight = session.submit;
    if (inflight === null) {
      this.#ack(session, chunk.job_id, "no_inflight_submit");
      return;
    }
    if (inflight.header.job_id !== chunk.job_id) {
      this.#ack(session, chunk.job_id, "job_id_mismatch");
      return;
    }
    let bundle: Buffer | null;
    try {
      bundle = inflight.assembler.push(chunk);
    } catch (err) {
      session.submit = null;
      const code = isAssemblyError(err) ? err.code : "invalid_header";
      this.#ack(session, chunk.job_id, code);
      // As upstream: these end the session, the other refusals do not (WIRE-FACTS §5).
      if (code === "out_of_order" || code === "post_completion" || code === "chunk_count_mismatch" || code === "chunk_decode_failed") {
        session.channel.terminate("malformed_frame", `bundle chunk: ${code}`);
      }
      return;
    }
    if (bundle === null) return;
    session.submit = null;
    const { header } = inflight;
    this.#ack(session, header.job_id);
    const state = { cancelled: false };
    session.pendingJobs.set(header.job_id, state);
    session.extracting = session.extracting.then(() => this.#startRemoteJob(session, header, bundle, state));
  }

  async #startRemoteJob(session: JobSession, header: ReceiverInbound["submit_job"], bundle: Buffer, state: { cancelled: boolean }): Promise<void> {
    const fail = (message: string, failureReason?: string): void => {
      session.channel.send({ type: "job_state_changed", job_id: header.job_id, status: "failed", error_message: message, ...(failureReason === undefined ? {} : { failure_reason: failureReason }) });
    };
    // The version policy first: a job it refuses costs no extraction, and the peer builds it itself.
    const serve: ServeDecision = header.target === "compile" ? (this.#deps.serve?.(header.target_esphome_version) ?? { kind: "installed", note: "" }) : { kind: "installed", note: "" };
    if (serve.kind === "refuse") {
      log.info(`refused ${session.peer.label}'s job ${header.job_id}: ${serve.reason}`);
      session.pendingJobs.delete(header.job_id);
      fail(serve.reason, "provision");
      return;
    }
    if (serve.kind === "installed" && serve.note !== "") {
      session.channel.send({ type: "job_output", job_id: header.job_id, stream: "stdout", line: `*** ${serve.note} ***\n` });
    }
    // Read through a call: a cancel_job may set it while this awaits.
    const cancelled = (): boolean => state.cancelled;
    // Newer upstream's wording: "receiver could not process the bundle: <extract_failed|queue_rejected>".
    let stage = "extract_failed";
    try {
      const stem = header.configuration_filename.replace(/\.ya?ml$/i, "");
      const dir = bundleDirFor(this.#deps.paths.remoteBuildsDir, session.peer.pin_sha256, stem);
      const extracted = await extractBundle(bundle, dir);
      if (cancelled()) {
        session.channel.send({ type: "job_state_changed", job_id: header.job_id, status: "cancelled", error_message: "cancelled before the build started" });
        return;
      }
      const configuration = path.relative(this.#deps.paths.remoteBuildsDir, path.join(dir, extracted.configuration)).split(path.sep).join("/");
      stage = "queue_rejected";
      const job = await this.#deps.queue.enqueue({
        configuration,
        job_type: header.target === "clean" ? "clean" : "compile",
        remote_peer: session.peer.pin_sha256,
        remote_job_id: header.job_id,
        remote_peer_label: session.peer.label,
        ...(serve.kind === "provision" ? { target_esphome_version: serve.version } : {}),
      });
      // A cancel that came while the job was being written down applies now.
      if (cancelled()) this.#cancelQueued(job.job_id, header.job_id);
    } catch (err) {
      fail(`receiver could not process the bundle: ${stage} (${errorMessage(err)})`);
    } finally {
      session.pendingJobs.delete(header.job_id);
    }
  }

  /**
   * A peer's job by its own job id. Jobs belong to the pin that sent them
   * (never to a dashboard_id, which a peer chooses and which a later peer
   * may be approved under), so no peer can see, cancel or download another's.
   */
  #findRemoteJob(peerPin: string, remoteJobId: string): FirmwareJob | undefined {
    return this.#deps.queue.list().find((j) => j.remote_peer === peerPin && j.remote_job_id === remoteJobId);
  }


  /** `cancel_job`: only ever this peer's job; unknown or finished ids are dropped silently. */
  cancel(session: JobSession, remoteJobId: string): void {
    const pending = session.pendingJobs.get(remoteJobId);
    if (pending !== undefined) {
      pending.cancelled = true;
      return;
    }
    if (session.submit?.header.job_id === remoteJobId) {
      session.submit = null;
      session.channel.send({ type: "job_state_changed", job_id: remoteJobId, status: "cancelled", error_message: "cancelled before the build started" });
      return;
    }
    const job = this.#findRemoteJob(session.peer.pin_sha256, remoteJobId);
    if (job === undefined || job.status === "completed" || job.status === "failed" || job.status === "cancelled") return;
    this.#cancelQueued(job.job_id, remoteJobId);
  }

  #cancelQueued(jobId: string, remoteJobId: string): void {
    try {
      this.#deps.queue.cancel(jobId);
    } catch (err) {
      log.debug(`cancel of ${remoteJobId} ignored: ${errorMessage(err)}`);
    }
  }

  /**
   * `reset_build_env`: wipes this peer's own folders here (its bundles and
   * build caches under `.remote_builds/<pin>/`, nobody else's) as a
   * `clean_all` job whose state and output go back like a build's. Refused
   * (`busy`) while any of this peer's jobs is active or a transfer runs.
   */
  async resetBuildEnv(session: JobSession, remoteJobId: string): Promise<void> {
    const ack = (reason?: string): void => {
      session.channel.send(reason === undefined ? { type: "reset_build_env_ack", job_id: remoteJobId, accepted: true } : { type: "reset_build_env_ack", job_id: remoteJobId, accepted: false, reason });
    };
    const pin = session.peer.pin_sha256;
    const active = this.#deps.queue.list().some((j) => j.remote_peer === pin && j.status !== "completed" && j.status !== "failed" && j.status !== "cancelled");
    const transferring = [...this.#deps.sessionsOf(pin)].some((s) => s.submit !== null || s.pendingJobs.size > 0 || s.downloading);
    if (active || transferring) {
      ack("busy");
      return;
    }
    try {
      await this.#deps.queue.enqueue({ configuration: pin, job_type: "clean_all", remote_peer: pin, remote_job_id: remoteJobId, remote_peer_label: session.peer.label });
    } catch (err) {
      log.warning(`reset_build_env of ${session.peer.label} refused: ${errorMessage(err)}`);
      ack("queue_rejected");
      return;
    }
    ack();
  }

  /** A peer's job changed state: tell that peer's sessions. */
  jobStateChanged(job: FirmwareJob, status: "queued" | "running" | "completed" | "failed" | "cancelled"): void {
    // The peer hears of output lines it missed before the final state.
    if (status !== "queued" && status !== "running") this.#output.end(job.job_id);
    if (job.remote_peer === "") return;
    // Resubmitted under the same id (the offloader lost its session and dispatched the
    // compile again): the older run's end is not the peer's job's end.
    if (status !== "running" && this.#sameIdActive(job)) return;
    const error = status === "failed" || status === "cancelled" ? (job.error ?? "") : "";
    const reason = status === "failed" && job.failure_reason !== "" ? { failure_reason: job.failure_reason } : {};
    for (const session of this.#deps.sessionsOf(job.remote_peer)) session.channel.send({ type: "job_state_changed", job_id: job.remote_job_id, status, error_message: error, ...reason });
    // The download follows at once: pack now, after the frame is out. A new job for the device drops the old pack.
    const device = `${job.remote_peer}/${job.configuration}`;
    if (status === "queued") this.#packed.forgetDevice(device);
    if (status === "completed" && job.job_type === "compile") this.#packed.start(job.job_id, device, () => this.#pack(job));
  }

  #sameIdActive(job: FirmwareJob): boolean {
    return this.#deps.queue
      .list()
      .some((j) => j.job_id !== job.job_id && j.remote_peer === job.remote_peer && j.remote_job_id === job.remote_job_id && j.status !== "completed" && j.status !== "failed" && j.status !== "cancelled");
  }

  /** `download_artifacts` of one of this peer's completed compiles. */
  async download(session: JobSession, remoteJobId: string, only: ReadonlySet<string> | undefined): Promise<void> {
    const end = (reason?: string, detail?: string): void => {
      session.channel.send(
        reason === undefined
          ? { type: "artifacts_end", job_id: remoteJobId, accepted: true }
          : { type: "artifacts_end", job_id: remoteJobId, accepted: false, reason, ...(detail === undefined ? {} : { detail: detail.slice(0, 1024) }) },
      );
    };
    if (session.downloading) {
      end("duplicate_download");
      return;
    }
    const job = this.#findRemoteJob(session.peer.pin_sha256, remoteJobId);
    if (job === undefined) {
      end("unknown_job");
      return;
    }
    if (job.status !== "completed" || job.job_type !== "compile") {
      end("job_not_completed");
      return;
    }
    session.downloading = true;
    try {
      let packed;
      try {
        // The pack made at completion when there is one (a failed one is made again, to say why).
        const early = only === undefined ? this.#packed.get(job.job_id) : undefined;
        packed = early === undefined ? await this.#pack(job, only) : await early.catch(() => this.#pack(job, only));
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        end(code === "build_dir_missing" ? "build_dir_missing" : "pack_failed", errorMessage(err));
        return;
      }
      session.channel.send({
        type: "artifacts_start",
        job_id: remoteJobId,
        total_bytes: packed.tarball.length,
        num_chunks: chunkCount(packed.tarball.length),
        artifacts_sha256: packed.sha256,
        firmware_offset: packed.firmwareOffset,
      });
      if (await sendChunks(session.channel, "artifacts_chunk", remoteJobId, packed.tarball)) end();
    } finally {
      session.downloading = false;
    }
  }
}
