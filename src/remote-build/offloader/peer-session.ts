/**
 * One live session with a build server, from the offloader's side: submits
 * bundles and waits for their acknowledgement, cancels, downloads artifacts
 * (checked chunk by chunk), routes each job's frames to its `RemoteJob`
 * handle (`track`; a frame of a job nobody tracks is dropped), and reports
 * the build server's queue status on the bus.
 */
import { createHash } from "node:crypto";
import type { PeerQueueStatus } from "../../domain/job.ts";
import { BuilderError, ErrorCode, errorMessage, peerLinkCode } from "../../errors.ts";
import type { EventBus } from "../../events.ts";
import type { SecureChannel } from "../transport/channel.ts";
import { ARTIFACTS_MAX_BYTES, ChunkAssembler, chunkCount, readCanonicalChunkFrame, sendChunks, isAssemblyError } from "../transport/chunks.ts";
import type { IntentResponse, OffloaderInbound, OffloaderOutbound } from "../transport/messages.ts";
import { RemoteJob } from "./remote-job.ts";

export const SUBMIT_ACK_TIMEOUT_MS = 60_000;

export type AckResult = { accepted: true } | { accepted: false; reason: string };

interface Download {
  assembler: ChunkAssembler | null;
  /** The verified tarball, once its last chunk came; handed over at `artifacts_end`. */
  result: Buffer | null;
  resolve: (bytes: Buffer) => void;
  reject: (err: Error) => void;
}

/** One live session with a build server. */
export class PeerSession {
  readonly pin: string;
  readonly channel: SecureChannel<OffloaderOutbound>;
  readonly esphomeVersion: string;
  /** The build server advertised `reset_build_env_supported: true`. */
  readonly resetBuildEnvSupported: boolean;
  readonly #bus: EventBus;
  readonly #acks = new Map<string, { resolve: (r: AckResult) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  readonly #downloads = new Map<string, Download>();
  /** The handles of jobs submitted in this session, by job id: their frames go there. */
  readonly #jobs = new Map<string, RemoteJob>();
  readonly #ackTimeoutMs: number;
  queueStatus: PeerQueueStatus | null = null;
  lastPong: number = Date.now();

  constructor(pin: string, channel: SecureChannel<OffloaderOutbound>, response: IntentResponse, bus: EventBus, ackTimeoutMs: number) {
    this.pin = pin;
    this.channel = channel;
    this.esphomeVersion = response.esphome_version;
    this.resetBuildEnvSupported = response.reset_build_env_supported;
    this.#bus = bus;
    this.#ackTimeoutMs = ackTimeoutMs;
  }

  /**
   * Asks the build server to wipe the build environment our builds use there
   * (`reset_build_env`); its progress and end come as `job_state_changed` and
   * `job_output` of `jobId`, like a build's.
   */
  resetBuildEnv(jobId: string): Promise<AckResult> {
    const ack = this.#awaitAck(jobId);
    if (!this.channel.send({ type: "reset_build_env", job_id: jobId })) this.#failAck(jobId, "the session closed before the request was sent");
    return ack;
  }

  #awaitAck(jobId: string): Promise<AckResult> {
    return new Promise<AckResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#acks.delete(jobId);
        reject(new BuilderError(ErrorCode.Timeout, `the build server did not acknowledge the request within ${this.#ackTimeoutMs / 1000} s`));
      }, this.#ackTimeoutMs);
      this.#acks.set(jobId, { resolve, reject, timer });
    });
  }

  /**
   * Sends a bundle for `target` and waits for the build server's
   * acknowledgement. `esphomeVersion` is ours (`target_esphome_version`, left
   * out when unknown): a build server that installs versions builds with it.
   */
  async submitJob(jobId: string, target: "compile" | "clean", configurationFilename: string, bundle: Buffer, deviceName = "", deviceFriendlyName = deviceName, esphomeVersion = ""): Promise<AckResult> {
    const ack = new Promise<AckResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#acks.delete(jobId);
        reject(new BuilderError(ErrorCode.Timeout, `the build server did not acknowledge the job within ${this.#ackTimeoutMs / 1000} s`));
      }, this.#ackTimeoutMs);
      this.#acks.set(jobId, { resolve, reject, timer });
    });
    const sent = this.channel.send({
      type: "submit_job",
      job_id: jobId,
      configuration_filename: configurationFilename,
      target,
      total_bundle_bytes: bundle.length,
      num_chunks: chunkCount(bundle.length),
      bundle_sha256: createHash("sha256").update(bundle).digest("hex"),
      device_name: deviceName.slice(0, 256),
      device_friendly_name: deviceFriendlyName.slice(0, 256),
      ...(esphomeVersion === "" ? {} : { target_esphome_version: esphomeVersion }),
    });
    if (!sent) this.#failAck(jobId, "the session closed before the job was sent");
    else await sendChunks(this.channel, "submit_job_chunk", jobId, bundle);
    return ack;
  }

  /**
   * A handle for `jobId` that receives the job's output, state changes and
   * outcome from now on; take it before submitting, so no early frame is
   * missed, and `close` it when done.
   */
  track(jobId: string): RemoteJob {
    const job = new RemoteJob(jobId, {
      cancel: (id) => this.cancelJob(id),
      download: (id, files) => this.downloadArtifacts(id, files),
      release: (handle) => { if (this.#jobs.get(handle.jobId) === handle) this.#jobs.delete(handle.jobId); },
    });
    this.#jobs.set(jobId, job);
    return job;
  }

  /** Asks the build server to cancel; false when the session is gone. */
  cancelJob(jobId: string): boolean {
    return this.channel.send({ type: "cancel_job", job_id: jobId });
  }

  /**
   * Downloads a completed job's artifacts tarball, checked against its SHA-256.
   * `files` asks for less (a build server that does not know the field sends all).
   */
  downloadArtifacts(jobId: string, files?: readonly string[]): Promise<Buffer> {
    if (this.#downloads.has(jobId)) return Promise.reject(new BuilderError(ErrorCode.DuplicateDownload, "a download of this job is already running"));
    return new Promise<Buffer>((resolve, reject) => {
      this.#downloads.set(jobId, { assembler: null, result: null, resolve, reject });
      if (!this.channel.send({ type: "download_artifacts", job_id: jobId, ...(files === undefined ? {} : { files: [...files] }) })) {
        this.#downloads.delete(jobId);
        reject(new BuilderError(ErrorCode.SessionLost, "the session closed before the download started"));
      }
    });
  }

  /**
   * The fast way for an `artifacts_chunk` of a running download (hooked in
   * as the channel's raw-frame handler): a frame in the canonical form goes
   * straight into the assembler, without JSON.parse and the schema. False
   * (nothing done) for anything else, which then goes through `handle`.
   */
  takeChunkFrame(plain: Buffer): boolean {
    const view = readCanonicalChunkFrame(plain);
    if (view?.type !== "artifacts_chunk") return false;
    const d = this.#downloads.get(view.jobId);
    if (d?.assembler === null || d === undefined || d.result !== null) return false;
    let result: Buffer | null | undefined;
    try {
      result = d.assembler.pushCanonical(view);
    } catch (err) {
      this.#refuseChunk(view.jobId, d, err);
      return true;
    }
    if (result === undefined) return false;
    d.result = result;
    return true;
  }

  /** A chunk broke the download: it fails with the assembler's code. */
  #refuseChunk(jobId: string, d: Download, err: unknown): void {
    this.#downloads.delete(jobId);
    d.reject(new BuilderError(isAssemblyError(err) ? peerLinkCode(err.code) : ErrorCode.Malformed, `artifacts refused: ${errorMessage(err)}`));
  }

  #failAck(jobId: string, message: string): void {
    const pending = this.#acks.get(jobId);
    if (pending === undefined) return;
    clearTimeout(pending.timer);
    this.#acks.delete(jobId);
    pending.reject(new BuilderError(ErrorCode.SessionLost, message));
  }

  /** The session ended: everything waiting on it fails now. */
  closed(reason: string, detail = ""): void {
    const why = detail === "" ? reason : `${reason}: ${detail}`;
    for (const job of [...this.#jobs.values()]) job.lost(why);
    this.#jobs.clear();
    for (const id of [...this.#acks.keys()]) this.#failAck(id, `peer-link session lost (${reason})`);
    for (const [id, d] of this.#downloads) {
      this.#downloads.delete(id);
      d.reject(new BuilderError(ErrorCode.SessionLost, `peer-link session lost (${reason}) during the download`));
    }
  }

  /** Handles one parsed frame from the build server. */
  handle(type: keyof OffloaderInbound, message: unknown): void {
    switch (type) {
      case "ping":
        this.channel.send({ type: "pong", nonce: (message as OffloaderInbound["ping"]).nonce });
        return;
      case "pong":
        this.lastPong = Date.now();
        return;
      case "terminate":
        this.channel.peerTerminated((message as OffloaderInbound["terminate"]).reason);
        return;
      case "queue_status": {
        const m = message as OffloaderInbound["queue_status"];
        this.queueStatus = { idle: m.idle, running: m.running, queue_depth: m.queue_depth };
        this.#bus.emit("offloader_queue_status_changed", { pin_sha256: this.pin, ...this.queueStatus });
        return;
      }
      case "submit_job_ack":
      case "reset_build_env_ack": {
        const m = message as OffloaderInbound["submit_job_ack" | "reset_build_env_ack"];
        const pending = this.#acks.get(m.job_id);
        if (pending === undefined) return;
        clearTimeout(pending.timer);
        this.#acks.delete(m.job_id);
        pending.resolve(m.accepted ? { accepted: true } : { accepted: false, reason: m.reason ?? "rejected" });
        return;
      }
      case "job_state_changed": {
        const m = message as OffloaderInbound["job_state_changed"];
        this.#jobs.get(m.job_id)?.state(m.status, m.error_message, m.failure_reason);
        return;
      }
      case "job_output": {
        const m = message as OffloaderInbound["job_output"];
        this.#jobs.get(m.job_id)?.output(m.line, m.stream);
        return;
      }
      case "artifacts_start": {
        const m = message as OffloaderInbound["artifacts_start"];
        const d = this.#downloads.get(m.job_id);
        if (d === undefined || d.assembler !== null) return;
        try {
          d.assembler = new ChunkAssembler({ totalBytes: m.total_bytes, numChunks: m.num_chunks, sha256Hex: m.artifacts_sha256, maxBytes: ARTIFACTS_MAX_BYTES });
        } catch (err) {
          this.#downloads.delete(m.job_id);
          d.reject(new BuilderError(isAssemblyError(err) ? peerLinkCode(err.code) : ErrorCode.InvalidHeader, `artifacts refused: ${errorMessage(err)}`));
        }
        return;
      }
      case "artifacts_chunk": {
        const m = message as OffloaderInbound["artifacts_chunk"];
        const d = this.#downloads.get(m.job_id);
        if (d?.assembler === null || d === undefined || d.result !== null) return;
        try {
          // Verified on the last chunk; the download ends with `artifacts_end`, as upstream's does, so
          // that frame can never be taken for the end of a next download of the same job.
          d.result = d.assembler.push(m);
        } catch (err) {
          this.#refuseChunk(m.job_id, d, err);
        }
        return;
      }
      case "artifacts_end": {
        const m = message as OffloaderInbound["artifacts_end"];
        const d = this.#downloads.get(m.job_id);
        if (d === undefined) return;
        this.#downloads.delete(m.job_id);
        if (m.accepted && d.result !== null) {
          d.resolve(d.result);
          return;
        }
        const detail = m.detail === undefined || m.detail === "" ? "" : `: ${m.detail}`;
        d.reject(new BuilderError(peerLinkCode(m.reason ?? "incomplete"), m.accepted ? "the build server ended the download before all chunks arrived" : `the build server could not send the artifacts (${m.reason ?? "no reason"}${detail})`));
        return;
      }
    }
  }
}
