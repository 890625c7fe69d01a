/**
 * Pairing with a build server: its address -> who answers there and its
 * fingerprint -> the user confirms it matches what the build server shows ->
 * an optional label -> the request -> waiting for the build server's user to
 * accept -> paired. The steps are the pure `pairFlowReducer`; "paired" and
 * "rejected" come from the builder's events through the store.
 */
import "@material/web/button/filled-button.js";
import "@material/web/button/outlined-button.js";
import "@material/web/button/text-button.js";
import "@material/web/dialog/dialog.js";
import "@material/web/iconbutton/icon-button.js";
import "@material/web/progress/circular-progress.js";
import "@material/web/textfield/outlined-text-field.js";
import { LitElement, css, html, nothing, type TemplateResult } from "lit";
import { customElement, property, state } from "lit/decorators.js";
import type { PanelContext } from "../common/context.ts";
import { icon, mdiAlertCircle, mdiArrowLeft, mdiCheckCircle, mdiClose, mdiShieldAlert, mdiTimerOutline } from "../common/icons.ts";
import { renderEndpointFields } from "../common/endpoint-fields.ts";
import { dialogHeaderStyles, dialogStyles, endpointFieldStyles, sharedStyles } from "../common/styles.ts";
import { fingerprint, fingerprintStyles } from "../components/fingerprint.ts";
import { errorText } from "../data/api.ts";
import { ApiError } from "../data/connection.ts";
import {
  announcedPinDiffers,
  flowPairing,
  flowPairingKey,
  needsPairingKey,
  pairFlowReducer,
  pairingKeyReady,
  pairStep,
  startPairFlow,
  type PairAction,
  type PairFlow,
  type PairStep,
} from "../data/pair-flow.ts";
import { DEFAULT_PEER_LINK_PORT, pairingStatus, parseEndpoint } from "../data/remote-build.ts";
import type { AppState } from "../data/state.ts";
import type { DialogElement, PairDialogParams } from "./show-dialog.ts";

@customElement("esphome-pair-dialog")
export class EsphomePairDialog extends LitElement implements DialogElement<PairDialogParams> {
  @property({ attribute: false }) accessor ctx: PanelContext | undefined = undefined;
  @state() private accessor _open = false;
  @state() private accessor _flow: PairFlow = startPairFlow();
  @state() private accessor _state: AppState | null = null;
  @state() private accessor _fieldError: "host" | "port" | null = null;

  #unsubscribe: (() => void) | null = null;
  /** Answers to an older flow (the dialog was reopened) are dropped. */
  #generation = 0;

  showDialog(params: PairDialogParams): void {
    const ctx = this.ctx;
    if (ctx === undefined) return;
    this.#generation++;
    this.#unsubscribe?.();
    this.#unsubscribe = ctx.store.subscribe((s) => {
      this._state = s;
    });
    this._state = ctx.store.state;
    this._fieldError = null;
    this._flow = startPairFlow({
      ...(params.hostname === undefined ? {} : { hostname: params.hostname }),
      ...(params.port === undefined ? {} : { port: params.port }),
      announcedPin: params.announcedPin ?? null,
    });
    this._open = true;
    if (params.preview === true && params.hostname !== undefined) void this.#preview();
    else void this.updateComplete.then(() => this.shadowRoot?.querySelector<HTMLElement>("md-outlined-text-field.host")?.focus());
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.#unsubscribe?.();
    this.#unsubscribe = null;
  }

  #dispatch(action: PairAction): void {
    this._flow = pairFlowReducer(this._flow, action);
  }

  async #preview(): Promise<void> {
    const ctx = this.ctx;
    if (ctx === undefined) return;
    const endpoint = parseEndpoint(this._flow.hostname, this._flow.port);
    if ("error" in endpoint) {
      this._fieldError = endpoint.error;
      return;
    }
    this._fieldError = null;
    const generation = this.#generation;
    this.#dispatch({ type: "preview_started" });
    try {
      const preview = await ctx.api.previewPair(endpoint.hostname, endpoint.port);
      if (generation === this.#generation) this.#dispatch({ type: "preview_ok", preview });
    } catch (err) {
      if (generation === this.#generation) this.#dispatch({ type: "preview_failed", message: errorText(err) });
    }
  }

  async #request(): Promise<void> {
    const ctx = this.ctx;
    const preview = this._flow.preview;
    if (ctx === undefined || preview === null) return;
    const endpoint = parseEndpoint(this._flow.hostname, this._flow.port);
    if ("error" in endpoint) return;
    const key = flowPairingKey(this._flow);
    if (key === null) return;
    const generation = this.#generation;
    this.#dispatch({ type: "request_started" });
    try {
      const pairing = await ctx.api.requestPair(endpoint.hostname, endpoint.port, preview.pin_sha256, this._flow.label, key);
      if (generation === this.#generation) this.#dispatch({ type: "request_ok", pairing });
    } catch (err) {
      if (generation !== this.#generation) return;
      this.#dispatch({ type: "request_failed", code: err instanceof ApiError ? err.code : "error", message: errorText(err) });
    }
  }

  #close(): void {
    this._open = false;
  }

  #closed(e: Event): void {
    if (e.target !== e.currentTarget) return;
    this._open = false;
    this.#generation++;
    this.#unsubscribe?.();
    this.#unsubscribe = null;
  }

  // ---- rendering ----

  protected override render(): TemplateResult | typeof nothing {
    const ctx = this.ctx;
    if (ctx === undefined) return nothing;
    const { localize } = ctx;
    const remote = this._state?.remote ?? null;
    const step = pairStep(this._flow, remote);
    return html`
      <md-dialog .open=${this._open} @closed=${this.#closed} data-step=${step}>
        <div slot="headline" class="headline">
          <span class="title">${localize("pair.title")}</span>
          <md-icon-button aria-label=${localize("common.close")} title=${localize("common.close")} @click=${() => { this.#close(); }}>
            ${icon(mdiClose)}
          </md-icon-button>
        </div>
        <div
          slot="content"
          class="content"
          @keydown=${(e: KeyboardEvent) => {
            if (e.key === "Enter" && (e.target as HTMLElement).localName === "md-outlined-text-field") {
              e.preventDefault();
              this.#submit(step);
            }
          }}
        >
          ${this.#renderStep(step)}
        </div>
        <div slot="actions">${this.#renderActions(step)}</div>
      </md-dialog>
    `;
  }

  #submit(step: PairStep): void {
    if (step === "address") void this.#preview();
    else if (step === "confirm") void this.#request();
  }

  #renderStep(step: PairStep): TemplateResult {
    const { localize } = this.ctx as PanelContext;
    switch (step) {
      case "address":
        return this.#renderAddress();
      case "previewing":
        return this.#renderBusy(localize("pair.previewing", { address: this.#address() }));
      case "confirm":
        return this.#renderConfirm();
      case "requesting":
        return this.#renderBusy(localize("pair.requesting", { label: this._flow.preview?.label ?? this.#address() }));
      case "waiting":
        return this.#renderWaiting();
      case "paired":
        return this.#renderPaired();
      case "rejected":
        return this.#renderRejected();
    }
  }

  #address(): string {
    const port = this._flow.port.trim() === "" ? String(DEFAULT_PEER_LINK_PORT) : this._flow.port.trim();
    return `${this._flow.hostname.trim()}:${port}`;
  }

  #renderError(): TemplateResult | typeof nothing {
    const error = this._flow.error;
    if (error === null) return nothing;
    const { localize } = this.ctx as PanelContext;
    const title =
      error.kind === "mismatch"
        ? localize("pair.error.mismatch")
        : error.kind === "refused"
          ? localize("pair.error.refused")
          : error.kind === "key"
            ? localize("pair.error.key")
            : localize("pair.error.unreachable");
    return html`<div class="alert error" role="alert" data-error=${error.kind}>
      ${icon(error.kind === "mismatch" ? mdiShieldAlert : mdiAlertCircle)}
      <div><div class="alert-title">${title}</div><div class="error-message">${error.message}</div></div>
    </div>`;
  }

  #renderAddress(): TemplateResult {
    const { localize } = this.ctx as PanelContext;
    return html`
      <p class="lead">${localize("pair.address_text")}</p>
      ${this.#renderError()}
      ${renderEndpointFields({
        localize,
        hostname: this._flow.hostname,
        port: this._flow.port,
        fieldError: this._fieldError,
        hostHint: true,
        onHostname: (hostname) => { this.#dispatch({ type: "edit", hostname }); },
        onPort: (port) => { this.#dispatch({ type: "edit", port }); },
      })}
    `;
  }

  #renderBusy(text: string): TemplateResult {
    return html`<div class="placeholder" role="status"><md-circular-progress indeterminate></md-circular-progress><span>${text}</span></div>`;
  }

  #renderConfirm(): TemplateResult {
    const { localize } = this.ctx as PanelContext;
    const preview = this._flow.preview;
    if (preview === null) return html``;
    const meta = [this.#address()];
    if (preview.esphome_version !== "") meta.push(localize("app.esphome_version", { version: preview.esphome_version }));
    return html`
      ${this.#renderError()}
      <div class="server">
        <span class="server-label">${preview.label}</span>
        <span class="secondary">${meta.join(" · ")}</span>
      </div>
      ${announcedPinDiffers(this._flow)
        ? html`<div class="alert warning" role="alert">${icon(mdiShieldAlert)}<span>${localize("pair.announced_differs")}</span></div>`
        : nothing}
      <div class="compare-box">
        <p class="compare-text">${localize("pair.compare", { label: preview.label })}</p>
        ${fingerprint(preview.pin_sha256, localize, { size: "large", hex: true })}
      </div>
      <p class="secondary small">${localize("pair.compare_hint")}</p>
      ${needsPairingKey(this._flow) ? this.#renderPairingKey() : nothing}
      <md-outlined-text-field
        class="label"
        label=${localize("pair.label")}
        supporting-text=${localize("pair.label_hint")}
        maxlength="128"
        .value=${this._flow.label}
        @input=${(e: Event) => { this.#dispatch({ type: "edit", label: (e.target as HTMLInputElement).value }); }}
      ></md-outlined-text-field>
    `;
  }

  /** A headless build server pairs only with the key it printed: one field, grouped as the server prints it. */
  #renderPairingKey(): TemplateResult {
    const { localize } = this.ctx as PanelContext;
    const wrong = this._flow.error?.kind === "key";
    return html`
      <p class="secondary small key-text">${localize("pair.key_text", { label: this._flow.preview?.label ?? "" })}</p>
      <md-outlined-text-field
        class="pairing-key"
        label=${localize("pair.key")}
        supporting-text=${wrong ? localize("pair.key_wrong") : localize("pair.key_hint")}
        placeholder="XXXX-XXXX-XXXX-XXXX"
        autocomplete="off"
        spellcheck="false"
        ?error=${wrong}
        error-text=${localize("pair.key_wrong")}
        .value=${this._flow.pairingKey}
        @input=${(e: Event) => {
          const field = e.target as HTMLInputElement;
          this.#dispatch({ type: "edit", pairingKey: field.value });
          // Show the grouped form at once (the reducer keeps it), so what is typed looks like what was printed.
          field.value = this._flow.pairingKey;
        }}
      ></md-outlined-text-field>
    `;
  }

  #renderWaiting(): TemplateResult {
    const { localize } = this.ctx as PanelContext;
    const preview = this._flow.preview;
    const identity = this._state?.remote?.identity;
    const label = preview?.label ?? this.#address();
    return html`
      <div class="waiting" role="status">
        <md-circular-progress indeterminate></md-circular-progress>
        <div>
          <div class="status-title">${localize("pair.waiting_title")}</div>
          <div class="secondary">${localize("pair.waiting_text", { label, self: identity?.label ?? "" })}</div>
        </div>
      </div>
      ${identity === undefined
        ? nothing
        : html`<div class="compare-box">
            <p class="compare-text">${localize("pair.waiting_compare", { label })}</p>
            ${fingerprint(identity.pin_sha256, localize, { size: "medium" })}
          </div>`}
      <p class="secondary small with-icon">${icon(mdiTimerOutline)}<span>${localize("pair.waiting_close_hint")}</span></p>
    `;
  }

  #renderPaired(): TemplateResult {
    const { localize } = this.ctx as PanelContext;
    const pairing = flowPairing(this._flow, this._state?.remote ?? null);
    const label = pairing?.label ?? this._flow.preview?.label ?? "";
    const status = pairing === undefined ? null : pairingStatus(pairing, this._state?.remote?.offloader.queues[pairing.pin_sha256]);
    return html`<div class="alert success paired" role="status" data-result="paired">
      ${icon(mdiCheckCircle)}
      <div>
        <div class="alert-title">${localize("pair.paired", { label })}</div>
        <div>${localize("pair.paired_text")}</div>
        ${status === null
          ? nothing
          : html`<span class="badge status ${status.tone}" data-status=${status.kind}>${localize(`build_servers.status.${status.kind}`)}</span>`}
      </div>
    </div>`;
  }

  #renderRejected(): TemplateResult {
    const { localize } = this.ctx as PanelContext;
    const pin = this._flow.preview?.pin_sha256 ?? "";
    const reason = this._state?.remote?.offloader.removed[pin] ?? "";
    return html`<div class="alert error" role="alert" data-result="rejected">
      ${icon(mdiAlertCircle)}
      <div>
        <div class="alert-title">${localize("pair.rejected", { label: this._flow.preview?.label ?? "" })}</div>
        <div class="secondary">${localize("pair.rejected_text", { reason })}</div>
      </div>
    </div>`;
  }

  #renderActions(step: PairStep): TemplateResult {
    const { localize } = this.ctx as PanelContext;
    const back = html`<md-text-button class="back" @click=${() => { this.#dispatch({ type: "back" }); }}>
      <span slot="icon">${icon(mdiArrowLeft)}</span>${localize("common.back")}
    </md-text-button>`;
    const cancel = html`<md-text-button class="cancel" @click=${() => { this.#close(); }}>${localize("common.cancel")}</md-text-button>`;
    switch (step) {
      case "address":
        return html`<span class="spacer"></span>${cancel}
          <md-filled-button class="next" ?disabled=${this._flow.hostname.trim() === ""} @click=${() => void this.#preview()}>${localize("pair.next")}</md-filled-button>`;
      case "previewing":
      case "requesting":
        return html`<span class="spacer"></span>${cancel}`;
      case "confirm":
        return html`${back}<span class="spacer"></span>
          ${this._flow.error?.kind === "mismatch"
            ? html`<md-filled-button class="preview-again" @click=${() => void this.#preview()}>${localize("pair.preview_again")}</md-filled-button>`
            : html`<md-filled-button class="confirm" ?disabled=${!pairingKeyReady(this._flow)} @click=${() => void this.#request()}>${localize("pair.confirm")}</md-filled-button>`}`;
      case "waiting":
        return html`<span class="spacer"></span><md-text-button class="close" @click=${() => { this.#close(); }}>${localize("pair.close_waiting")}</md-text-button>`;
      case "paired":
        return html`<span class="spacer"></span><md-filled-button class="done" @click=${() => { this.#close(); }}>${localize("pair.done")}</md-filled-button>`;
      case "rejected":
        return html`${back}<span class="spacer"></span>${cancel}`;
    }
  }

  static override styles = [
    sharedStyles,
    dialogStyles,
    dialogHeaderStyles,
    endpointFieldStyles,
    fingerprintStyles,
    css`
      .lead {
        margin: 0;
        font-size: 16px;
        line-height: 24px;
      }
      .placeholder,
      .waiting {
        display: flex;
        align-items: center;
        gap: 16px;
        padding: 8px 0;
        --md-circular-progress-size: 36px;
      }
      .placeholder {
        color: var(--secondary-text-color, #727272);
      }
      .status-title,
      .alert-title {
        font-weight: 500;
      }
      .server {
        display: flex;
        flex-direction: column;
        gap: 2px;
      }
      .server-label {
        font-size: 18px;
        font-weight: 500;
      }
      .server .secondary {
        font-size: 13px;
        overflow-wrap: anywhere;
      }
      .compare-box {
        display: flex;
        flex-direction: column;
        gap: 12px;
        padding: 16px;
        border-radius: var(--ha-border-radius-md, 12px);
        border: 1px solid var(--divider-color, rgba(0, 0, 0, 0.12));
      }
      .compare-text {
        margin: 0;
        font-weight: 500;
        line-height: 20px;
      }
      .small {
        margin: 0;
        font-size: 13px;
        line-height: 18px;
      }
      .with-icon {
        display: flex;
        gap: 8px;
        align-items: flex-start;
      }
      .with-icon .icon {
        width: 18px;
        height: 18px;
      }
      .error-message {
        font-size: 14px;
      }
      .pairing-key {
        font-family: var(--code-font-family, monospace);
      }
      .key-text {
        margin-top: 4px;
      }
      .paired .badge {
        margin-top: 8px;
      }
      [slot="actions"] .spacer {
        flex: 1;
      }
    `,
  ];
}

declare global {
  interface HTMLElementTagNameMap {
    "esphome-pair-dialog": EsphomePairDialog;
  }
}
