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
import { LitElement, html, nothing, type TemplateResult } from "lit";
import { customElement, property, state } from "lit/decorators.js";
import { fireToast, type PanelContext } from "../common/context.ts";
import { icon, mdiAlertCircle, mdiBroom, mdiChip, mdiDownload, mdiFileDocumentOutline, mdiMagnify, mdiPackageUp, mdiPencil, mdiRefresh, mdiTextBoxOutline, mdiUpload, mdiWifi } from "../common/icons.ts";
import { deviceStateCell } from "../components/device-state.ts";
import { emptyStateStyles, sharedStyles } from "../common/styles.ts";
import { devicesViewStyles } from "./esphome-devices-view.styles.ts";
import { statusBadge } from "../components/job-status.ts";
import { jobsWaitForEsphome } from "../data/esphome-view.ts";
import { errorText } from "../data/api.ts";
import { DEVICE_FILTERS, deviceMatches, deviceTitle, filterDevices, selectDevices, selectLastJobs, type AppState, type DeviceFilter } from "../data/state.ts";
import type { BulkFilter, Device, DeviceState, FirmwareJob } from "../data/types.ts";
import { showConfirmDialog, showDeviceAddressDialog, showDeviceLogsDialog, showInstallDialog } from "../dialogs/show-dialog.ts";

const ROWS_FIRST = 12;
const ROWS_STEP = 20;

@customElement("esphome-devices-view")
export class EsphomeDevicesView extends LitElement {
  @property({ attribute: false }) accessor ctx: PanelContext | undefined = undefined;
  @property({ attribute: false }) accessor state: AppState | undefined = undefined;
  @property({ type: Boolean, reflect: true }) accessor narrow = false;

  @state() private accessor _query = "";
  @state() private accessor _selected: ReadonlySet<string> = new Set();
  @state() private accessor _busy = false;
  @state() private accessor _filter: DeviceFilter = "all";
  /**
   * Rows rendered so far: ROWS_FIRST (a screenful) at once, then ROWS_STEP
   * more per frame, so the first rows paint early and the page stays
   * responsive while hundreds of devices fill in.
   */
  @state() private accessor _rows = ROWS_FIRST;
  #growing = 0;

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    cancelAnimationFrame(this.#growing);
    this.#growing = 0;
  }

  #grow(total: number): void {
    if (this._rows >= total || this.#growing !== 0) return;
    this.#growing = requestAnimationFrame(() => {
      this.#growing = 0;
      this._rows = Math.min(total, this._rows + ROWS_STEP);
    });
  }

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

  #installBulk(configurations: readonly string[] | "all", filter: BulkFilter = "all"): void {
    const ctx = this.ctx;
    if (ctx === undefined || this._busy) return;
    this._busy = true;
    void this.#run(async () => {
      try {
        const jobs = await ctx.api.installBulk(configurations, filter);
        this._selected = new Set();
        if (jobs.length === 0) {
          fireToast(this, { message: ctx.localize("devices.bulk_none") });
          return;
        }
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
    const lastJobs = selectLastJobs(st.jobs);
    const states = st.deviceStates;
    const counts = Object.fromEntries(DEVICE_FILTERS.map((f) => [f, all.filter((d) => deviceMatches(f, states[d.configuration], lastJobs.get(d.configuration))).length])) as Record<DeviceFilter, number>;
    const shown = filterDevices(all, this._query).filter((d) => deviceMatches(this._filter, states[d.configuration], lastJobs.get(d.configuration)));
    // Selections of devices that disappeared do not count.
    const selected = all.filter((d) => this._selected.has(d.configuration)).map((d) => d.configuration);
    this.#grow(shown.length);
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
          <md-outlined-button class="install-outdated" ?disabled=${counts.outdated === 0 || this._busy} @click=${() => { this.#installBulk("all", "outdated"); }}>
            <span slot="icon">${icon(mdiPackageUp)}</span>${localize("devices.install_outdated")}
          </md-outlined-button>
          <md-outlined-button class="install-online" ?disabled=${counts.online === 0 || this._busy} @click=${() => { this.#installBulk("all", "online"); }}>
            <span slot="icon">${icon(mdiWifi)}</span>${localize("devices.install_online")}
          </md-outlined-button>
          <md-outlined-button class="retry-failed" ?disabled=${counts.failed === 0 || this._busy} @click=${() => { this.#installBulk("all", "failed"); }}>
            <span slot="icon">${icon(mdiRefresh)}</span>${localize("devices.retry_failed")}
          </md-outlined-button>
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
      <div class="filters" role="radiogroup" aria-label=${localize("devices.filters.label")}>
        ${DEVICE_FILTERS.map(
          (f) => html`<button
            class="filter-chip"
            role="radio"
            data-filter=${f}
            aria-checked=${this._filter === f ? "true" : "false"}
            @click=${() => { this._filter = f; }}
          >${localize(`devices.filters.${f}`)} <span class="n">${counts[f]}</span></button>`,
        )}
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
                <span class="live">${localize("devices.columns.state")}</span>
                <span class="status">${localize("devices.columns.status")}</span>
                <span class="count secondary">${localize("devices.count", { count: shown.length })}</span>
              </div>
              ${shown.length === 0
                ? html`<div class="empty small">${this._query === "" ? localize("devices.no_filter_match") : localize("devices.no_match", { query: this._query })}</div>`
                : nothing}
              <ul class="list">
                ${shown.slice(0, this._rows).map((d) => this.#renderDevice(d, lastJobs.get(d.configuration), states[d.configuration]))}
              </ul>
            `}
      </section>
    `;
  }

  #renderDevice(device: Device, job: FirmwareJob | undefined, live: DeviceState | undefined): TemplateResult {
    const { localize, locale } = this.ctx as PanelContext;
    const address = live?.address ?? device.address;
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
          <button
            class="address secondary"
            title=${localize("devices.edit_address", { name })}
            aria-label=${localize("devices.edit_address", { name })}
            @click=${() => {
              showDeviceAddressDialog(this, { configuration: device.configuration, name, address, ownerSet: live?.address_source === "owner", yamlAddress: device.address });
            }}
          >${address}${live?.address_source === "owner" ? icon(mdiPencil) : nothing}</button>
          <span class="live">${deviceStateCell(live, localize, locale)}</span>
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
          <md-icon-button class="logs" aria-label=${localize("devices.logs", { name })} title=${localize("devices.logs", { name })} @click=${() => { showDeviceLogsDialog(this, { configuration: device.configuration, name }); }}>
            ${icon(mdiTextBoxOutline)}
          </md-icon-button>
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

  static override styles = [sharedStyles, emptyStateStyles, devicesViewStyles];
}

declare global {
  interface HTMLElementTagNameMap {
    "esphome-devices-view": EsphomeDevicesView;
  }
  interface HTMLElementEventMap {
    "esphome-navigate": CustomEvent<string>;
  }
}
