/**
 * The offloader role ("send builds"): pairing with build servers, one
 * long-lived peer-link session per approved pairing, and the calls the
 * install runner uses to build there (submit, cancel, download artifacts).
 *
 * Only approved pairings are written down. A pending request lives in memory
 * and is resolved by long-polling `pair_status`. A build server whose key
 * changed, or that no longer knows us, is never retried: the user is alerted
 * and must pair again.
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import { VERSION_POLICIES, type OffloaderAlert, type OffloaderSettings, type PairPreview, type PairingSummary, type PeerQueueStatus, type RemoteBuildProblem, type VersionPolicy } from "../api/wire.ts";
import { isVersionPolicy } from "../esphome/version-policy.ts";
import { BuilderError, ErrorCode, errorMessage, invalidArgs, notFound } from "../errors.ts";
import type { EventBus } from "../events.ts";
import { getLogger } from "../logger.ts";
import type { Paths } from "../paths.ts";
import { JsonStore } from "../store.ts";
import { initiate, PeerLinkError, type SecureChannel } from "./channel.ts";
import { ARTIFACTS_MAX_BYTES, AssemblyError, ChunkAssembler, chunkCount, sendChunks } from "./chunks.ts";
import { fingerprintEmoji, pinSchema } from "./fingerprint.ts";
import type { Identity, IdentityStore } from "./identity.ts";
import { PIN_RULE, parsePin } from "./pin.ts";
import { PAIRING_KEY_RULE, parsePairingKey } from "./transport/pairing-key-text.ts";
import { looseFileSchema, rowName, StateFileReport, type LooseFile } from "./state-files.ts";
import {
  HANDSHAKE_STEP_MS,
  HEARTBEAT_INTERVAL_MS,
  HEARTBEAT_TIMEOUT_MS,
  offloaderInbound,
  parseMessage,
  type IntentResponse,
  type OffloaderInbound,
} from "./messages.ts";

const log = getLogger("offloader");

export const SUBMIT_ACK_TIMEOUT_MS = 60_000;
/** Reasons after which a session is not reopened: the pairing is dead until re-paired. */
const ORPHAN_REASONS = new Set(["superseded", "pin_mismatch", "no_approved_peer", "revoked"]);

const storedPairingSchema = z.object({
  pin_sha256: pinSchema,
  label: z.string().max(128),
  receiver_hostname: z.string().min(1).max(255),
  receiver_port: z.number().int().min(1).max(65535),
  paired_at: z.string(),
  enabled: z.boolean().default(true),
  esphome_version: z.string().max(64).default(""),
  friendly_name: z.string().max(128).default(""),
  /** What its last intent response said: it installs the ESPHome version a build asks for. */
  auto_provision_supported: z.boolean().default(false),
  /** Its version policy, when it is a builder of ours that says. */
  version_policy: z.enum(VERSION_POLICIES).nullable().default(null),
});
export type StoredPairing = z.infer<typeof storedPairingSchema>;



export type { PeerQueueStatus };

export interface OffloaderTimings {
  stepTimeoutMs: number;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  submitAckTimeoutMs: number;
}

export interface OffloaderDeps {
  bus: EventBus;
  paths: Paths;
  identity: IdentityStore;
  label: () => string;
  /** Running as the Home Assistant add-on (`ha_addon` in what it tells build servers). */
  haAddon?: boolean;
  timings?: Partial<OffloaderTimings>;
}

/** A build server refused or failed a request: the message is for the user. */
export class RemoteBuildError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "RemoteBuildError";
    this.code = code;
  }
}

type AckResult = { accepted: true } | { accepted: false; reason: string };

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
  readonly channel: SecureChannel;
  readonly esphomeVersion: string;
  /** The build server advertised `reset_build_env_supported: true`. */
  readonly resetBuildEnvSupported: boolean;
  readonly #bus: EventBus;
  readonly #acks = new Map<string, { resolve: (r: AckResult) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  readonly #downloads = new Map<string, Download>();
  readonly #ackTimeoutMs: number;
  queueStatus: PeerQueueStatus | null = null;
  lastPong: number = Date.now();

  constructor(pin: string, channel: SecureChannel, response: IntentResponse, bus: EventBus, ackTimeoutMs: number) {
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
        reject(new RemoteBuildError("timeout", `the build server did not acknowledge the request within ${this.#ackTimeoutMs / 1000} s`));
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
        reject(new RemoteBuildError("timeout", `the build server did not acknowledge the job within ${this.#ackTimeoutMs / 1000} s`));
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

  /** Asks the build server to cancel; false when the session is gone. */
  cancelJob(jobId: string): boolean {
    return this.channel.send({ type: "cancel_job", job_id: jobId });
  }

  /**
   * Downloads a completed job's artifacts tarball, checked against its SHA-256.
   * `files` asks for less (a build server that does not know the field sends all).
   */
  downloadArtifacts(jobId: string, files?: readonly string[]): Promise<Buffer> {
    if (this.#downloads.has(jobId)) return Promise.reject(new RemoteBuildError("duplicate_download", "a download of this job is already running"));
    return new Promise<Buffer>((resolve, reject) => {
      this.#downloads.set(jobId, { assembler: null, result: null, resolve, reject });
      if (!this.channel.send({ type: "download_artifacts", job_id: jobId, ...(files === undefined ? {} : { files: [...files] }) })) {
        this.#downloads.delete(jobId);
        reject(new RemoteBuildError("session_lost", "the session closed before the download started"));
      }
    });
  }

  #failAck(jobId: string, message: string): void {
    const pending = this.#acks.get(jobId);
    if (pending === undefined) return;
    clearTimeout(pending.timer);
    this.#acks.delete(jobId);
    pending.reject(new RemoteBuildError("session_lost", message));
  }

  /** The session ended: everything waiting on it fails now. */
  closed(reason: string): void {
    for (const id of [...this.#acks.keys()]) this.#failAck(id, `peer-link session lost (${reason})`);
    for (const [id, d] of this.#downloads) {
      this.#downloads.delete(id);
      d.reject(new RemoteBuildError("session_lost", `peer-link session lost (${reason}) during the download`));
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
        this.#bus.emit("offloader_job_state_changed", { pin_sha256: this.pin, job_id: m.job_id, status: m.status, error_message: m.error_message, failure_reason: m.failure_reason });
        return;
      }
      case "job_output": {
        const m = message as OffloaderInbound["job_output"];
        this.#bus.emit("offloader_job_output", { pin_sha256: this.pin, job_id: m.job_id, stream: m.stream, line: m.line });
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
          d.reject(new RemoteBuildError(err instanceof AssemblyError ? err.code : "invalid_header", `artifacts refused: ${errorMessage(err)}`));
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
          this.#downloads.delete(m.job_id);
          d.reject(new RemoteBuildError(err instanceof AssemblyError ? err.code : "malformed", `artifacts refused: ${errorMessage(err)}`));
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
        d.reject(new RemoteBuildError(m.reason ?? "incomplete", m.accepted ? "the build server ended the download before all chunks arrived" : `the build server could not send the artifacts (${m.reason ?? "no reason"}${detail})`));
        return;
      }
    }
  }
}

interface PairingState {
  stored: StoredPairing;
  status: "pending" | "approved";
  session: PeerSession | null;
  lastError: string;
  /** Stops the session loop (or the pending long poll). */
  stop: () => void;
  /** Ends a backoff sleep early. */
  wake: () => void;
  running: boolean;
}

export class Offloader {
  readonly #deps: OffloaderDeps;
  readonly #timings: OffloaderTimings;
  readonly #store: JsonStore<LooseFile>;
  /** What could not be read of offloader.json at start-up. */
  readonly problems: RemoteBuildProblem[] = [];
  readonly #pairings = new Map<string, PairingState>();
  readonly #alerts = new Map<string, OffloaderAlert>();
  #enabled = true;
  #versionMatchPolicy: VersionPolicy = "any";
  #identity: Identity | undefined;
  #stopped = false;

  constructor(deps: OffloaderDeps) {
    this.#deps = deps;
    this.#timings = {
      stepTimeoutMs: HANDSHAKE_STEP_MS,
      heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS,
      heartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS,
      backoffInitialMs: 1000,
      backoffMaxMs: 30_000,
      submitAckTimeoutMs: SUBMIT_ACK_TIMEOUT_MS,
      ...deps.timings,
    };
    this.#store = new JsonStore({ file: deps.paths.offloaderFile, schema: looseFileSchema, mode: 0o600, debounceMs: 50 });
  }

  async start(): Promise<void> {
    this.#identity = await this.#deps.identity.load();
    await this.#load();
  }

  /**
   * Reads offloader.json. Not a JSON object: moved aside, nothing paired.
   * Otherwise each pairing is read on its own (a bad one is skipped, the
   * others kept) and a master switch that is not true or false counts as
   * off (builds stay here). Whatever could not be read is reported
   * (`problems`) and the file rewritten with what was kept (the original
   * copied aside first).
   */
  async #load(): Promise<void> {
    const report = new StateFileReport(this.#deps.paths.offloaderFile);
    const loaded = await this.#store.load();
    if (loaded.kind === "corrupt") {
      report.movedAside(
        "offloader_file",
        loaded,
        "No build server is paired now, so builds run on this builder: pair the build servers again (Build servers → Add a build server), or put back a repaired copy and restart.",
      );
    } else if (loaded.kind === "ok") {
      this.#enabled = report.flag(loaded.value, "remote_builds_enabled", {
        kind: "offloader_file",
        ifMissing: true,
        fallback: false,
        consequence: "sending builds to build servers was turned off, so builds run here. Turn it on again under Build servers if you want that.",
      });
      const pairings = report.rows(loaded.value, "pairings", {
        schema: storedPairingSchema,
        key: (pairing) => pairing.pin_sha256,
        kind: "offloader_pairing",
        name: (raw, index) => rowName("Paired build server", raw, index, ["label", "receiver_hostname"]),
        remedy: "builds no longer go there until you pair it again (Build servers → Add a build server).",
        whenUnreadable: "no build server is paired now, so builds run here; pair them again.",
      });
      for (const stored of pairings) this.#addApproved(stored);
      const policy = loaded.value["version_match_policy"];
      if (isVersionPolicy(policy)) this.#versionMatchPolicy = policy;
      else if (policy !== undefined) log.warning(`offloader.json: version_match_policy ${JSON.stringify(policy)} is not one of ${VERSION_POLICIES.join(", ")}; using any`);
    }
    const rewrite = report.needsRewrite;
    await report.finish();
    this.problems.push(...report.problems);
    if (rewrite) await this.#store.saveNow(() => this.#fileData());
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const state of this.#pairings.values()) state.stop();
    await this.#store.flush();
  }

  /** Identity rotated: sessions reconnect with the new key (build servers will refuse it until re-paired). */
  async identityChanged(): Promise<void> {
    this.#identity = await this.#deps.identity.load();
    for (const state of this.#pairings.values()) state.session?.channel.close("client_stopped", "identity rotated");
  }

  get remoteBuildsEnabled(): boolean {
    return this.#enabled;
  }

  setRemoteBuildsEnabled(enabled: boolean): void {
    this.#enabled = enabled;
    this.#save();
    this.#deps.bus.emit("offloader_settings_changed", { remote_builds_enabled: enabled, version_match_policy: this.#versionMatchPolicy });
  }

  /** Which build servers this builder's compiles may go to, by their ESPHome version. */
  get versionMatchPolicy(): VersionPolicy {
    return this.#versionMatchPolicy;
  }

  setVersionMatchPolicy(policy: VersionPolicy): void {
    this.#versionMatchPolicy = policy;
    this.#save();
    this.#deps.bus.emit("offloader_settings_changed", { remote_builds_enabled: this.#enabled, version_match_policy: policy });
  }

  settings(): OffloaderSettings {
    return { remote_builds_enabled: this.#enabled, version_match_policy: this.#versionMatchPolicy, pairings: this.pairings() };
  }

  pairings(): PairingSummary[] {
    return [...this.#pairings.values()].map((s) => this.#summary(s));
  }

  alerts(): OffloaderAlert[] {
    return [...this.#alerts.values()];
  }

  /** Approved pairings in the order they were made, with their live sessions (for the build scheduler). */
  snapshot(): { stored: StoredPairing; status: "pending" | "approved"; session: PeerSession | null }[] {
    return [...this.#pairings.values()].map((s) => ({ stored: s.stored, status: s.status, session: s.session }));
  }

  /** The live session with the build server of `pin`, if connected. */
  session(pin: string): PeerSession | undefined {
    return this.#pairings.get(pin)?.session ?? undefined;
  }

  label(pin: string): string | undefined {
    return this.#pairings.get(pin)?.stored.label;
  }

  // ---- pairing ----

  async previewPair(hostname: string, port: number): Promise<PairPreview> {
    const identity = this.#requireIdentity();
    const { channel, response } = await this.#connect(() =>
      initiate({ host: hostname, port, staticPrivateKey: identity.privateKey, intent: "preview", payload: null, stepTimeoutMs: this.#timings.stepTimeoutMs }),
    );
    channel.close("done");
    if (response.intent_response !== "ok") throw new BuilderError(ErrorCode.Unavailable, `${hostname}:${port} refused the preview (${response.intent_response})`);
    return {
      pin_sha256: channel.remotePin,
      fingerprint_emoji: fingerprintEmoji(channel.remotePin),
      label: response.friendly_name,
      esphome_version: response.esphome_version,
      requires_pairing_key: response.requires_pairing_key,
    };
  }

  /**
   * Asks a build server to pair, pinned to the key the user compared. A
   * headless build server's printed `pairingKey` goes in msg3, which
   * `initiate` sends only after the server's key matched the pin.
   */
  async requestPair(hostname: string, port: number, pinSha256: string, label?: string, pairingKey?: string): Promise<PairingSummary> {
    const pin = parsePin(pinSha256);
    if (pin === null) throw invalidArgs(PIN_RULE);
    const key = pairingKey === undefined ? undefined : parsePairingKey(pairingKey);
    if (key === null) throw invalidArgs(PAIRING_KEY_RULE);
    const identity = this.#requireIdentity();
    const { channel, response } = await this.#connect(() =>
      initiate({
        host: hostname,
        port,
        staticPrivateKey: identity.privateKey,
        intent: "pair_request",
        expectedPin: pin,
        payload: { dashboard_id: identity.dashboard_id, label: this.#deps.label(), friendly_name: this.#deps.label(), ha_addon: this.#deps.haAddon ?? false, label_auto: false, ...(key === undefined ? {} : { pairing_key: key }) },
        stepTimeoutMs: this.#timings.stepTimeoutMs,
      }),
    );
    channel.close("done");
    const stored: StoredPairing = {
      pin_sha256: pin,
      label: (label ?? "").trim().slice(0, 128) || response.friendly_name || hostname,
      receiver_hostname: hostname,
      receiver_port: port,
      paired_at: new Date().toISOString(),
      enabled: true,
      esphome_version: response.esphome_version,
      friendly_name: response.friendly_name,
      auto_provision_supported: response.auto_provision_supported,
      version_policy: response.version_policy,
    };
    switch (response.intent_response) {
      case "approved": {
        this.#dropPairing(pin);
        const state = this.#addApproved(stored);
        this.#save();
        this.#clearAlert(pin);
        return this.#summary(state);
      }
      case "pending": {
        this.#dropPairing(pin);
        const state = this.#addPending(stored);
        this.#clearAlert(pin);
        return this.#summary(state);
      }
      case "no_pairing_window":
        // A headless build server answers a wrong, used or lapsed key as it answers a closed window.
        if (key !== undefined) throw new BuilderError(ErrorCode.PairingKeyRefused, `${hostname} did not take the pairing key: it is wrong or expired (a key pairs one builder within 15 minutes; restart the build server for a new one)`);
        throw new BuilderError(ErrorCode.Unavailable, `${hostname} is not accepting pairing requests: open the pairing window on the build server (Build servers → Pairing requests) and try again`);
      case "ok":
      case "rejected":
        throw new BuilderError(ErrorCode.Unavailable, `${hostname} refused the pairing request (${response.reason ?? response.intent_response})`);
    }
  }

  unpair(pin: string): void {
    if (!this.#pairings.has(pin)) throw notFound(`No pairing with ${pin}`);
    this.#dropPairing(pin);
    this.#clearAlert(pin);
    this.#save();
    this.#deps.bus.emit("offloader_pairing_removed", { pin_sha256: pin, reason: "unpaired" });
  }

  setPairingEnabled(pin: string, enabled: boolean): PairingSummary {
    const state = this.#pairings.get(pin);
    if (state === undefined) throw notFound(`No pairing with ${pin}`);
    state.stored.enabled = enabled;
    this.#save();
    this.#changed(state);
    return this.#summary(state);
  }

  /** Moves a pairing to a new address after checking the build server there has the same key. */
  async editEndpoint(pin: string, hostname: string, port: number): Promise<PairingSummary> {
    const state = this.#pairings.get(pin);
    if (state === undefined) throw notFound(`No pairing with ${pin}`);
    const preview = await this.previewPair(hostname, port);
    if (preview.pin_sha256 !== pin) {
      throw new BuilderError(ErrorCode.InvalidArgs, `The builder at ${hostname}:${port} has a different key (pin ${preview.pin_sha256}); the pairing was not changed`);
    }
    state.stored.receiver_hostname = hostname;
    state.stored.receiver_port = port;
    this.#save();
    state.session?.channel.close("client_stopped", "endpoint changed");
    this.#changed(state);
    return this.#summary(state);
  }

  // ---- internals ----

  #requireIdentity(): Identity {
    if (this.#identity === undefined) throw new BuilderError(ErrorCode.Unavailable, "remote builds are not started");
    return this.#identity;
  }

  async #connect(fn: () => Promise<{ channel: SecureChannel; response: IntentResponse }>): Promise<{ channel: SecureChannel; response: IntentResponse }> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof PeerLinkError && err.code === "pin_mismatch") {
        throw new BuilderError(ErrorCode.InvalidArgs, `${err.message}. Compare the fingerprint on the build server again; nothing was sent.`);
      }
      throw new BuilderError(ErrorCode.Unavailable, errorMessage(err));
    }
  }

  #summary(state: PairingState): PairingSummary {
    const s = state.stored;
    return {
      pin_sha256: s.pin_sha256,
      label: s.label,
      receiver_hostname: s.receiver_hostname,
      receiver_port: s.receiver_port,
      status: state.status,
      enabled: s.enabled,
      connected: state.session !== null,
      idle: state.session?.queueStatus?.idle ?? null,
      last_connect_error: state.lastError,
      esphome_version: s.esphome_version,
      auto_provision_supported: s.auto_provision_supported,
      version_policy: s.version_policy,
      fingerprint_emoji: fingerprintEmoji(s.pin_sha256),
      reset_build_env_supported: state.session?.resetBuildEnvSupported ?? false,
    };
  }

  #changed(state: PairingState): void {
    this.#deps.bus.emit("offloader_pairing_changed", { pairing: this.#summary(state) });
  }

  #fileData(): LooseFile {
    return {
      remote_builds_enabled: this.#enabled,
      version_match_policy: this.#versionMatchPolicy,
      pairings: [...this.#pairings.values()].filter((s) => s.status === "approved").map((s) => s.stored),
    };
  }

  #save(): void {
    this.#store.scheduleSave(() => this.#fileData());
  }

  #dropPairing(pin: string): void {
    const state = this.#pairings.get(pin);
    if (state === undefined) return;
    state.stop();
    this.#pairings.delete(pin);
  }

  #alert(state: PairingState, kind: OffloaderAlert["kind"], observedPin: string | null, message: string): void {
    const alert: OffloaderAlert = {
      pin_sha256: state.stored.pin_sha256,
      kind,
      label: state.stored.label,
      receiver_hostname: state.stored.receiver_hostname,
      receiver_port: state.stored.receiver_port,
      observed_pin: observedPin,
      message,
    };
    this.#alerts.set(alert.pin_sha256, alert);
    this.#deps.bus.emit("offloader_alert", { alert });
  }

  #clearAlert(pin: string): void {
    this.#alerts.delete(pin);
  }

  #addApproved(stored: StoredPairing): PairingState {
    const state = this.#newState(stored, "approved");
    this.#pairings.set(stored.pin_sha256, state);
    this.#changed(state);
    void this.#sessionLoop(state);
    return state;
  }

  #addPending(stored: StoredPairing): PairingState {
    const state = this.#newState(stored, "pending");
    this.#pairings.set(stored.pin_sha256, state);
    this.#changed(state);
    void this.#pendingLoop(state);
    return state;
  }

  #newState(stored: StoredPairing, status: "pending" | "approved"): PairingState {
    const state: PairingState = { stored, status, session: null, lastError: "", running: true, stop: () => undefined, wake: () => undefined };
    state.stop = () => {
      state.running = false;
      state.session?.channel.terminate("client_stopped");
      state.wake();
    };
    return state;
  }

  /** Whether the pairing's loop should go on (read through a call: it changes while we await). */
  #alive(state: PairingState): boolean {
    return state.running && !this.#stopped;
  }

  /** Waits `ms`, or less when the pairing is stopped meanwhile. */
  #sleep(state: PairingState, ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => { resolve(); }, ms);
      state.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Long-polls `pair_status` until the build server's user decides. */
  async #pendingLoop(state: PairingState): Promise<void> {
    const identity = this.#requireIdentity();
    while (state.running && !this.#stopped) {
      try {
        const { channel, response } = await initiate({
          host: state.stored.receiver_hostname,
          port: state.stored.receiver_port,
          staticPrivateKey: identity.privateKey,
          intent: "pair_status",
          expectedPin: state.stored.pin_sha256,
          payload: { dashboard_id: identity.dashboard_id, friendly_name: this.#deps.label(), ha_addon: this.#deps.haAddon ?? false },
          stepTimeoutMs: this.#timings.stepTimeoutMs,
        });
        // The answer to a pending request comes only when the build server's user acts.
        channel.close("done");
        if (!this.#alive(state)) return;
        if (response.intent_response === "approved") {
          state.status = "approved";
          this.#save();
          this.#changed(state);
          void this.#sessionLoop(state);
          return;
        }
        this.#pairings.delete(state.stored.pin_sha256);
        state.running = false;
        this.#deps.bus.emit("offloader_pairing_removed", { pin_sha256: state.stored.pin_sha256, reason: response.reason ?? response.intent_response });
        return;
      } catch (err) {
        if (err instanceof PeerLinkError && err.code === "timeout") continue;
        state.lastError = errorMessage(err);
        this.#changed(state);
        await this.#sleep(state, 2000);
      }
    }
  }

  async #sessionLoop(state: PairingState): Promise<void> {
    let backoff = this.#timings.backoffInitialMs;
    while (state.running && !this.#stopped) {
      const identity = this.#requireIdentity();
      let reason = "transport_error";
      try {
        const { channel, response } = await initiate({
          host: state.stored.receiver_hostname,
          port: state.stored.receiver_port,
          staticPrivateKey: identity.privateKey,
          intent: "peer_link",
          expectedPin: state.stored.pin_sha256,
          payload: { dashboard_id: identity.dashboard_id, friendly_name: this.#deps.label(), ha_addon: this.#deps.haAddon ?? false },
          stepTimeoutMs: this.#timings.stepTimeoutMs,
        });
        if (response.intent_response !== "ok") {
          channel.close("done");
          reason = response.reason ?? response.intent_response;
          state.lastError = `the build server refused the session (${reason})`;
          if (reason === "no_approved_peer" || reason === "pin_mismatch") {
            this.#alert(state, "peer_revoked", null, `${state.stored.label} no longer accepts this builder; pair again`);
          }
        } else if (!this.#alive(state)) {
          channel.terminate("client_stopped");
          return;
        } else {
          backoff = this.#timings.backoffInitialMs;
          reason = await this.#runSession(state, channel, response);
        }
      } catch (err) {
        if (err instanceof PeerLinkError && err.code === "pin_mismatch") {
          reason = "pin_mismatch";
          this.#alert(state, "pin_mismatch", err.observedPin, `${state.stored.label} now presents a different key. If its identity was rotated, pair again after comparing the new fingerprint; otherwise something else is answering at ${state.stored.receiver_hostname}:${state.stored.receiver_port}.`);
        }
        state.lastError = errorMessage(err);
      }
      if (reason === "revoked") this.#alert(state, "peer_revoked", null, `${state.stored.label} removed this builder; pair again to build there`);
      this.#changed(state);
      if (ORPHAN_REASONS.has(reason)) {
        log.warning(`session with ${state.stored.label} ended (${reason}); not reconnecting until paired again`);
        state.running = false;
        return;
      }
      if (!this.#alive(state)) return;
      await this.#sleep(state, backoff);
      backoff = Math.min(backoff * 2, this.#timings.backoffMaxMs);
    }
  }

  /** Runs one open session until it ends; returns why it ended. */
  #runSession(state: PairingState, channel: SecureChannel, response: IntentResponse): Promise<string> {
    const pin = state.stored.pin_sha256;
    const session = new PeerSession(pin, channel, response, this.#deps.bus, this.#timings.submitAckTimeoutMs);
    state.session = session;
    state.lastError = "";
    // What it says of its ESPHome now decides which builds may go there (the scheduler reads the stored pairing).
    const s = state.stored;
    const version = response.esphome_version === "" ? s.esphome_version : response.esphome_version;
    if (version !== s.esphome_version || response.auto_provision_supported !== s.auto_provision_supported || response.version_policy !== s.version_policy) {
      s.esphome_version = version;
      s.auto_provision_supported = response.auto_provision_supported;
      s.version_policy = response.version_policy;
      this.#save();
    }
    let nonce = 0;
    const heartbeat = setInterval(() => {
      if (Date.now() - session.lastPong > this.#timings.heartbeatTimeoutMs) {
        channel.terminate("heartbeat_timeout");
        return;
      }
      if (!channel.send({ type: "ping", nonce: ++nonce })) channel.close("transport_error", "ping could not be sent");
    }, this.#timings.heartbeatIntervalMs);
    heartbeat.unref();
    return new Promise<string>((resolve) => {
      channel.onClose((reason, detail) => {
        clearInterval(heartbeat);
        state.session = null;
        session.closed(reason);
        if (reason !== "client_stopped") state.lastError = detail === "" ? reason : `${reason}: ${detail}`;
        this.#deps.bus.emit("offloader_peer_link_closed", {
          pin_sha256: pin,
          receiver_hostname: state.stored.receiver_hostname,
          receiver_port: state.stored.receiver_port,
          reason,
          error_detail: detail,
        });
        resolve(reason);
      });
      channel.onMessage((raw) => {
        const parsed = parseMessage(offloaderInbound, raw);
        if (parsed.kind === "unknown") return;
        // Upstream's parse policy (WIRE-FACTS §8): a known frame with a bad shape is dropped, the session stays.
        if (parsed.kind === "malformed") {
          log.info(`dropped a malformed ${parsed.type} frame from ${state.stored.label}: ${parsed.error.slice(0, 200)}`);
          return;
        }
        session.handle(parsed.type, parsed.message);
        if (parsed.type === "queue_status") this.#changed(state);
      });
      this.#deps.bus.emit("offloader_peer_link_opened", {
        pin_sha256: pin,
        receiver_hostname: state.stored.receiver_hostname,
        receiver_port: state.stored.receiver_port,
        esphome_version: response.esphome_version,
      });
      this.#changed(state);
    });
  }
}
