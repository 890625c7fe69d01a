/** A yes/no question (Install all, Clear history). */
import "@material/web/button/filled-button.js";
import "@material/web/button/text-button.js";
import "@material/web/dialog/dialog.js";
import { LitElement, css, html, nothing, type TemplateResult } from "lit";
import { customElement, property, state } from "lit/decorators.js";
import type { PanelContext } from "../common/context.ts";
import { sharedStyles } from "../common/styles.ts";
import type { ConfirmDialogParams, DialogElement } from "./show-dialog.ts";

@customElement("esphome-confirm-dialog")
export class EsphomeConfirmDialog extends LitElement implements DialogElement<ConfirmDialogParams> {
  @property({ attribute: false }) accessor ctx: PanelContext | undefined = undefined;
  @state() private accessor _params: ConfirmDialogParams | undefined = undefined;
  @state() private accessor _open = false;
  #confirmed = false;

  showDialog(params: ConfirmDialogParams): void {
    this._params?.resolve(false);
    this.#confirmed = false;
    this._params = params;
    this._open = true;
  }

  #confirm(): void {
    this.#confirmed = true;
    this._open = false;
  }

  #closed(): void {
    this._params?.resolve(this.#confirmed);
    this._params = undefined;
    this._open = false;
  }

  protected override render(): TemplateResult | typeof nothing {
    const params = this._params;
    if (params === undefined || this.ctx === undefined) return nothing;
    const { localize } = this.ctx;
    return html`
      <md-dialog type="alert" .open=${this._open} @closed=${this.#closed}>
        <div slot="headline">${params.title}</div>
        <div slot="content">${params.text}</div>
        <div slot="actions">
          <md-text-button @click=${() => { this._open = false; }}>${localize("common.cancel")}</md-text-button>
          <md-filled-button @click=${this.#confirm}>${params.action}</md-filled-button>
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
    `,
  ];
}

declare global {
  interface HTMLElementTagNameMap {
    "esphome-confirm-dialog": EsphomeConfirmDialog;
  }
}
