/**
 * A device's logs, live: `devices/logs` streams `esphome logs --device
 * <address>` from the builder; colours are rendered, the history is bounded
 * (the newest 5000 lines), and closing the dialog stops the process. Nothing
 * enters the job queue.
 */
import "@material/web/button/text-button.js";
import "@material/web/dialog/dialog.js";
import "@material/web/iconbutton/icon-button.js";
import "../components/esphome-log-viewer.ts";
import { LitElement, css, html, nothing, type TemplateResult } from "lit";
import { customElement, property, state } from "lit/decorators.js";
import type { PanelContext } from "../common/context.ts";
import { icon, mdiClose } from "../common/icons.ts";
import { LogModel } from "../common/log-model.ts";
import { dialogHeaderStyles, dialogStyles, sharedStyles } from "../common/styles.ts";
import { errorText } from "../data/api.ts";
import type { StreamHandle } from "../data/connection.ts";
import type { DeviceLogsDialogParams, DialogElement } from "./show-dialog.ts";

/** Lines a log dialog keeps. */
export const DEVICE_LOG_LINES = 5000;

@customElement("esphome-device-logs-dialog")
export class EsphomeDeviceLogsDialog extends LitElement implements DialogElement<DeviceLogsDialogParams> {
  @property({ attribute: false }) accessor ctx: PanelContext | undefined = undefined;
  @state() private accessor _params: DeviceLogsDialogParams | undefined = undefined;
  @state() private accessor _open = false;
  @state() private accessor _status = "";
  @state() private accessor _done = false;
  #log = new LogModel(DEVICE_LOG_LINES);
  #stream: StreamHandle | null = null;

  showDialog(params: DeviceLogsDialogParams): void {
    this.#stop();
    this.#log = new LogModel(DEVICE_LOG_LINES);
    this._params = params;
    this._open = true;
    this._done = false;
    const ctx = this.ctx;
    if (ctx === undefined) return;
    this._status = "";
    this.#stream = ctx.api.deviceLogs(params.configuration, {
      onStarted: (address) => { this._status = ctx.localize("devices.logs_dialog.connecting", { address }); },
      onLine: (line) => { this.#log.push(line); },
      onEnded: (error) => {
        this._done = true;
        this.#stream = null;
        this._status = error === null ? ctx.localize("devices.logs_dialog.ended_ok") : ctx.localize("devices.logs_dialog.ended", { error });
      },
      onError: (err) => {
        this._done = true;
        this._status = ctx.localize("devices.logs_dialog.ended", { error: errorText(err) });
      },
    });
  }

  #stop(): void {
    this.#stream?.cancel();
    this.#stream = null;
  }

  #closed(e: Event): void {
    if (e.target !== e.currentTarget) return;
    this.#stop();
    this._open = false;
    this._params = undefined;
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.#stop();
  }

  protected override render(): TemplateResult | typeof nothing {
    const ctx = this.ctx;
    const params = this._params;
    if (ctx === undefined || params === undefined) return nothing;
    const { localize } = ctx;
    return html`
      <md-dialog class="wide" .open=${this._open} @closed=${this.#closed}>
        <div slot="headline" class="headline">
          <span class="title">${localize("devices.logs_dialog.title", { name: params.name })}</span>
          <md-icon-button aria-label=${localize("common.close")} title=${localize("common.close")} @click=${() => { this._open = false; }}>
            ${icon(mdiClose)}
          </md-icon-button>
        </div>
        <div slot="content" class="content">
          ${this._status === "" ? nothing : html`<p class="status secondary" role="status">${this._status}</p>`}
          <esphome-log-viewer .model=${this.#log} .localize=${localize} ?done=${this._done}></esphome-log-viewer>
        </div>
        <div slot="actions">
          <md-text-button @click=${() => { this._open = false; }}>${localize("devices.logs_dialog.close")}</md-text-button>
        </div>
      </md-dialog>
    `;
  }

  static override styles = [
    sharedStyles,
    dialogStyles,
    dialogHeaderStyles,
    css`
      .content {
        display: flex;
        flex-direction: column;
        gap: 8px;
        height: 100%;
        min-height: 0;
      }
      .status {
        margin: 0;
        font-size: 13px;
      }
      esphome-log-viewer {
        flex: 1 1 0;
        min-height: 144px;
      }
    `,
  ];
}

declare global {
  interface HTMLElementTagNameMap {
    "esphome-device-logs-dialog": EsphomeDeviceLogsDialog;
  }
}
