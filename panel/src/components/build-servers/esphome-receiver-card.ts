/**
 * "Build server": this builder compiling for others. The switch (with its
 * warning), the version policy, the pairing window (open while this card is
 * shown and the build server is on, with its countdown), pairing requests
 * to accept or reject, and the builders it accepts builds from.
 */
import "@material/web/button/filled-button.js";
import "@material/web/button/text-button.js";
import "@material/web/iconbutton/icon-button.js";
import "@material/web/switch/switch.js";
import { css, html, nothing, type PropertyValues, type TemplateResult } from "lit";
import { customElement, property, state } from "lit/decorators.js";
import type { PanelContext } from "../../common/context.ts";
import { icon, mdiAlertCircle, mdiCheck, mdiDelete, mdiServer, mdiTimerOutline } from "../../common/icons.ts";
import type { LocalizeFunc } from "../../common/localize.ts";
import { errorText } from "../../data/api.ts";
import type { ConnectionStatus } from "../../data/connection.ts";
import { formatCountdown, receiverPeers, windowSecondsLeft, type RemoteBuildState } from "../../data/remote-build.ts";
import type { PairingWindow, ReceiverPeer } from "../../data/types.ts";
import { fingerprint } from "../fingerprint.ts";
import { versionPolicySelect } from "../version-policy.ts";
import { BuildServersSection, cardHeader } from "./section.ts";
import { cardStyles } from "./styles.ts";

/** The builder keeps a window open 300 s per client; extend well before that. */
const WINDOW_EXTEND_MS = 60_000;

@customElement("esphome-receiver-card")
export class EsphomeReceiverCard extends BuildServersSection {
  /** The panel's connection to the builder: a dropped one closes the window on the builder already. */
  @property({ attribute: false }) accessor connection: ConnectionStatus | undefined = undefined;

  /** Ticks once a second while the pairing window is open (the countdown). */
  @state() private accessor _now = Date.now();
  @state() private accessor _windowError: string | null = null;

  /** This card asked the builder to keep the pairing window open. */
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
    // Leaving the view closes the pairing window it opened.
    this.#syncWindow();
    this.#stopTick();
  }

  protected override willUpdate(changed: PropertyValues<this>): void {
    if (!changed.has("remote")) return;
    // The countdown runs from when the last window event arrived.
    const window = this.remote?.receiver.window ?? null;
    if (window !== this.#window) {
      this.#window = window;
      this.#windowAt = Date.now();
      this._now = this.#windowAt;
    }
  }

  protected override updated(changed: PropertyValues<this>): void {
    if (!changed.has("remote") && !changed.has("connection")) return;
    this.#syncWindow();
    if (this.#window?.open === true) this.#startTick();
    else this.#stopTick();
  }

  // ---- the pairing window: open while this card is shown ----

  #wantsWindow(): boolean {
    return this.isConnected && this.connection === "open" && this.remote?.receiver.enabled === true;
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
      if (this.connection === "open") void this.ctx?.api.setPairingWindow(false).catch(() => undefined);
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

  /** A request is rejected at once; an approved builder is removed after asking. */
  async #removePeer(peer: ReceiverPeer): Promise<void> {
    const key = `peer:${peer.dashboard_id}`;
    const remove = (c: PanelContext): Promise<unknown> => c.api.removePeer(peer.dashboard_id);
    if (peer.status === "approved") await this.confirmThenRun("build_servers.receiver.remove_confirm", { label: peer.label }, key, remove);
    else await this.run(key, remove);
  }

  // ---- rendering ----

  protected override render(): TemplateResult | typeof nothing {
    if (this.ctx === undefined || this.remote === undefined) return nothing;
    const { localize } = this.ctx;
    const remote = this.remote;
    const enabled = remote.receiver.enabled;
    const { pending, approved } = receiverPeers(remote);
    return html`<section class="card receiver" aria-labelledby="receiver-title">
      ${cardHeader({ icon: mdiServer, titleId: "receiver-title", title: localize("build_servers.receiver.title"), text: localize("build_servers.receiver.text") })}
      <label class="switch-row">
        <span class="switch-text">
          <span class="switch-label">${localize("build_servers.receiver.switch")}</span>
          <span class="switch-warning">${icon(mdiAlertCircle)}<span>${localize("build_servers.receiver.warning")}</span></span>
        </span>
        <md-switch
          class="receiver-switch"
          aria-label=${localize("build_servers.receiver.switch")}
          .selected=${enabled}
          ?disabled=${this.busy.has("receiver")}
          @change=${(e: Event) => { this.toggle(e, "receiver", (c, on) => c.api.setReceiverEnabled(on)); }}
        ></md-switch>
      </label>
      ${enabled
        ? html`
            ${versionPolicySelect(localize, {
              role: "receiver",
              value: remote.receiver.versionPolicy,
              disabled: this.busy.has("version_policy"),
              onChange: (policy) => void this.run("version_policy", (c) => c.api.setVersionPolicy(policy)),
              notes: [
                ...(!remote.receiver.autoProvision && (remote.receiver.versionPolicy === "exact" || remote.receiver.versionPolicy === "exact_required")
                  ? [localize("build_servers.versions.receiver_cannot_install")]
                  : []),
                ...(remote.receiver.ccache ? [localize("build_servers.versions.ccache_on")] : []),
              ],
            })}
            ${this.#renderWindow(remote, localize)}
            <div class="subsection" role="group" aria-labelledby="requests-title">
              <h3 id="requests-title">${localize("build_servers.receiver.requests")}</h3>
              ${pending.length === 0
                ? html`<p class="secondary hint">${localize("build_servers.receiver.no_requests", {
                    // A port is not a quantity: no digit grouping.
                    port: String(remote.identity.listener_port ?? ""),
                  })}</p>`
                : html`<ul class="list">${pending.map((p) => this.#renderRequest(p, localize))}</ul>`}
            </div>
          `
        : nothing}
      ${approved.length === 0
        ? nothing
        : html`<div class="subsection" role="group" aria-labelledby="peers-title">
            <h3 id="peers-title">${localize("build_servers.receiver.peers")}</h3>
            <ul class="list">${approved.map((p) => this.#renderPeer(p, localize))}</ul>
          </div>`}
    </section>`;
  }

  #renderWindow(remote: RemoteBuildState, localize: LocalizeFunc): TemplateResult {
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

  #renderRequest(peer: ReceiverPeer, localize: LocalizeFunc): TemplateResult {
    const busy = this.busy.has(`peer:${peer.dashboard_id}`);
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
          @click=${() => void this.run(`peer:${peer.dashboard_id}`, (c) => c.api.approvePeer(peer.dashboard_id))}
          ><span slot="icon">${icon(mdiCheck)}</span>${localize("build_servers.receiver.accept")}</md-filled-button
        >
      </div>
    </li>`;
  }

  #renderPeer(peer: ReceiverPeer, localize: LocalizeFunc): TemplateResult {
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
          ?disabled=${this.busy.has(`peer:${peer.dashboard_id}`)}
          @click=${() => void this.#removePeer(peer)}
          >${icon(mdiDelete)}</md-icon-button
        >
      </div>
    </li>`;
  }

  static override styles = [
    ...cardStyles,
    css`
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
      .compare {
        display: flex;
        flex-direction: column;
        gap: 6px;
        margin-top: 4px;
        font-size: 13px;
      }
      .request .row-actions {
        align-self: flex-end;
      }
      @media (max-width: 600px) {
        .window {
          margin-left: 12px;
          margin-right: 12px;
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
    "esphome-receiver-card": EsphomeReceiverCard;
  }
}
