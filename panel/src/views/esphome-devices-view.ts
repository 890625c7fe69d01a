/**
 * Devices: every YAML in the config folder with its name, file, platform,
 * address and last job; search; Install (one, selected, all), Clean and
 * Download firmware. Lists update live from the event stream.
 */
import "@material/web/button/filled-button.js";
import "@material/web/button/outlined-button.js";
import "@material/web/button/text-button.js";
import "@material/web/checkbox/checkbox.js";
import "@material/web/iconbutton/icon-button.js";
import "@material/web/textfield/outlined-text-field.js";
import { LitElement, css, html, nothing, type TemplateResult } from "lit";
import { customElement, property, state } from "lit/decorators.js";
import { fireToast, type PanelContext } from "../common/context.ts";
import { icon, mdiAlertCircle, mdiBroom, mdiChip, mdiDownload, mdiFileDocumentOutline, mdiMagnify, mdiUpload } from "../common/icons.ts";
import { emptyStateStyles, sharedStyles } from "../common/styles.ts";
import { statusBadge } from "../components/job-status.ts";
import { jobsWaitForEsphome } from "../data/esphome-view.ts";
import { errorText } from "../data/api.ts";
import { deviceTitle, filterDevices, selectDevices, selectLastJobs, type AppState } from "../data/state.ts";
import type { Device, FirmwareJob } from "../data/types.ts";
import { showConfirmDialog, showInstallDialog } from "../dialogs/show-dialog.ts";

@customElement("esphome-devices-view")
export class EsphomeDevicesView extends LitElement {
  @property({ attribute: false }) accessor ctx: PanelContext | undefined = undefined;
  @property({ attribute: false }) accessor state: AppState | undefined = undefined;
  @property({ type: Boolean, reflect: true }) accessor narrow = false;

  @state() private accessor _query = "";
  @state() private accessor _selected: ReadonlySet<string> = new Set();
  @state() private accessor _busy = false;

  #install(device: Device): void {
    showInstallDialog(this, { configuration: device.configuration });
  }

  async #run(action: () => Promise<void>): Promise<void> {
    const ctx = this.ctx;
    if (ctx === undefined) return;
    try {
      await action();
    } catch (err) {
      fireToast(this, { message: ctx.localize("devices.action_failed", { message: errorText(err) }) });
    }
  }

  #clean(device: Device): void {
    void this.#run(async () => {
      const job = await (this.ctx as PanelContext).api.clean(device.configuration);
      showInstallDialog(this, { configuration: device.configuration, jobId: job.job_id });
    });
  }

  #download(device: Device): void {
    void this.#run(async () => {
      const ctx = this.ctx as PanelContext;
      const binaries = await ctx.api.getBinaries(device.configuration);
      if (binaries.length === 0) {
        fireToast(this, { message: ctx.localize("devices.no_binaries", { name: deviceTitle(device, device.configuration) }) });
        return;
      }
      showInstallDialog(this, { configuration: device.configuration, binaries: true });
    });
  }

  #installBulk(configurations: readonly string[] | "all"): void {
    const ctx = this.ctx;
    if (ctx === undefined || this._busy) return;
    this._busy = true;
    void this.#run(async () => {
      try {
        const jobs = await ctx.api.installBulk(configurations);
        this._selected = new Set();
        fireToast(this, {
          message: ctx.localize("devices.bulk_queued", { count: jobs.length }),
          action: {
            label: ctx.localize("devices.view_jobs"),
            run: () => {
              this.dispatchEvent(new CustomEvent("esphome-navigate", { detail: "jobs", bubbles: true, composed: true }));
            },
          },
        });
      } finally {
        this._busy = false;
      }
    });
  }

  async #installAll(count: number): Promise<void> {
    const ctx = this.ctx;
    if (ctx === undefined) return;
    const ok = await showConfirmDialog(this, {
      title: ctx.localize("devices.confirm_install_all.title"),
      text: ctx.localize("devices.confirm_install_all.text", { count }),
      action: ctx.localize("devices.confirm_install_all.action"),
    });
    if (ok) this.#installBulk("all");
  }

  #toggle(configuration: string, checked: boolean): void {
    const next = new Set(this._selected);
    if (checked) next.add(configuration);
    else next.delete(configuration);
    this._selected = next;
  }

  #toggleAll(shown: readonly Device[], checked: boolean): void {
    const next = new Set(this._selected);
    for (const d of shown) {
      if (checked) next.add(d.configuration);
      else next.delete(d.configuration);
    }
    this._selected = next;
  }

  protected override render(): TemplateResult | typeof nothing {
    const ctx = this.ctx;
    const st = this.state;
    if (ctx === undefined || st === undefined) return nothing;
    const { localize } = ctx;
    const all = selectDevices(st.devices);
    const shown = filterDevices(all, this._query);
    const lastJobs = selectLastJobs(st.jobs);
    // Selections of devices that disappeared do not count.
    const selected = all.filter((d) => this._selected.has(d.configuration)).map((d) => d.configuration);
    const allShownSelected = shown.length > 0 && shown.every((d) => this._selected.has(d.configuration));
    const someShownSelected = shown.some((d) => this._selected.has(d.configuration));

    return html`
      <div class="toolbar">
        <md-outlined-text-field
          class="search"
          type="search"
          label=${localize("devices.search")}
          aria-label=${localize("devices.search")}
          .value=${this._query}
          @input=${(e: Event) => {
            this._query = (e.target as HTMLInputElement).value;
          }}
        >
          <span slot="leading-icon">${icon(mdiMagnify)}</span>
        </md-outlined-text-field>
        <div class="bulk">
          <md-outlined-button
            class="install-selected"
            ?disabled=${selected.length === 0 || this._busy}
            @click=${() => { this.#installBulk(selected); }}
          >${localize("devices.install_selected", { count: selected.length })}</md-outlined-button>
          <md-filled-button class="install-all" ?disabled=${all.length === 0 || this._busy} @click=${() => void this.#installAll(all.length)}>
            <span slot="icon">${icon(mdiUpload)}</span>${localize("devices.install_all")}
          </md-filled-button>
        </div>
      </div>
      <section class="card" aria-label=${localize("app.tabs.devices")}>
        ${all.length === 0
          ? html`<div class="empty">${icon(mdiChip)}<p>${localize("devices.empty", { dir: st.server?.config_dir ?? "" })}</p></div>`
          : html`
              <div class="row header" role="presentation">
                <span class="check">
                  <md-checkbox
                    touch-target="wrapper"
                    aria-label=${localize("devices.select_all")}
                    .checked=${allShownSelected}
                    .indeterminate=${someShownSelected && !allShownSelected}
                    ?disabled=${shown.length === 0}
                    @change=${(e: Event) => { this.#toggleAll(shown, (e.target as HTMLInputElement).checked); }}
                  ></md-checkbox>
                </span>
                <span class="name">${localize("devices.columns.name")}</span>
                <span class="platform">${localize("devices.columns.platform")}</span>
                <span class="address">${localize("devices.columns.address")}</span>
                <span class="status">${localize("devices.columns.status")}</span>
                <span class="count secondary">${localize("devices.count", { count: shown.length })}</span>
              </div>
              ${shown.length === 0 ? html`<div class="empty small">${localize("devices.no_match", { query: this._query })}</div>` : nothing}
              <ul class="list">
                ${shown.map((d) => this.#renderDevice(d, lastJobs.get(d.configuration)))}
              </ul>
            `}
      </section>
    `;
  }

  #renderDevice(device: Device, job: FirmwareJob | undefined): TemplateResult {
    const { localize } = this.ctx as PanelContext;
    const name = deviceTitle(device, device.configuration);
    return html`
      <li class="row device" data-configuration=${device.configuration}>
        <span class="check">
          <md-checkbox
            touch-target="wrapper"
            aria-label=${localize("devices.select", { name })}
            .checked=${this._selected.has(device.configuration)}
            @change=${(e: Event) => { this.#toggle(device.configuration, (e.target as HTMLInputElement).checked); }}
          ></md-checkbox>
        </span>
        <span class="name">
          <span class="device-name">${name}</span>
          <span class="file secondary">${icon(mdiFileDocumentOutline)}${device.configuration}</span>
          ${device.error === null
            ? nothing
            : html`<span class="yaml-error" role="note">${icon(mdiAlertCircle)}${localize("devices.yaml_error", { error: device.error })}</span>`}
        </span>
        <span class="meta">
          <span class="platform">
            <span class="chip">${device.platform?.toUpperCase() ?? localize("devices.platform_unknown")}</span>
          </span>
          <span class="address secondary" title=${device.address}>${device.address}</span>
        </span>
        <span class="status">
          ${job === undefined
            ? html`<span class="secondary never">${localize("status.never")}</span>`
            : html`<button
                class="status-button"
                aria-label=${localize("jobs.open_log", { name })}
                title=${localize("jobs.open_log", { name })}
                @click=${() => { showInstallDialog(this, { configuration: device.configuration, jobId: job.job_id }); }}
              >${statusBadge(job, localize, jobsWaitForEsphome(this.state?.esphome ?? null))}</button>`}
        </span>
        <span class="actions">
          <md-icon-button class="clean" aria-label=${localize("devices.clean", { name })} title=${localize("devices.clean", { name })} @click=${() => { this.#clean(device); }}>
            ${icon(mdiBroom)}
          </md-icon-button>
          <md-icon-button class="download" aria-label=${localize("devices.download", { name })} title=${localize("devices.download", { name })} @click=${() => { this.#download(device); }}>
            ${icon(mdiDownload)}
          </md-icon-button>
          <md-text-button class="install" aria-label=${localize("devices.install_device", { name })} @click=${() => { this.#install(device); }}>
            ${localize("devices.install")}
          </md-text-button>
        </span>
      </li>
    `;
  }

  static override styles = [
    sharedStyles,
    emptyStateStyles,
    css`
      :host {
        display: block;
      }
      .toolbar {
        display: flex;
        flex-wrap: wrap;
        align-items: center;
        gap: 12px 16px;
        margin-bottom: 16px;
      }
      .search {
        flex: 1 1 260px;
        min-width: 0;
        max-width: 480px;
        --md-outlined-text-field-container-shape: var(--ha-border-radius-md, 12px);
        --md-outlined-text-field-top-space: 10px;
        --md-outlined-text-field-bottom-space: 10px;
      }
      .bulk {
        display: flex;
        flex-wrap: wrap;
        gap: 8px;
        margin-left: auto;
      }
      .list {
        list-style: none;
        margin: 0;
        padding: 0;
      }
      .row {
        display: grid;
        grid-template-columns: 48px minmax(160px, 2fr) minmax(80px, 0.7fr) minmax(120px, 1.4fr) minmax(150px, 1fr) 176px;
        grid-template-areas: "check name platform address status actions";
        align-items: center;
        column-gap: 12px;
        padding: 8px 12px 8px 4px;
        min-height: 48px;
      }
      .row.device {
        border-top: 1px solid var(--divider-color, rgba(0, 0, 0, 0.12));
      }
      .row.header {
        min-height: 40px;
        padding-top: 4px;
        padding-bottom: 4px;
        font-size: 12px;
        font-weight: 500;
        letter-spacing: 0.02em;
        color: var(--secondary-text-color, #727272);
      }
      .row.header .count {
        grid-area: actions;
        justify-self: end;
        font-weight: 400;
        padding-right: 4px;
      }
      .check {
        grid-area: check;
        display: flex;
        justify-content: center;
      }
      .name {
        grid-area: name;
        min-width: 0;
        display: flex;
        flex-direction: column;
        gap: 2px;
      }
      .platform {
        grid-area: platform;
      }
      .address {
        grid-area: address;
        min-width: 0;
        overflow: hidden;
        text-overflow: ellipsis;
        white-space: nowrap;
      }
      .device .address {
        font-size: 14px;
      }
      .status {
        grid-area: status;
        min-width: 0;
      }
      .actions {
        grid-area: actions;
        display: flex;
        align-items: center;
        justify-content: flex-end;
        gap: 0;
      }
      .device-name {
        font-size: 15px;
        font-weight: 500;
        overflow: hidden;
        text-overflow: ellipsis;
        white-space: nowrap;
      }
      .file {
        display: inline-flex;
        align-items: center;
        gap: 4px;
        font-size: 12px;
        min-width: 0;
        overflow: hidden;
        text-overflow: ellipsis;
        white-space: nowrap;
      }
      .file .icon {
        width: 14px;
        height: 14px;
      }
      .yaml-error {
        display: inline-flex;
        align-items: flex-start;
        gap: 4px;
        font-size: 12px;
        color: var(--esphome-error-text, var(--error-color, #db4437));
        overflow-wrap: anywhere;
      }
      .yaml-error .icon {
        width: 14px;
        height: 14px;
        margin-top: 1px;
      }
      .chip {
        display: inline-block;
        padding: 2px 8px;
        border-radius: 6px;
        font-size: 11px;
        font-weight: 500;
        letter-spacing: 0.04em;
        border: 1px solid var(--divider-color, rgba(0, 0, 0, 0.12));
        color: var(--secondary-text-color, #727272);
        white-space: nowrap;
      }
      .never {
        font-size: 13px;
      }
      .status-button {
        all: unset;
        cursor: pointer;
        border-radius: 12px;
        display: inline-flex;
      }
      .status-button:focus-visible {
        outline: 2px solid var(--primary-color, #03a9f4);
        outline-offset: 2px;
      }
      .empty {
        overflow-wrap: anywhere;
      }
      .empty.small {
        padding: 24px;
        border-top: 1px solid var(--divider-color, rgba(0, 0, 0, 0.12));
      }
      md-checkbox {
        flex: none;
        --md-checkbox-selected-container-color: var(--primary-color, #03a9f4);
        --md-checkbox-outline-color: var(--secondary-text-color, #727272);
      }
      .meta {
        display: contents;
      }
      @media (max-width: 900px) {
        .row {
          grid-template-columns: 48px minmax(0, 1fr) auto auto;
          grid-template-areas:
            "check name status actions"
            "check meta status actions";
        }
        .row.header {
          grid-template-areas: "check name status actions";
        }
        .row.header .platform,
        .row.header .address,
        .row.header .status {
          display: none;
        }
        .row.header .count {
          grid-area: status / status / actions / actions;
        }
        .meta {
          grid-area: meta;
          display: flex;
          align-items: center;
          gap: 8px;
          min-width: 0;
        }
      }
      @media (max-width: 600px) {
        .toolbar {
          gap: 8px;
        }
        .search {
          flex-basis: 100%;
          max-width: none;
        }
        .bulk {
          margin-left: 0;
          width: 100%;
        }
        .bulk > * {
          flex: 1 1 0;
        }
        .row {
          grid-template-columns: 40px minmax(0, 1fr) auto;
          grid-template-areas:
            "check name actions"
            "check meta meta"
            "check status status";
          row-gap: 4px;
          padding-right: 4px;
        }
        .row.header {
          grid-template-areas: "check name actions";
        }
        .row.header .count {
          grid-area: actions;
        }
        .row.device .actions {
          align-self: start;
        }
        .status {
          justify-self: start;
        }
      }
    `,
  ];
}

declare global {
  interface HTMLElementTagNameMap {
    "esphome-devices-view": EsphomeDevicesView;
  }
  interface HTMLElementEventMap {
    "esphome-navigate": CustomEvent<string>;
  }
}
