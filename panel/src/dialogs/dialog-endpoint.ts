/**
 * Moving a pairing to a new address. The builder checks that the build server
 * there presents the same key; when it does not, its answer is shown and
 * nothing changes.
 */
import "@material/web/button/filled-button.js";
import "@material/web/button/text-button.js";
import "@material/web/dialog/dialog.js";
import { LitElement, css, html, nothing, type TemplateResult } from "lit";
import { customElement, property, state } from "lit/decorators.js";
import { fireToast, type PanelContext } from "../common/context.ts";
import { icon, mdiAlertCircle, mdiShieldAlert } from "../common/icons.ts";
import { renderEndpointFields } from "../common/endpoint-fields.ts";
import { dialogStyles, endpointFieldStyles, sharedStyles } from "../common/styles.ts";
import { errorText } from "../data/api.ts";
import { ApiError } from "../data/connection.ts";
import { parseEndpoint } from "../data/remote-build.ts";
import type { DialogElement, EndpointDialogParams } from "./show-dialog.ts";

@customElement("esphome-endpoint-dialog")
export class EsphomeEndpointDialog extends LitElement implements DialogElement<EndpointDialogParams> {
  @property({ attribute: false }) accessor ctx: PanelContext | undefined = undefined;
  @state() private accessor _open = false;
  @state() private accessor _params: EndpointDialogParams | null = null;
  @state() private accessor _hostname = "";
  @state() private accessor _port = "";
  @state() private accessor _busy = false;
  @state() private accessor _error: { mismatch: boolean; message: string } | null = null;
  @state() private accessor _fieldError: "host" | "port" | null = null;

  showDialog(params: EndpointDialogParams): void {
    this._params = params;
    this._hostname = params.hostname;
    this._port = String(params.port);
    this._busy = false;
    this._error = null;
    this._fieldError = null;
    this._open = true;
  }

  async #save(): Promise<void> {
    const ctx = this.ctx;
    const params = this._params;
    if (ctx === undefined || params === null || this._busy) return;
    const endpoint = parseEndpoint(this._hostname, this._port);
    if ("error" in endpoint) {
      this._fieldError = endpoint.error;
      return;
    }
    this._fieldError = null;
    this._busy = true;
    this._error = null;
    try {
      await ctx.api.editPairingEndpoint(params.pin_sha256, endpoint.hostname, endpoint.port);
      this._open = false;
      fireToast(this, { message: ctx.localize("endpoint.saved", { label: params.label, address: `${endpoint.hostname}:${endpoint.port}` }) });
    } catch (err) {
      this._error = { mismatch: err instanceof ApiError && err.code === "invalid_args", message: errorText(err) };
    } finally {
      this._busy = false;
    }
  }

  protected override render(): TemplateResult | typeof nothing {
    const ctx = this.ctx;
    const params = this._params;
    if (ctx === undefined || params === null) return nothing;
    const { localize } = ctx;
    return html`
      <md-dialog .open=${this._open} @closed=${(e: Event) => { if (e.target === e.currentTarget) this._open = false; }}>
        <div slot="headline">${localize("endpoint.title", { label: params.label })}</div>
        <div
          slot="content"
          class="content"
          @keydown=${(e: KeyboardEvent) => {
            if (e.key === "Enter" && (e.target as HTMLElement).localName === "md-outlined-text-field") {
              e.preventDefault();
              void this.#save();
            }
          }}
        >
          <p class="lead">${localize("endpoint.text", { label: params.label })}</p>
          ${this._error === null
            ? nothing
            : html`<div class="alert error" role="alert" data-error=${this._error.mismatch ? "mismatch" : "other"}>
                ${icon(this._error.mismatch ? mdiShieldAlert : mdiAlertCircle)}
                <div>
                  ${this._error.mismatch ? html`<div class="alert-title">${localize("endpoint.mismatch")}</div>` : nothing}
                  <div>${this._error.message}</div>
                </div>
              </div>`}
          ${renderEndpointFields({
            localize,
            hostname: this._hostname,
            port: this._port,
            fieldError: this._fieldError,
            onHostname: (hostname) => { this._hostname = hostname; },
            onPort: (port) => { this._port = port; },
          })}
        </div>
        <div slot="actions">
          <md-text-button class="cancel" @click=${() => { this._open = false; }}>${localize("common.cancel")}</md-text-button>
          <md-filled-button class="save" ?disabled=${this._busy} @click=${() => void this.#save()}>
            ${localize(this._busy ? "endpoint.checking" : "endpoint.save")}
          </md-filled-button>
        </div>
      </md-dialog>
    `;
  }

  static override styles = [
    sharedStyles,
    dialogStyles,
    endpointFieldStyles,
    css`
      md-dialog {
        --esphome-dialog-width: 520px;
      }
      .lead {
        margin: 0;
        line-height: 22px;
      }
      .alert-title {
        font-weight: 500;
      }
    `,
  ];
}

declare global {
  interface HTMLElementTagNameMap {
    "esphome-endpoint-dialog": EsphomeEndpointDialog;
  }
}
