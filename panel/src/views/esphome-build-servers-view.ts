/**
 * Build servers, both roles: this builder's identity (fingerprint, key
 * rotation); as a build server, the switch, the pairing window (open while
 * this view is shown), pairing requests and paired builders; as a sender,
 * the auto-route switch, paired build servers, builders found on the LAN,
 * "add by host and port", alerts when a build server's key changed, and
 * problems with the remote-build state files found at start-up.
 */
import "@material/web/button/filled-button.js";
import "@material/web/button/outlined-button.js";
import "@material/web/button/text-button.js";
import "@material/web/iconbutton/icon-button.js";
import "@material/web/switch/switch.js";
import { LitElement, css, html, nothing, type PropertyValues, type TemplateResult } from "lit";
import { customElement, property, state } from "lit/decorators.js";
import { fireToast, type PanelContext } from "../common/context.ts";
import {
  icon,
  mdiAlertCircle,
  mdiCheck,
  mdiCloudUpload,
  mdiDelete,
  mdiDeleteSweep,
  mdiFingerprint,
  mdiKeyChange,
  mdiLan,
  mdiLaptop,
  mdiPencil,
  mdiPlus,
  mdiServer,
  mdiShieldAlert,
  mdiTimerOutline,
} from "../common/icons.ts";
import { emptyStateStyles, sharedStyles } from "../common/styles.ts";
import { fingerprint, fingerprintStyles } from "../components/fingerprint.ts";
import { versionPolicySelect, versionPolicyStyles } from "../components/version-policy.ts";
import { errorText } from "../data/api.ts";
import {
  formatCountdown,
  hostEndpoint,
  hostTitle,
  pairableHosts,
  pairingStatus,
  receiverPeers,
  windowSecondsLeft,
  type RemoteBuildState,
} from "../data/remote-build.ts";
import type { AppState } from "../data/state.ts";
import { LOCAL_BUILDS, type DiscoveredHost, type LocalBuilds, type OffloaderAlert, type Pairing, type PairingWindow, type ReceiverPeer, type RemoteBuildProblem } from "../data/types.ts";
import { showConfirmDialog, showEndpointDialog, showPairDialog } from "../dialogs/show-dialog.ts";

/** The builder keeps a window open 300 s per client; extend well before that. */
const WINDOW_EXTEND_MS = 60_000;

@customElement("esphome-build-servers-view")
export class EsphomeBuildServersView extends LitElement {
  @property({ attribute: false }) accessor ctx: PanelContext | undefined = undefined;
  @property({ attribute: false }) accessor state: AppState | undefined = undefined;
  @property({ type: Boolean, reflect: true }) accessor narrow = false;

  /** Ticks once a second while the pairing window is open (the countdown). */
  @state() private accessor _now = Date.now();
  /** Commands in flight, by a key per control, so a control cannot be pressed twice. */
  @state() private accessor _busy: ReadonlySet<string> = new Set();
  @state() private accessor _windowError: string | null = null;

  /** This view asked the builder to keep the pairing window open. */
  #windowHeld = false;
  #extendTimer: ReturnType<typeof setInterval> | null = null;
  #tickTimer: ReturnType<typeof setInterval> | null = null;
  #window: PairingWindow | null = null;
  #windowAt = 0;

  override connectedCallback(): void {
    super.connectedCallback();
    this.#syncWindow();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    // Leaving the view closes the pairing window this view opened.
    this.#syncWindow();
    this.#stopTick();
  }

  protected override willUpdate(changed: PropertyValues<this>): void {
    if (!changed.has("state")) return;
    // The countdown runs from when the last window event arrived.
    const window = this.state?.remote?.receiver.window ?? null;
    if (window !== this.#window) {
      this.#window = window;
      this.#windowAt = Date.now();
      this._now = this.#windowAt;
    }
  }

  protected override updated(changed: PropertyValues<this>): void {
    if (!changed.has("state")) return;
    this.#syncWindow();
    if (this.#window?.open === true) this.#startTick();
    else this.#stopTick();
  }

  // ---- the pairing window: open while this view is shown ----

  #wantsWindow(): boolean {
    const st = this.state;
    return this.isConnected && st !== undefined && st.connection === "open" && st.remote?.receiver.enabled === true;
  }

  #syncWindow(): void {
    const want = this.#wantsWindow();
    if (want && !this.#windowHeld) {
      this.#windowHeld = true;
      void this.#openWindow();
      this.#extendTimer = setInterval(() => void this.#openWindow(), WINDOW_EXTEND_MS);
    } else if (!want && this.#windowHeld) {
      this.#windowHeld = false;
      if (this.#extendTimer !== null) clearInterval(this.#extendTimer);
      this.#extendTimer = null;
      // A dropped connection closes it on the builder already.
      if (this.state?.connection === "open") void this.ctx?.api.setPairingWindow(false).catch(() => undefined);
    }
  }

  async #openWindow(): Promise<void> {
    const ctx = this.ctx;
    if (ctx === undefined || !this.#windowHeld) return;
    try {
      await ctx.api.setPairingWindow(true);
      this._windowError = null;
    } catch (err) {
      this._windowError = ctx.localize("build_servers.receiver.window_failed", { message: errorText(err) });
    }
  }

  #startTick(): void {
    if (this.#tickTimer !== null) return;
    this.#tickTimer = setInterval(() => {
      this._now = Date.now();
    }, 1000);
  }

  #stopTick(): void {
    if (this.#tickTimer !== null) clearInterval(this.#tickTimer);
    this.#tickTimer = null;
  }

  // ---- actions ----

  /** Runs a command for one control; a failure becomes a toast. */
  async #run(key: string, action: (ctx: PanelContext) => Promise<unknown>): Promise<boolean> {
    const ctx = this.ctx;
    if (ctx === undefined || this._busy.has(key)) return false;
    this._busy = new Set([...this._busy, key]);
    try {
      await action(ctx);
      return true;
    } catch (err) {
      fireToast(this, { message: ctx.localize("devices.action_failed", { message: errorText(err) }) });
      return false;
    } finally {
      const next = new Set(this._busy);
      next.delete(key);
      this._busy = next;
    }
  }

  /** A switch's change: run the command; on failure put the switch back. */
  #toggle(e: Event, key: string, action: (ctx: PanelContext, on: boolean) => Promise<unknown>): void {
    const target = e.target as HTMLElement & { selected: boolean };
    const on = target.selected;
    void this.#run(key, (c) => action(c, on)).then((ok) => {
      if (!ok) target.selected = !on;
    });
  }

  async #rotate(): Promise<void> {
    const ctx = this.ctx;
    if (ctx === undefined) return;
    const ok = await showConfirmDialog(this, {
      title: ctx.localize("build_servers.identity.rotate_confirm.title"),
      text: ctx.localize("build_servers.identity.rotate_confirm.text"),
      action: ctx.localize("build_servers.identity.rotate_confirm.action"),
    });
    if (!ok) return;
    await this.#run("rotate", async (c) => {
      const identity = await c.api.rotateIdentity();
      c.store.dispatch({ type: "remote_identity", identity });
      fireToast(this, { message: c.localize("build_servers.identity.rotated") });
    });
  }

  async #removePeer(peer: ReceiverPeer): Promise<void> {
    const ctx = this.ctx;
    if (ctx === undefined) return;
    if (peer.status === "approved") {
      const ok = await showConfirmDialog(this, {
        title: ctx.localize("build_servers.receiver.remove_confirm.title", { label: peer.label }),
        text: ctx.localize("build_servers.receiver.remove_confirm.text", { label: peer.label }),
        action: ctx.localize("build_servers.receiver.remove_confirm.action"),
      });
      if (!ok) return;
    }
    await this.#run(`peer:${peer.dashboard_id}`, (c) => c.api.removePeer(peer.dashboard_id));
  }

  async #unpair(pin: string, label: string): Promise<void> {
    const ctx = this.ctx;
    if (ctx === undefined) return;
    const ok = await showConfirmDialog(this, {
      title: ctx.localize("build_servers.offloader.unpair_confirm.title", { label }),
      text: ctx.localize("build_servers.offloader.unpair_confirm.text", { label }),
      action: ctx.localize("build_servers.offloader.unpair_confirm.action"),
    });
    if (!ok) return;
    await this.#run(`pairing:${pin}`, (c) => c.api.unpair(pin));
  }

  #pairAgain(alert: OffloaderAlert): void {
    showPairDialog(this, { hostname: alert.receiver_hostname, port: alert.receiver_port, preview: true });
  }

  #pairHost(host: DiscoveredHost): void {
    const endpoint = hostEndpoint(host);
    if (endpoint === null) return;
    showPairDialog(this, { ...endpoint, announcedPin: host.pin_sha256, preview: true });
  }

  // ---- rendering ----

  protected override render(): TemplateResult | typeof nothing {
    const ctx = this.ctx;
    const st = this.state;
    if (ctx === undefined || st === undefined) return nothing;
    const remote = st.remote;
    if (remote === null) {
      return html`<section class="card"><div class="empty">${icon(mdiServer)}<p>${ctx.localize("build_servers.unavailable")}</p></div></section>`;
    }
    const alerts = Object.values(remote.alerts);
    const problems = Object.values(remote.problems);
    return html`
      ${alerts.length === 0 && problems.length === 0
        ? nothing
        : html`<div class="alerts">${problems.map((p) => this.#renderProblem(p))}${alerts.map((a) => this.#renderAlert(a))}</div>`}
      ${this.#renderIdentity(remote)} ${this.#renderReceiver(remote)} ${this.#renderOffloader(remote)} ${this.#renderLocal(remote)}
    `;
  }

  /** A state file the builder could not read at start-up: what happened and what to do, until dismissed. */
  #renderProblem(problem: RemoteBuildProblem): TemplateResult {
    const { localize } = this.ctx as PanelContext;
    const key = `problem:${problem.id}`;
    return html`<div class="alert warning builder-problem" role="alert" data-kind=${problem.kind} data-id=${problem.id}>
      ${icon(mdiAlertCircle)}
      <div class="alert-body">
        <div class="alert-title">${localize(`build_servers.problems.${problem.kind}`)}</div>
        <div class="alert-message">${problem.message}</div>
        <div class="alert-actions">
          <md-outlined-button class="dismiss" ?disabled=${this._busy.has(key)} @click=${() => void this.#run(key, (c) => c.api.dismissRemoteBuildProblem(problem.id))}
            >${localize("build_servers.problems.dismiss")}</md-outlined-button
          >
        </div>
      </div>
    </div>`;
  }

  #renderAlert(alert: OffloaderAlert): TemplateResult {
    const { localize } = this.ctx as PanelContext;
    const label = alert.label;
    const address = `${alert.receiver_hostname}:${alert.receiver_port}`;
    const mismatch = alert.kind === "pin_mismatch";
    return html`<div class="alert error offloader-alert" role="alert" data-kind=${alert.kind} data-pin=${alert.pin_sha256}>
      ${icon(mdiShieldAlert)}
      <div class="alert-body">
        <div class="alert-title">${localize(mismatch ? "build_servers.alerts.pin_mismatch_title" : "build_servers.alerts.peer_revoked_title", { label })}</div>
        <div class="alert-message">${alert.message}</div>
        <ol class="steps">
          ${mismatch
            ? html`<li>${localize("build_servers.alerts.pin_mismatch_step1", { label })}</li>
                <li>${localize("build_servers.alerts.pin_mismatch_step2")}</li>
                <li>${localize("build_servers.alerts.pin_mismatch_step3", { address })}</li>`
            : html`<li>${localize("build_servers.alerts.peer_revoked_step1", { label })}</li>
                <li>${localize("build_servers.alerts.peer_revoked_step2", { label })}</li>
                <li>${localize("build_servers.alerts.peer_revoked_step3")}</li>`}
        </ol>
        ${mismatch && alert.observed_pin !== null
          ? html`<div class="observed">
              <span class="secondary">${localize("build_servers.alerts.observed")}</span>
              ${fingerprint(alert.observed_pin, localize, { size: "small" })}
            </div>`
          : nothing}
        <div class="alert-actions">
          <md-filled-button class="pair-again" @click=${() => { this.#pairAgain(alert); }}>${localize("build_servers.alerts.pair_again")}</md-filled-button>
          <md-outlined-button class="unpair" ?disabled=${this._busy.has(`pairing:${alert.pin_sha256}`)} @click=${() => void this.#unpair(alert.pin_sha256, label)}
            >${localize("build_servers.offloader.unpair")}</md-outlined-button
          >
        </div>
      </div>
    </div>`;
  }

  #renderIdentity(remote: RemoteBuildState): TemplateResult {
    const { localize } = this.ctx as PanelContext;
    const id = remote.identity;
    const details: string[] = [];
    if (id.esphome_version !== null) details.push(localize("app.esphome_version", { version: id.esphome_version }));
    details.push(
      id.listener_port === null
        ? localize("build_servers.identity.listener_off")
        : localize("build_servers.identity.listener_port", { port: String(id.listener_port) }),
    );
    return html`<section class="card identity" aria-labelledby="identity-title">
      <div class="card-header">
        <span class="header-icon">${icon(mdiFingerprint)}</span>
        <div class="header-text">
          <h2 id="identity-title">${localize("build_servers.identity.title")}</h2>
          <p class="secondary">${localize("build_servers.identity.text")}</p>
        </div>
        <md-text-button class="rotate header-action" ?disabled=${this._busy.has("rotate")} @click=${() => void this.#rotate()}>
          <span slot="icon">${icon(mdiKeyChange)}</span>${localize("build_servers.identity.rotate")}
        </md-text-button>
      </div>
      <div class="card-content identity-content">
        <div class="identity-label">
          <span class="builder-label">${id.label}</span>
          <span class="secondary">${details.join(" · ")}</span>
        </div>
        ${fingerprint(id.pin_sha256, localize, { size: "large", hex: true })}
      </div>
    </section>`;
  }

  #renderReceiver(remote: RemoteBuildState): TemplateResult {
    const { localize } = this.ctx as PanelContext;
    const enabled = remote.receiver.enabled;
    const { pending, approved } = receiverPeers(remote);
    return html`<section class="card receiver" aria-labelledby="receiver-title">
      <div class="card-header">
        <span class="header-icon">${icon(mdiServer)}</span>
        <div class="header-text">
          <h2 id="receiver-title">${localize("build_servers.receiver.title")}</h2>
          <p class="secondary">${localize("build_servers.receiver.text")}</p>
        </div>
      </div>
      <label class="switch-row">
        <span class="switch-text">
          <span class="switch-label">${localize("build_servers.receiver.switch")}</span>
          <span class="switch-warning">${icon(mdiAlertCircle)}<span>${localize("build_servers.receiver.warning")}</span></span>
        </span>
        <md-switch
          class="receiver-switch"
          aria-label=${localize("build_servers.receiver.switch")}
          .selected=${enabled}
          ?disabled=${this._busy.has("receiver")}
          @change=${(e: Event) => { this.#toggle(e, "receiver", (c, on) => c.api.setReceiverEnabled(on)); }}
        ></md-switch>
      </label>
      ${enabled
        ? html`
            ${versionPolicySelect(localize, {
              role: "receiver",
              value: remote.receiver.versionPolicy,
              disabled: this._busy.has("version_policy"),
              onChange: (policy) => void this.#run("version_policy", (c) => c.api.setVersionPolicy(policy)),
              notes: [
                ...(!remote.receiver.autoProvision && (remote.receiver.versionPolicy === "exact" || remote.receiver.versionPolicy === "exact_required")
                  ? [localize("build_servers.versions.receiver_cannot_install")]
                  : []),
                ...(remote.receiver.ccache ? [localize("build_servers.versions.ccache_on")] : []),
              ],
            })}
            ${this.#renderWindow(remote)}
            <div class="subsection" role="group" aria-labelledby="requests-title">
              <h3 id="requests-title">${localize("build_servers.receiver.requests")}</h3>
              ${pending.length === 0
                ? html`<p class="secondary hint">${localize("build_servers.receiver.no_requests", {
                    // A port is not a quantity: no digit grouping.
                    port: String(remote.identity.listener_port ?? ""),
                  })}</p>`
                : html`<ul class="list">${pending.map((p) => this.#renderRequest(p))}</ul>`}
            </div>
          `
        : nothing}
      ${approved.length === 0
        ? nothing
        : html`<div class="subsection" role="group" aria-labelledby="peers-title">
            <h3 id="peers-title">${localize("build_servers.receiver.peers")}</h3>
            <ul class="list">${approved.map((p) => this.#renderPeer(p))}</ul>
          </div>`}
    </section>`;
  }

  #renderWindow(remote: RemoteBuildState): TemplateResult {
    const { localize } = this.ctx as PanelContext;
    const window = remote.receiver.window;
    const left = windowSecondsLeft(window, this.#windowAt, this._now);
    const open = window.open && left > 0;
    return html`<div class="window ${open ? "open" : "closed"}" role="status" aria-live="off">
      ${icon(mdiTimerOutline)}
      <div class="window-text">
        <span class="window-state"
          >${open
            ? html`${localize("build_servers.receiver.window_open")} <span class="countdown">${localize("build_servers.receiver.window_closes", { time: formatCountdown(left) })}</span>`
            : localize("build_servers.receiver.window_closed")}</span
        >
        <span class="secondary">${this._windowError ?? localize("build_servers.receiver.window_text")}</span>
      </div>
    </div>`;
  }

  #renderRequest(peer: ReceiverPeer): TemplateResult {
    const { localize } = this.ctx as PanelContext;
    const busy = this._busy.has(`peer:${peer.dashboard_id}`);
    return html`<li class="row request" data-dashboard-id=${peer.dashboard_id}>
      <div class="row-main">
        <div class="row-title">
          <span class="name">${peer.label}</span>
          <span class="badge warning">${localize("build_servers.receiver.wants_to_pair")}</span>
        </div>
        <div class="secondary meta">${localize("build_servers.receiver.from_ip", { ip: peer.peer_ip })}</div>
        <div class="compare">
          <span class="secondary">${localize("build_servers.receiver.compare", { label: peer.label })}</span>
          ${fingerprint(peer.pin_sha256, localize, { size: "medium" })}
        </div>
      </div>
      <div class="row-actions">
        <md-text-button class="reject" ?disabled=${busy} @click=${() => void this.#removePeer(peer)}
          >${localize("build_servers.receiver.reject")}</md-text-button
        >
        <md-filled-button
          class="accept"
          ?disabled=${busy}
          @click=${() => void this.#run(`peer:${peer.dashboard_id}`, (c) => c.api.approvePeer(peer.dashboard_id))}
          ><span slot="icon">${icon(mdiCheck)}</span>${localize("build_servers.receiver.accept")}</md-filled-button
        >
      </div>
    </li>`;
  }

  #renderPeer(peer: ReceiverPeer): TemplateResult {
    const { localize } = this.ctx as PanelContext;
    return html`<li class="row peer" data-dashboard-id=${peer.dashboard_id} data-connected=${peer.connected ? "true" : "false"}>
      <div class="row-main">
        <div class="row-title">
          <span class="name">${peer.label}</span>
          <span class="badge ${peer.connected ? "success" : ""}">${localize(peer.connected ? "build_servers.status.connected" : "build_servers.status.not_connected")}</span>
        </div>
        <div class="secondary meta">
          ${peer.peer_ip === "" ? nothing : html`<span>${peer.peer_ip}</span>`} ${fingerprint(peer.pin_sha256, localize, { size: "small" })}
        </div>
      </div>
      <div class="row-actions">
        <md-icon-button
          class="remove"
          aria-label=${localize("build_servers.receiver.remove", { label: peer.label })}
          title=${localize("build_servers.receiver.remove", { label: peer.label })}
          ?disabled=${this._busy.has(`peer:${peer.dashboard_id}`)}
          @click=${() => void this.#removePeer(peer)}
          >${icon(mdiDelete)}</md-icon-button
        >
      </div>
    </li>`;
  }

  #renderOffloader(remote: RemoteBuildState): TemplateResult {
    const { localize } = this.ctx as PanelContext;
    const pairings = remote.offloader.pairings;
    const hosts = pairableHosts(remote);
    return html`<section class="card offloader" aria-labelledby="offloader-title">
      <div class="card-header">
        <span class="header-icon">${icon(mdiCloudUpload)}</span>
        <div class="header-text">
          <h2 id="offloader-title">${localize("build_servers.offloader.title")}</h2>
          <p class="secondary">${localize("build_servers.offloader.text")}</p>
        </div>
      </div>
      <label class="switch-row">
        <span class="switch-text">
          <span class="switch-label">${localize("build_servers.offloader.switch")}</span>
          <span class="secondary">${localize("build_servers.offloader.switch_text")}</span>
        </span>
        <md-switch
          class="auto-route-switch"
          aria-label=${localize("build_servers.offloader.switch")}
          .selected=${remote.offloader.remoteBuildsEnabled}
          ?disabled=${this._busy.has("offloader")}
          @change=${(e: Event) => { this.#toggle(e, "offloader", (c, on) => c.api.setRemoteBuildsEnabled(on)); }}
        ></md-switch>
      </label>
      ${versionPolicySelect(localize, {
        role: "offloader",
        value: remote.offloader.versionMatchPolicy,
        disabled: this._busy.has("version_match_policy"),
        onChange: (policy) => void this.#run("version_match_policy", (c) => c.api.setVersionMatchPolicy(policy)),
      })}
      <div class="subsection" role="group" aria-labelledby="pairings-title">
        <h3 id="pairings-title">${localize("build_servers.offloader.pairings")}</h3>
        ${pairings.length === 0
          ? html`<p class="secondary hint">${localize("build_servers.offloader.no_pairings")}</p>`
          : html`<ul class="list">${pairings.map((p) => this.#renderPairing(p, remote))}</ul>`}
      </div>
      <div class="subsection" role="group" aria-labelledby="discovered-title">
        <h3 id="discovered-title">${localize("build_servers.offloader.discovered")}</h3>
        ${hosts.length === 0
          ? html`<p class="secondary hint">${localize("build_servers.offloader.no_discovered")}</p>`
          : html`<ul class="list">${hosts.map((h) => this.#renderHost(h))}</ul>`}
      </div>
      <div class="card-actions">
        <md-outlined-button class="add-by-address" @click=${() => { showPairDialog(this, {}); }}>
          <span slot="icon">${icon(mdiPlus)}</span>${localize("build_servers.offloader.add")}
        </md-outlined-button>
      </div>
    </section>`;
  }

  /** This machine: where its own compiles run (`local_builds`) and cleaning all its build files. */
  #renderLocal(remote: RemoteBuildState): TemplateResult {
    const { localize } = this.ctx as PanelContext;
    const mode = remote.offloader.localBuilds;
    const connected = remote.offloader.remoteBuildsEnabled && remote.offloader.pairings.some((p) => p.connected && p.enabled && p.status === "approved");
    return html`<section class="card local-builds" aria-labelledby="local-title">
      <div class="card-header">
        <span class="header-icon">${icon(mdiLaptop)}</span>
        <div class="header-text">
          <h2 id="local-title">${localize("build_servers.local.title")}</h2>
          <p class="secondary">${localize("build_servers.local.text")}</p>
        </div>
      </div>
      <label class="switch-row">
        <span class="switch-text">
          <span class="switch-label">${localize("build_servers.local.mode")}</span>
          <span class="secondary">${localize("build_servers.local.mode_text")}</span>
          ${mode === "never" && !connected ? html`<span class="warning-text never-warning">${localize("build_servers.local.never_warning")}</span>` : nothing}
        </span>
        <select
          class="local-builds-select"
          aria-label=${localize("build_servers.local.mode")}
          .value=${mode}
          ?disabled=${this._busy.has("local-builds")}
          @change=${(e: Event) => {
            const target = e.target as HTMLSelectElement;
            const value = LOCAL_BUILDS.find((m) => m === target.value);
            if (value === undefined) return;
            void this.#run("local-builds", (c) => c.api.setLocalBuilds(value)).then((ok) => {
              if (!ok) target.value = mode;
            });
          }}
        >
          ${LOCAL_BUILDS.map((m: LocalBuilds) => html`<option value=${m} ?selected=${m === mode}>${localize(`build_servers.local.modes.${m}`)}</option>`)}
        </select>
      </label>
      <div class="switch-row">
        <span class="switch-text">
          <span class="switch-label">${localize("build_servers.local.clean_all")}</span>
          <span class="secondary">${localize("build_servers.local.clean_all_text")}</span>
        </span>
        <md-outlined-button class="clean-all" ?disabled=${this._busy.has("clean-all")} @click=${() => void this.#cleanAll()}>
          <span slot="icon">${icon(mdiDeleteSweep)}</span>${localize("build_servers.local.clean_all")}
        </md-outlined-button>
      </div>
    </section>`;
  }

  async #cleanAll(): Promise<void> {
    const ctx = this.ctx;
    if (ctx === undefined) return;
    const ok = await showConfirmDialog(this, {
      title: ctx.localize("build_servers.local.clean_all_confirm.title"),
      text: ctx.localize("build_servers.local.clean_all_confirm.text"),
      action: ctx.localize("build_servers.local.clean_all_confirm.action"),
    });
    if (!ok) return;
    await this.#run("clean-all", async (c) => {
      await c.api.cleanAll();
      fireToast(this, { message: c.localize("build_servers.local.clean_all_started") });
    });
  }

  async #resetBuildEnv(pairing: Pairing): Promise<void> {
    const ctx = this.ctx;
    if (ctx === undefined) return;
    const label = pairing.label;
    const ok = await showConfirmDialog(this, {
      title: ctx.localize("build_servers.offloader.reset_confirm.title", { label }),
      text: ctx.localize("build_servers.offloader.reset_confirm.text", { label }),
      action: ctx.localize("build_servers.offloader.reset_confirm.action"),
    });
    if (!ok) return;
    await this.#run(`reset:${pairing.pin_sha256}`, async (c) => {
      await c.api.resetBuildEnv(pairing.pin_sha256);
      fireToast(this, { message: c.localize("build_servers.offloader.reset_started", { label }) });
    });
  }

  #renderPairing(pairing: Pairing, remote: RemoteBuildState): TemplateResult {
    const { localize } = this.ctx as PanelContext;
    const pin = pairing.pin_sha256;
    const status = pairingStatus(pairing, remote.offloader.queues[pin]);
    const busy = this._busy.has(`pairing:${pin}`);
    const meta = [`${pairing.receiver_hostname}:${pairing.receiver_port}`];
    if (pairing.esphome_version !== "") meta.push(localize("app.esphome_version", { version: pairing.esphome_version }));
    if (pairing.version_policy !== null) meta.push(localize("build_servers.versions.pairing_policy", { policy: localize(`build_servers.versions.policy.${pairing.version_policy}`) }));
    if (pairing.auto_provision_supported) meta.push(localize("build_servers.versions.pairing_installs"));
    const statusText =
      status.kind === "busy" && (status.running > 0 || status.waiting > 0)
        ? localize("build_servers.status.busy_counts", { running: status.running, waiting: status.waiting })
        : localize(`build_servers.status.${status.kind}`);
    const pending = pairing.status === "pending";
    return html`<li class="row pairing" data-pin=${pin} data-status=${status.kind}>
      <div class="row-main">
        <div class="row-title">
          <span class="name">${pairing.label}</span>
          <span class="badge status ${status.tone}">${statusText}</span>
        </div>
        <div class="secondary meta">
          <span>${meta.join(" · ")}</span> ${fingerprint(pin, localize, { size: "small" })}
        </div>
        ${pending ? html`<div class="secondary hint">${localize("build_servers.offloader.pending_hint", { label: pairing.label })}</div>` : nothing}
        ${!pairing.connected && pairing.last_connect_error !== "" && !pending
          ? html`<div class="error-text">${localize("build_servers.offloader.last_error", { error: pairing.last_connect_error })}</div>`
          : nothing}
      </div>
      <div class="row-actions">
        ${pending
          ? nothing
          : html`<md-switch
              class="pairing-switch"
              aria-label=${localize("build_servers.offloader.use", { label: pairing.label })}
              title=${localize("build_servers.offloader.use", { label: pairing.label })}
              .selected=${pairing.enabled}
              ?disabled=${busy}
              @change=${(e: Event) => { this.#toggle(e, `pairing:${pin}`, (c, on) => c.api.setPairingEnabled(pin, on)); }}
            ></md-switch>`}
        ${pending
          ? nothing
          : html`<md-icon-button
              class="edit"
              aria-label=${localize("build_servers.offloader.edit", { label: pairing.label })}
              title=${localize("build_servers.offloader.edit", { label: pairing.label })}
              @click=${() => {
                showEndpointDialog(this, { pin_sha256: pin, label: pairing.label, hostname: pairing.receiver_hostname, port: pairing.receiver_port });
              }}
              >${icon(mdiPencil)}</md-icon-button
            >`}
        ${pending || !pairing.connected
          ? nothing
          : html`<md-icon-button
              class="reset-build-env"
              aria-label=${localize(pairing.reset_build_env_supported ? "build_servers.offloader.reset" : "build_servers.offloader.reset_unsupported", { label: pairing.label })}
              title=${localize(pairing.reset_build_env_supported ? "build_servers.offloader.reset" : "build_servers.offloader.reset_unsupported", { label: pairing.label })}
              ?disabled=${!pairing.reset_build_env_supported || this._busy.has(`reset:${pin}`)}
              @click=${() => void this.#resetBuildEnv(pairing)}
              >${icon(mdiDeleteSweep)}</md-icon-button
            >`}
        <md-icon-button
          class="unpair"
          aria-label=${localize(pending ? "build_servers.offloader.cancel_request" : "build_servers.offloader.unpair_named", { label: pairing.label })}
          title=${localize(pending ? "build_servers.offloader.cancel_request" : "build_servers.offloader.unpair_named", { label: pairing.label })}
          ?disabled=${busy}
          @click=${() => void this.#unpair(pin, pairing.label)}
          >${icon(mdiDelete)}</md-icon-button
        >
      </div>
    </li>`;
  }

  #renderHost(host: DiscoveredHost): TemplateResult {
    const { localize } = this.ctx as PanelContext;
    const endpoint = hostEndpoint(host);
    const title = hostTitle(host);
    const meta = [endpoint === null ? host.hostname : `${endpoint.hostname}:${endpoint.port}`];
    if (host.esphome_version !== "") meta.push(localize("app.esphome_version", { version: host.esphome_version }));
    return html`<li class="row host" data-name=${host.name}>
      <span class="row-icon">${icon(mdiLan)}</span>
      <div class="row-main">
        <div class="row-title"><span class="name">${title}</span></div>
        <div class="secondary meta">${meta.join(" · ")}</div>
        ${endpoint === null ? html`<div class="secondary hint">${localize("build_servers.offloader.host_off")}</div>` : nothing}
      </div>
      <div class="row-actions">
        <md-outlined-button class="pair" ?disabled=${endpoint === null} aria-label=${localize("build_servers.offloader.pair_named", { label: title })} @click=${() => { this.#pairHost(host); }}
          >${localize("build_servers.offloader.pair")}</md-outlined-button
        >
      </div>
    </li>`;
  }

  static override styles = [
    sharedStyles,
    emptyStateStyles,
    fingerprintStyles,
    versionPolicyStyles,
    css`
      :host {
        display: flex;
        flex-direction: column;
        gap: 16px;
        max-width: 960px;
        margin: 0 auto;
      }
      .alerts {
        display: flex;
        flex-direction: column;
        gap: 12px;
      }
      .offloader-alert {
        border: 1px solid color-mix(in srgb, var(--error-color, #db4437) 40%, transparent);
        padding: 16px;
      }
      .builder-problem {
        border: 1px solid color-mix(in srgb, var(--warning-color, #ffa600) 50%, transparent);
        padding: 16px;
      }
      .builder-problem .alert-title {
        color: var(--primary-text-color, #212121);
      }
      .builder-problem .alert-message {
        overflow-wrap: anywhere;
      }
      .alert-body {
        display: flex;
        flex-direction: column;
        gap: 6px;
        min-width: 0;
        flex: 1;
      }
      .alert-title {
        font-weight: 500;
        font-size: 16px;
        color: var(--esphome-error-text, var(--error-color, #db4437));
      }
      .alert-message {
        font-size: 14px;
        color: var(--secondary-text-color, #727272);
      }
      .steps {
        margin: 4px 0;
        padding-left: 20px;
        font-size: 14px;
        line-height: 20px;
      }
      .steps li + li {
        margin-top: 4px;
      }
      .observed {
        display: flex;
        align-items: center;
        flex-wrap: wrap;
        gap: 4px 8px;
        font-size: 13px;
      }
      .alert-actions {
        display: flex;
        flex-wrap: wrap;
        gap: 8px;
        margin-top: 6px;
      }
      .card-header {
        display: flex;
        gap: 16px;
        align-items: flex-start;
        padding: 16px 16px 8px;
      }
      .header-icon {
        display: flex;
        align-items: center;
        justify-content: center;
        width: 40px;
        height: 40px;
        flex: none;
        border-radius: 50%;
        color: var(--primary-color, #03a9f4);
        background: color-mix(in srgb, var(--primary-color, #03a9f4) 14%, transparent);
      }
      .header-text {
        flex: 1;
        min-width: 0;
      }
      .header-action {
        flex: none;
        margin: 2px -4px 0 0;
      }
      h2 {
        margin: 0;
        font-size: 20px;
        font-weight: 400;
        line-height: 40px;
      }
      .header-text p {
        margin: 0 0 4px;
        font-size: 14px;
        line-height: 20px;
      }
      h3 {
        margin: 0 0 4px;
        font-size: 14px;
        font-weight: 500;
        letter-spacing: 0.02em;
        color: var(--secondary-text-color, #727272);
      }
      .card-content {
        padding: 8px 16px 16px 72px;
      }
      .identity-content {
        display: flex;
        flex-wrap: wrap;
        align-items: flex-start;
        justify-content: space-between;
        gap: 12px 24px;
      }
      .identity-content .fingerprint {
        max-width: 400px;
      }
      .identity-label {
        display: flex;
        flex-direction: column;
        gap: 2px;
      }
      .builder-label {
        font-size: 16px;
        font-weight: 500;
      }
      .identity-label .secondary {
        font-size: 13px;
      }
      .card-actions {
        display: flex;
        flex-wrap: wrap;
        justify-content: flex-end;
        gap: 8px;
        padding: 8px;
        border-top: 1px solid var(--divider-color, rgba(0, 0, 0, 0.12));
      }
      .switch-row {
        display: flex;
        align-items: center;
        gap: 16px;
        padding: 12px 16px 12px 72px;
        cursor: pointer;
      }
      .switch-text {
        flex: 1;
        min-width: 0;
        display: flex;
        flex-direction: column;
        gap: 4px;
        font-size: 14px;
        line-height: 20px;
      }
      .switch-label {
        font-size: 15px;
        font-weight: 500;
      }
      .switch-warning {
        display: flex;
        gap: 6px;
        align-items: flex-start;
        color: var(--esphome-warning-text, var(--warning-color, #ffa600));
      }
      .switch-warning .icon {
        width: 18px;
        height: 18px;
        margin-top: 1px;
      }
      .never-warning {
        color: var(--esphome-warning-text, var(--warning-color, #ffa600));
      }
      .local-builds-select {
        flex: none;
        max-width: 50%;
        min-height: 40px;
        padding: 0 12px;
        border: 1px solid var(--outline-color, var(--divider-color, rgba(0, 0, 0, 0.38)));
        border-radius: 4px;
        background: var(--card-background-color, #fff);
        color: var(--primary-text-color, #212121);
        font: inherit;
        font-size: 14px;
      }
      .local-builds .switch-row {
        cursor: default;
      }
      .local-builds .switch-row + .switch-row {
        border-top: 1px solid var(--divider-color, rgba(0, 0, 0, 0.12));
      }
      md-switch {
        flex: none;
        --md-switch-selected-handle-color: var(--text-primary-color, #fff);
        --md-switch-selected-hover-handle-color: var(--text-primary-color, #fff);
        --md-switch-selected-focus-handle-color: var(--text-primary-color, #fff);
        --md-switch-selected-pressed-handle-color: var(--text-primary-color, #fff);
        --md-switch-selected-track-color: var(--primary-color, #03a9f4);
        --md-switch-selected-hover-track-color: var(--primary-color, #03a9f4);
        --md-switch-selected-focus-track-color: var(--primary-color, #03a9f4);
        --md-switch-selected-pressed-track-color: var(--primary-color, #03a9f4);
      }
      .window {
        display: flex;
        gap: 12px;
        align-items: flex-start;
        margin: 4px 16px 12px 72px;
        padding: 12px 16px;
        border-radius: var(--ha-border-radius-md, 12px);
        background: var(--secondary-background-color, #f0f0f0);
        font-size: 14px;
        line-height: 20px;
      }
      .window.open {
        background: color-mix(in srgb, var(--success-color, #43a047) 12%, transparent);
      }
      .window.open > .icon {
        color: var(--esphome-success-text, var(--success-color, #43a047));
      }
      .window-text {
        display: flex;
        flex-direction: column;
        gap: 2px;
        min-width: 0;
      }
      .window-state {
        font-weight: 500;
      }
      .countdown {
        font-weight: 400;
        font-variant-numeric: tabular-nums;
        color: var(--secondary-text-color, #727272);
      }
      .subsection {
        padding: 8px 16px 12px 72px;
      }
      .hint {
        margin: 0;
        font-size: 14px;
        line-height: 20px;
      }
      .list {
        list-style: none;
        margin: 0;
        padding: 0;
        border: 1px solid var(--divider-color, rgba(0, 0, 0, 0.12));
        border-radius: var(--ha-border-radius-md, 12px);
      }
      .row {
        display: flex;
        align-items: center;
        gap: 12px;
        padding: 12px 8px 12px 16px;
      }
      .row + .row {
        border-top: 1px solid var(--divider-color, rgba(0, 0, 0, 0.12));
      }
      .row-icon {
        display: flex;
        color: var(--secondary-text-color, #727272);
      }
      .row-main {
        flex: 1;
        min-width: 0;
        display: flex;
        flex-direction: column;
        gap: 4px;
      }
      .row-title {
        display: flex;
        align-items: center;
        flex-wrap: wrap;
        gap: 4px 10px;
      }
      .name {
        font-size: 15px;
        font-weight: 500;
        overflow-wrap: anywhere;
      }
      .meta {
        display: flex;
        align-items: center;
        flex-wrap: wrap;
        gap: 2px 10px;
        font-size: 13px;
        overflow-wrap: anywhere;
      }
      .compare {
        display: flex;
        flex-direction: column;
        gap: 6px;
        margin-top: 4px;
        font-size: 13px;
      }
      .row-actions {
        display: flex;
        align-items: center;
        flex-wrap: wrap;
        justify-content: flex-end;
        gap: 4px 8px;
        flex: none;
      }
      .request .row-actions {
        align-self: flex-end;
      }
      .error-text {
        font-size: 13px;
        color: var(--esphome-error-text, var(--error-color, #db4437));
        overflow-wrap: anywhere;
      }
      @media (max-width: 600px) {
        :host {
          gap: 12px;
        }
        .card-header {
          gap: 12px;
          padding: 12px 12px 4px;
        }
        .header-icon {
          width: 32px;
          height: 32px;
        }
        .card-header {
          flex-wrap: wrap;
        }
        .header-text {
          flex-basis: calc(100% - 44px);
        }
        .header-action {
          margin: -4px 0 0 auto;
        }
        .header-icon .icon {
          width: 20px;
          height: 20px;
        }
        h2 {
          font-size: 18px;
          line-height: 32px;
        }
        .card-content,
        .switch-row,
        .subsection {
          padding-left: 12px;
          padding-right: 12px;
        }
        .window {
          margin-left: 12px;
          margin-right: 12px;
        }
        .local-builds .switch-row {
          flex-wrap: wrap;
        }
        .local-builds-select {
          max-width: none;
          width: 100%;
        }
        .local-builds .switch-text {
          flex-basis: 100%;
        }
        .local-builds md-outlined-button {
          margin-left: auto;
        }
        .row {
          flex-wrap: wrap;
          padding-left: 12px;
        }
        .row-main {
          flex-basis: calc(100% - 48px);
        }
        .row-actions {
          margin-left: auto;
        }
        .request .row-actions {
          width: 100%;
        }
      }
    `,
  ];
}

declare global {
  interface HTMLElementTagNameMap {
    "esphome-build-servers-view": EsphomeBuildServersView;
  }
}
