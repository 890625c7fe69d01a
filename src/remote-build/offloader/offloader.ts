/**
 * The offloader role ("send builds"): pairing with build servers, one
 * long-lived peer-link session per approved pairing, and the calls the
 * install runner uses to build there (submit, cancel, download artifacts).
 * The parts: offloader.json and the pairing rows (pairings-store.ts), the
 * connection loops (session-loop.ts), one live session (peer-session.ts).
 *
 * Only approved pairings are written down. A pending request lives in memory
 * and is resolved by long-polling `pair_status`. A build server whose key
 * changed, or that no longer knows us, is never retried: the user is alerted
 * and must pair again.
 */
import type { VersionPolicy } from "../../domain/policy.ts";
import type { OffloaderAlert, OffloaderSettings, PairPreview, PairingSummary, RemoteBuildProblem } from "../../domain/remote-build.ts";
import { BuilderError, ErrorCode, errorMessage, invalidArgs, notFound } from "../../errors.ts";
import type { EventBus } from "../../events.ts";
import type { Paths } from "../../paths.ts";
import { type SecureChannel } from "../transport/channel.ts";
import { initiate } from "../transport/handshake.ts";
import { isPeerLinkError } from "../transport/socket-frames.ts";
import { fingerprintEmoji } from "../transport/fingerprint.ts";
import type { Identity, IdentityStore } from "../transport/identity.ts";
import { HANDSHAKE_STEP_MS, HEARTBEAT_INTERVAL_MS, HEARTBEAT_TIMEOUT_MS, type IntentResponse } from "../transport/messages.ts";
import { PAIRING_KEY_RULE, parsePairingKey } from "../transport/pairing-key-text.ts";
import { PIN_RULE, parsePin } from "../transport/pin.ts";
import { newPairingState, PairingsStore, type OffloaderFile, type PairingState, type StoredPairing } from "./pairings-store.ts";
import { SUBMIT_ACK_TIMEOUT_MS, type PeerSession } from "./peer-session.ts";
import { SessionLoops, type SessionLoopTimings } from "./session-loop.ts";

export type OffloaderTimings = SessionLoopTimings;

export interface OffloaderDeps {
  bus: EventBus;
  paths: Paths;
  identity: IdentityStore;
  label: () => string;
  /** Running as the Home Assistant add-on (`ha_addon` in what it tells build servers). */
  haAddon?: boolean;
  timings?: Partial<OffloaderTimings>;
  /**
   * Connect-back: binds (if needed) this builder's own peer-link listener and
   * gives its port, announced in each `peer_link` msg3; null: not bound, not announced.
   */
  connectBackPort?: () => Promise<number | null>;
}

export class Offloader {
  readonly #deps: OffloaderDeps;
  readonly #store: PairingsStore;
  readonly #loops: SessionLoops;
  readonly #timings: OffloaderTimings;
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
    this.#store = new PairingsStore(deps.paths.offloaderFile);
    this.#loops = new SessionLoops({
      bus: deps.bus,
      timings: this.#timings,
      label: deps.label,
      haAddon: deps.haAddon ?? false,
      ...(deps.connectBackPort === undefined ? {} : { connectBackPort: deps.connectBackPort }),
      identity: () => this.#requireIdentity(),
      stopped: () => this.#stopped,
      save: () => { this.#save(); },
      changed: (state) => { this.#changed(state); },
      alert: (state, kind, observedPin, message) => { this.#alert(state, kind, observedPin, message); },
      refused: (state, reason) => {
        this.#pairings.delete(state.stored.pin_sha256);
        this.#deps.bus.emit("offloader_pairing_removed", { pin_sha256: state.stored.pin_sha256, reason });
      },
    });
  }

  async start(): Promise<void> {
    this.#identity = await this.#deps.identity.load();
    const { file, rewrite } = await this.#store.load(this.problems);
    this.#enabled = file.remoteBuildsEnabled;
    this.#versionMatchPolicy = file.versionMatchPolicy;
    for (const stored of file.pairings) this.#addApproved(stored);
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

  // ---- connect-back hooks (the answer itself: connect-back.ts) ----

  /** Whether any approved pairing exists (then this builder keeps a listener for connect-back). */
  hasApprovedPairings(): boolean {
    return [...this.#pairings.values()].some((s) => s.status === "approved");
  }

  /** The pairing with the build server of `pin` as connect-back sees it; undefined when there is none. */
  connectBackPairing(pin: string): { approved: boolean; connected: boolean } | undefined {
    const state = this.#pairings.get(pin);
    return state === undefined ? undefined : { approved: state.status === "approved", connected: state.session !== null };
  }

  /**
   * Connect-back proved (key and forward probe) that the build server of
   * `pin` is at host:port now: the pairing moves there and its session loop
   * tries at once (woken from its backoff, or started again if it had given up).
   */
  rebindFromConnectBack(pin: string, host: string, port: number): void {
    const state = this.#pairings.get(pin);
    if (state?.status !== "approved" || this.#stopped) return;
    state.stored.receiver_hostname = host;
    state.stored.receiver_port = port;
    state.lastError = "";
    this.#save();
    this.#clearAlert(pin);
    this.#changed(state);
    if (state.running) state.wake();
    else {
      state.running = true;
      void this.#loops.session(state);
    }
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
      if (isPeerLinkError(err) && err.code === "pin_mismatch") {
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

  #fileData(): OffloaderFile {
    return {
      remoteBuildsEnabled: this.#enabled,
      versionMatchPolicy: this.#versionMatchPolicy,
      pairings: [...this.#pairings.values()].filter((s) => s.status === "approved").map((s) => s.stored),
    };
  }

  #save(): void {
    this.#store.save(() => this.#fileData());
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
    const state = newPairingState(stored, "approved");
    this.#pairings.set(stored.pin_sha256, state);
    this.#changed(state);
    void this.#loops.session(state);
    return state;
  }

  #addPending(stored: StoredPairing): PairingState {
    const state = newPairingState(stored, "pending");
    this.#pairings.set(stored.pin_sha256, state);
    this.#changed(state);
    void this.#loops.pending(state);
    return state;
  }
}
