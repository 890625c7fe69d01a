/**
 * Where the builder looks for a device: the owner's address (an IP address or
 * host name), or back to the YAML's. A host-platform device has no address in
 * its YAML (127.0.0.1 until set here).
 */
import "@material/web/button/filled-button.js";
import "@material/web/button/text-button.js";
import "@material/web/dialog/dialog.js";
import "@material/web/textfield/outlined-text-field.js";
import { LitElement, css, html, nothing, type TemplateResult } from "lit";
import { customElement, property, state } from "lit/decorators.js";
import { fireToast, type PanelContext } from "../common/context.ts";
import { sharedStyles } from "../common/styles.ts";
import { errorText } from "../data/api.ts";
import type { DeviceAddressDialogParams, DialogElement } from "./show-dialog.ts";

@customElement("esphome-device-address-dialog")
export class EsphomeDeviceAddressDialog extends LitElement implements DialogElement<DeviceAddressDialogParams> {
  @property({ attribute: false }) accessor ctx: PanelContext | undefined = undefined;
  @state() private accessor _params: DeviceAddressDialogParams | undefined = undefined;
  @state() private accessor _open = false;
  @state() private accessor _value = "";
  @state() private accessor _error = "";
  @state() private accessor _busy = false;

  showDialog(params: DeviceAddressDialogParams): void {
    this._params = params;
    this._value = params.ownerSet ? params.address : "";
    this._error = "";
    this._open = true;
  }

  async #save(address: string | null): Promise<void> {
    const ctx = this.ctx;
    const params = this._params;
    if (ctx === undefined || params === undefined) return;
    this._busy = true;
    try {
      await ctx.api.setDeviceAddress(params.configuration, address === null || address.trim() === "" ? null : address.trim());
      this._open = false;
    } catch (err) {
      this._error = errorText(err);
      fireToast(this, { message: ctx.localize("devices.action_failed", { message: errorText(err) }) });
    } finally {
      this._busy = false;
    }
  }

  protected override render(): TemplateResult | typeof nothing {
    const ctx = this.ctx;
    const params = this._params;
    if (ctx === undefined || params === undefined) return nothing;
    const { localize } = ctx;
    return html`
      <md-dialog .open=${this._open} @closed=${(e: Event) => { if (e.target === e.currentTarget) this._open = false; }}>
        <div slot="headline">${localize("devices.address_dialog.title", { name: params.name })}</div>
        <div slot="content" class="content">
          <p class="secondary">${localize("devices.address_dialog.text", { yaml: params.yamlAddress })}</p>
          <md-outlined-text-field
            label=${localize("devices.address_dialog.label")}
            .value=${this._value}
            ?error=${this._error !== ""}
            error-text=${this._error}
            @input=${(e: Event) => { this._value = (e.target as HTMLInputElement).value; this._error = ""; }}
            @keydown=${(e: KeyboardEvent) => { if (e.key === "Enter") void this.#save(this._value); }}
          ></md-outlined-text-field>
        </div>
        <div slot="actions">
          <md-text-button class="reset" ?disabled=${this._busy || !params.ownerSet} @click=${() => void this.#save(null)}>${localize("devices.address_dialog.reset")}</md-text-button>
          <md-text-button class="cancel" @click=${() => { this._open = false; }}>${localize("common.cancel")}</md-text-button>
          <md-filled-button class="save" ?disabled=${this._busy} @click=${() => void this.#save(this._value)}>${localize("devices.address_dialog.save")}</md-filled-button>
        </div>
      </md-dialog>
    `;
  }

  static override styles = [
    sharedStyles,
    css`
      md-dialog {
        max-width: min(480px, calc(100% - 32px));
      }
      md-outlined-text-field {
        width: 100%;
      }
    `,
  ];
}

declare global {
  interface HTMLElementTagNameMap {
    "esphome-device-address-dialog": EsphomeDeviceAddressDialog;
  }
}
