/**
 * The install dialog: choose how (wirelessly, a serial port of the server, or
 * a firmware download), then follow the job: progress through compile and
 * upload, the live log, "Building on …" while a build server compiles, Stop,
 * and a clear result. Closing it leaves the job running; only Stop cancels.
 */
import "@material/web/button/filled-button.js";
import "@material/web/button/outlined-button.js";
import "@material/web/button/text-button.js";
import "@material/web/dialog/dialog.js";
import "@material/web/iconbutton/icon-button.js";
import "@material/web/list/list.js";
import "@material/web/list/list-item.js";
import "@material/web/progress/circular-progress.js";
import "@material/web/progress/linear-progress.js";
import { LitElement, css, html, nothing, type TemplateResult } from "lit";
import { customElement, property, state } from "lit/decorators.js";
import "../components/esphome-log-viewer.ts";
import type { PanelContext } from "../common/context.ts";
import { formatKilobytes } from "../common/format.ts";
import {
  icon,
  mdiAlertCircle,
  mdiArrowLeft,
  mdiCheckCircle,
  mdiChevronRight,
  mdiClose,
  mdiDownload,
  mdiRefresh,
  mdiServerNetwork,
  mdiStop,
  mdiStopCircle,
  mdiUsb,
  mdiWifi,
} from "../common/icons.ts";
import { LogModel } from "../common/log-model.ts";
import { dialogHeaderStyles, dialogStyles, progressStyles, sharedStyles } from "../common/styles.ts";
import { errorText } from "../data/api.ts";
import type { StreamHandle } from "../data/connection.ts";
import { downloadFirmware } from "../data/download.ts";
import { canBuildLocally, localRetryArgs, progressView, remoteBuildLabel, resultKind, type DialogPurpose } from "../data/job-view.ts";
import { deviceTitle, type AppState } from "../data/state.ts";
import { isTerminal, type FirmwareBinary, type FirmwareJob, type SerialPort } from "../data/types.ts";
import type { DialogElement, InstallDialogParams } from "./show-dialog.ts";

type Step = "method" | "ports" | "job" | "binaries";

@customElement("esphome-install-dialog")
export class EsphomeInstallDialog extends LitElement implements DialogElement<InstallDialogParams> {
  @property({ attribute: false }) accessor ctx: PanelContext | undefined = undefined;

  @state() private accessor _open = false;
  @state() private accessor _configuration = "";
  @state() private accessor _step: Step = "method";
  @state() private accessor _purpose: DialogPurpose = "install";
  @state() private accessor _jobId: string | null = null;
  @state() private accessor _job: FirmwareJob | null = null;
  @state() private accessor _state: AppState | null = null;
  @state() private accessor _ports: SerialPort[] | null = null;
  @state() private accessor _portsError: string | null = null;
  @state() private accessor _busy = false;
  @state() private accessor _error: string | null = null;
  @state() private accessor _switching = false;
  @state() private accessor _switchError: string | null = null;
  @state() private accessor _binaries: FirmwareBinary[] | null = null;
  @state() private accessor _binariesError: string | null = null;
  @state() private accessor _logDone = false;

  readonly #log = new LogModel();
  #follow: StreamHandle | null = null;
  #unsubscribeStore: (() => void) | null = null;
  /** The job as the command that created it returned it, until the store has it. */
  #snapshot: FirmwareJob | null = null;
  #lastPort = "";
  #binariesFor: string | null = null;

  showDialog(params: InstallDialogParams): void {
    const ctx = this.ctx;
    if (ctx === undefined) return;
    this.#reset();
    this._configuration = params.configuration;
    this.#unsubscribeStore = ctx.store.subscribe((s) => {
      this.#onState(s);
    });
    this.#onState(ctx.store.state);
    if (params.jobId !== undefined) {
      const job = ctx.store.state.jobs[params.jobId];
      this._purpose = job?.job_type ?? "install";
      this.#followJob(params.jobId, job ?? null);
    } else if (params.binaries === true) {
      this._purpose = "download";
      this._step = "binaries";
      void this.#loadBinaries();
    } else {
      this._step = "method";
    }
    this._open = true;
  }

  closeDialog(): void {
    this._open = false;
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.#reset();
  }

  #reset(): void {
    this.#follow?.cancel();
    this.#follow = null;
    this.#unsubscribeStore?.();
    this.#unsubscribeStore = null;
    this.#snapshot = null;
    this.#binariesFor = null;
    this.#log.clear();
    this._jobId = null;
    this._job = null;
    this._ports = null;
    this._portsError = null;
    this._busy = false;
    this._error = null;
    this._switching = false;
    this._switchError = null;
    this._binaries = null;
    this._binariesError = null;
    this._logDone = false;
  }

  #onState(s: AppState): void {
    this._state = s;
    if (this._jobId === null) return;
    const job = s.jobs[this._jobId] ?? this.#snapshot;
    if (job !== this._job) this._job = job;
    if (job !== null && job.status === "completed" && this._purpose === "download" && this.#binariesFor !== job.job_id) {
      this.#binariesFor = job.job_id;
      void this.#loadBinaries();
    }
  }

  #followJob(jobId: string, snapshot: FirmwareJob | null): void {
    const ctx = this.ctx;
    if (ctx === undefined) return;
    this.#follow?.cancel();
    this.#log.clear();
    this._logDone = false;
    this.#snapshot = snapshot;
    this._jobId = jobId;
    this._step = "job";
    this.#onState(ctx.store.state);
    this.#follow = ctx.api.followJob(jobId, {
      onReset: () => {
        this.#log.clear();
      },
      onOutput: (line) => {
        this.#log.push(line);
      },
      onResult: () => {
        this._logDone = true;
      },
      onError: (err) => {
        this._error = errorText(err);
        this._logDone = true;
      },
    });
  }

  async #start(method: "ota" | "serial" | "download", port = ""): Promise<void> {
    const ctx = this.ctx;
    if (ctx === undefined || this._busy) return;
    this._busy = true;
    this._error = null;
    try {
      let job: FirmwareJob;
      if (method === "download") {
        this._purpose = "download";
        job = await ctx.api.compile(this._configuration);
      } else {
        this._purpose = "install";
        this.#lastPort = port;
        job = await ctx.api.install(this._configuration, { port });
      }
      this.#followJob(job.job_id, job);
    } catch (err) {
      this._error = this.ctx?.localize("install.start_failed", { message: errorText(err) }) ?? errorText(err);
    } finally {
      this._busy = false;
    }
  }

  async #retry(): Promise<void> {
    const ctx = this.ctx;
    const job = this._job;
    if (ctx === undefined || job === null || this._busy) return;
    this._busy = true;
    this._error = null;
    try {
      let next: FirmwareJob;
      switch (job.job_type) {
        case "install":
          next = await ctx.api.install(job.configuration, { port: job.port !== "" ? job.port : this.#lastPort });
          break;
        case "compile":
          next = await ctx.api.compile(job.configuration);
          break;
        case "upload":
          next = await ctx.api.upload(job.configuration, job.port);
          break;
        case "clean":
          next = await ctx.api.clean(job.configuration);
          break;
        case "clean_all":
          next = job.source === "remote" ? await ctx.api.resetBuildEnv(job.source_pin_sha256) : await ctx.api.cleanAll();
          break;
      }
      this._binaries = null;
      this.#followJob(next.job_id, next);
    } catch (err) {
      this._error = ctx.localize("install.start_failed", { message: errorText(err) });
    } finally {
      this._busy = false;
    }
  }

  async #clean(): Promise<void> {
    const ctx = this.ctx;
    if (ctx === undefined || this._busy) return;
    this._busy = true;
    this._error = null;
    try {
      const job = await ctx.api.clean(this._configuration);
      this._purpose = "clean";
      this.#followJob(job.job_id, job);
    } catch (err) {
      this._error = ctx.localize("install.start_failed", { message: errorText(err) });
    } finally {
      this._busy = false;
    }
  }

  async #stop(): Promise<void> {
    const ctx = this.ctx;
    if (ctx === undefined || this._jobId === null) return;
    try {
      await ctx.api.cancel(this._jobId);
    } catch (err) {
      this._error = ctx.localize("install.stop_failed", { message: errorText(err) });
    }
  }

  async #buildLocally(): Promise<void> {
    const ctx = this.ctx;
    const job = this._job;
    if (ctx === undefined || job === null || this._switching) return;
    this._switching = true;
    this._switchError = null;
    try {
      const args = localRetryArgs(job);
      const next = await ctx.api.install(args.configuration, {
        ...(args.port === undefined ? {} : { port: args.port }),
        forceLocal: true,
      });
      this.#followJob(next.job_id, next);
    } catch (err) {
      this._switchError = ctx.localize("install.switch_failed", { message: errorText(err) });
    } finally {
      this._switching = false;
    }
  }

  async #showPorts(): Promise<void> {
    this._step = "ports";
    await this.#loadPorts();
  }

  async #loadPorts(): Promise<void> {
    const ctx = this.ctx;
    if (ctx === undefined) return;
    this._ports = null;
    this._portsError = null;
    try {
      this._ports = await ctx.api.serialPorts();
    } catch (err) {
      this._ports = [];
      this._portsError = ctx.localize("install.ports.failed", { message: errorText(err) });
    }
  }

  async #loadBinaries(): Promise<void> {
    const ctx = this.ctx;
    if (ctx === undefined) return;
    this._binaries = null;
    this._binariesError = null;
    try {
      this._binaries = await ctx.api.getBinaries(this._configuration);
    } catch (err) {
      this._binaries = [];
      this._binariesError = ctx.localize("common.error", { message: errorText(err) });
    }
  }

  async #download(file: string): Promise<void> {
    const ctx = this.ctx;
    if (ctx === undefined) return;
    try {
      await downloadFirmware(ctx.api, this._configuration, file);
    } catch (err) {
      this._binariesError = ctx.localize("common.error", { message: errorText(err) });
    }
  }

  #closed(e: Event): void {
    // md-dialog's `closed` also bubbles from nested dialogs/menus; only ours counts.
    if (e.target !== e.currentTarget) return;
    this._open = false;
    this.#reset();
    this.dispatchEvent(new CustomEvent("dialog-closed", { bubbles: true, composed: true }));
  }

  // ---- rendering ----

  protected override render(): TemplateResult | typeof nothing {
    const ctx = this.ctx;
    // A clean_all names no device ("" here): its log still opens.
    if (ctx === undefined || (this._configuration === "" && this._purpose !== "clean_all")) return nothing;
    const { localize } = ctx;
    const device = this._state?.devices[this._configuration];
    const name = deviceTitle(device, this._configuration);
    const titleKey = `install.title.${this._purpose}` as const;
    return html`
      <md-dialog
        class=${this._step === "job" ? "wide" : ""}
        .open=${this._open}
        @closed=${this.#closed}
      >
        <div slot="headline" class="headline">
          <span class="title">${localize(titleKey, { name })}</span>
          <md-icon-button aria-label=${localize("common.close")} title=${localize("common.close")} @click=${() => { this.closeDialog(); }}>
            ${icon(mdiClose)}
          </md-icon-button>
        </div>
        <div slot="content" class="content step-${this._step}">${this.#renderStep(device?.address ?? `${name}.local`)}</div>
        <div slot="actions">${this.#renderActions()}</div>
      </md-dialog>
    `;
  }

  #renderStep(address: string): TemplateResult {
    switch (this._step) {
      case "method":
        return this.#renderMethod(address);
      case "ports":
        return this.#renderPorts();
      case "job":
        return this.#renderJob();
      case "binaries":
        return this.#renderBinaries();
    }
  }

  #renderError(): TemplateResult | typeof nothing {
    if (this._error === null) return nothing;
    return html`<div class="alert error" role="alert">${icon(mdiAlertCircle)}<span>${this._error}</span></div>`;
  }

  #renderMethod(address: string): TemplateResult {
    const { localize } = this.ctx as PanelContext;
    return html`
      <p class="lead">${localize("install.choose_method")}</p>
      ${this.#renderError()}
      <md-list class="methods" aria-label=${localize("install.choose_method")}>
        <md-list-item type="button" data-method="ota" ?disabled=${this._busy} @click=${() => void this.#start("ota")}>
          <span slot="start" class="method-icon">${icon(mdiWifi)}</span>
          <span slot="headline">${localize("install.method.ota")}</span>
          <span slot="supporting-text">${localize("install.method.ota_text", { address })}</span>
          <span slot="end">${icon(mdiChevronRight)}</span>
        </md-list-item>
        <md-list-item type="button" data-method="serial" ?disabled=${this._busy} @click=${() => void this.#showPorts()}>
          <span slot="start" class="method-icon">${icon(mdiUsb)}</span>
          <span slot="headline">${localize("install.method.serial")}</span>
          <span slot="supporting-text">${localize("install.method.serial_text")}</span>
          <span slot="end">${icon(mdiChevronRight)}</span>
        </md-list-item>
        <md-list-item type="button" data-method="download" ?disabled=${this._busy} @click=${() => void this.#start("download")}>
          <span slot="start" class="method-icon">${icon(mdiDownload)}</span>
          <span slot="headline">${localize("install.method.download")}</span>
          <span slot="supporting-text">${localize("install.method.download_text")}</span>
          <span slot="end">${icon(mdiChevronRight)}</span>
        </md-list-item>
      </md-list>
    `;
  }

  #renderPorts(): TemplateResult {
    const { localize } = this.ctx as PanelContext;
    const ports = this._ports;
    let body: TemplateResult;
    if (ports === null) {
      body = html`<div class="placeholder" role="status">
        <md-circular-progress indeterminate aria-label=${localize("install.ports.loading")}></md-circular-progress>
        <span>${localize("install.ports.loading")}</span>
      </div>`;
    } else if (this._portsError !== null) {
      body = html`<div class="alert error" role="alert">${icon(mdiAlertCircle)}<span>${this._portsError}</span></div>`;
    } else if (ports.length === 0) {
      body = html`<div class="placeholder empty" role="status">${icon(mdiUsb)}<span>${localize("install.ports.empty")}</span></div>`;
    } else {
      body = html`<md-list class="ports" aria-label=${localize("install.ports.title")}>
        ${ports.map(
          (p) => html`<md-list-item type="button" data-port=${p.port} ?disabled=${this._busy} @click=${() => void this.#start("serial", p.port)}>
            <span slot="start" class="method-icon">${icon(mdiUsb)}</span>
            <span slot="headline">${p.desc}</span>
            <span slot="supporting-text">${p.port}</span>
            ${p.hint === null
              ? nothing
              : html`<span slot="end" class="badge info" title=${localize(p.hint === "esp" ? "install.ports.hint_esp_title" : "install.ports.hint_bridge_title")}
                  >${localize(p.hint === "esp" ? "install.ports.hint_esp" : "install.ports.hint_bridge")}</span
                >`}
          </md-list-item>`,
        )}
      </md-list>`;
    }
    return html`
      <div class="ports-header">
        <span class="lead">${localize("install.ports.title")}</span>
        <md-icon-button aria-label=${localize("install.ports.refresh")} title=${localize("install.ports.refresh")} @click=${() => void this.#loadPorts()}>
          ${icon(mdiRefresh)}
        </md-icon-button>
      </div>
      ${this.#renderError()} ${body}
    `;
  }

  #renderJob(): TemplateResult {
    const { localize } = this.ctx as PanelContext;
    const job = this._job;
    if (job === null) {
      return html`${this.#renderError()}
        <div class="placeholder" role="status"><md-circular-progress indeterminate></md-circular-progress>${localize("install.starting")}</div>`;
    }
    const view = progressView(job);
    const kind = resultKind(job);
    const remote = remoteBuildLabel(job);
    let phaseText: string;
    if (job.status === "queued") phaseText = localize("install.waiting");
    else phaseText = localize(view.phase === null ? "install.starting" : `phase.${view.phase}`);
    return html`
      ${kind === null
        ? html`
            <div class="progress-row" aria-live="polite">
              <span class="phase">
                ${view.steps > 1 ? html`<span class="secondary">${localize("install.step", { step: view.step, steps: view.steps })} · </span>` : nothing}${phaseText}
              </span>
              ${view.indeterminate ? nothing : html`<span class="percent">${view.value}%</span>`}
            </div>
            <md-linear-progress
              aria-label=${localize("install.progress_label")}
              .value=${view.value / 100}
              ?indeterminate=${view.indeterminate}
            ></md-linear-progress>
          `
        : this.#renderResult(job)}
      ${remote === null
        ? nothing
        : html`<div class="remote" role="status">
            ${icon(mdiServerNetwork)}
            <span class="remote-label">${localize("install.building_on", { label: remote })}</span>
            ${canBuildLocally(job)
              ? html`<md-text-button class="build-locally" ?disabled=${this._switching} @click=${() => void this.#buildLocally()}>
                  ${localize(this._switching ? "install.switching" : "install.build_locally")}
                </md-text-button>`
              : nothing}
          </div>`}
      ${this._switchError === null ? nothing : html`<div class="alert error" role="alert">${icon(mdiAlertCircle)}<span>${this._switchError}</span></div>`}
      ${this.#renderError()}
      ${this._purpose === "download" && job.status === "completed" ? this.#renderBinaryList() : nothing}
      <esphome-log-viewer .model=${this.#log} .localize=${localize} ?done=${this._logDone}></esphome-log-viewer>
    `;
  }

  #renderResult(job: FirmwareJob): TemplateResult {
    const { localize } = this.ctx as PanelContext;
    const kind = resultKind(job);
    if (kind === "success") {
      const key = `install.result.${this._purpose}` as const;
      return html`<div class="alert success result" role="status" data-result="success">${icon(mdiCheckCircle)}<span>${localize(key)}</span></div>`;
    }
    if (kind === "cancelled") {
      return html`<div class="alert warning result" role="status" data-result="cancelled">
        ${icon(mdiStopCircle)}
        <div><div class="result-title">${localize("install.result.cancelled")}</div>${job.error === null ? nothing : html`<div class="secondary">${job.error}</div>`}</div>
      </div>`;
    }
    return html`<div class="alert error result" role="alert" data-result="failed">
      ${icon(mdiAlertCircle)}
      <div>
        <div class="result-title">${localize("install.result.failed", { type: localize(`job_type.${job.job_type}`) })}</div>
        ${job.error === null ? nothing : html`<div class="error-text">${job.error}</div>`}
        ${job.job_type === "clean"
          ? nothing
          : html`<div class="secondary hint">${localize("install.failed_hint")}</div>
              <md-text-button class="clean" ?disabled=${this._busy} @click=${() => void this.#clean()}>${localize("install.clean_action")}</md-text-button>`}
      </div>
    </div>`;
  }

  #renderBinaryList(): TemplateResult {
    const { localize } = this.ctx as PanelContext;
    const binaries = this._binaries;
    if (binaries === null) {
      return html`<div class="placeholder" role="status"><md-circular-progress indeterminate></md-circular-progress>${localize("install.binaries_loading")}</div>`;
    }
    return html`
      ${this._binariesError === null ? nothing : html`<div class="alert error" role="alert">${icon(mdiAlertCircle)}<span>${this._binariesError}</span></div>`}
      ${binaries.length === 0 && this._binariesError === null ? html`<div class="placeholder">${localize("install.binaries_none")}</div>` : nothing}
      <div class="binaries" role="list" aria-label=${localize("install.binaries")}>
        ${binaries.map(
          (b) => html`<div class="binary" role="listitem">
            <div class="binary-text">
              <div>${b.title}</div>
              <div class="secondary">${b.download_name} · ${localize("install.size", { size: formatKilobytes(b.size) })}</div>
            </div>
            <md-outlined-button data-file=${b.file} aria-label=${localize("install.download_binary", { title: b.title })} @click=${() => void this.#download(b.file)}>
              <span slot="icon">${icon(mdiDownload)}</span>${localize("common.download")}
            </md-outlined-button>
          </div>`,
        )}
      </div>
    `;
  }

  #renderBinaries(): TemplateResult {
    return html`${this.#renderError()}${this.#renderBinaryList()}`;
  }

  #renderActions(): TemplateResult {
    const { localize } = this.ctx as PanelContext;
    const job = this._job;
    const active = job !== null && !isTerminal(job.status);
    const back =
      this._step === "ports"
        ? html`<md-text-button class="back" @click=${() => { this._step = "method"; this._error = null; }}>
            <span slot="icon">${icon(mdiArrowLeft)}</span>${localize("common.back")}
          </md-text-button>`
        : nothing;
    const retry =
      this._step === "job" && job !== null && (job.status === "failed" || job.status === "cancelled")
        ? html`<md-outlined-button class="retry" ?disabled=${this._busy} @click=${() => void this.#retry()}>${localize("common.retry")}</md-outlined-button>`
        : nothing;
    const stop =
      this._step === "job" && active
        ? html`<md-outlined-button class="stop" @click=${() => void this.#stop()}>
            <span slot="icon">${icon(mdiStop)}</span>${localize("common.stop")}
          </md-outlined-button>`
        : nothing;
    return html`${back}<span class="spacer"></span>${stop}${retry}
      <md-text-button class="close" @click=${() => { this.closeDialog(); }}>${localize("common.close")}</md-text-button>`;
  }

  static override styles = [
    sharedStyles,
    dialogStyles,
    dialogHeaderStyles,
    progressStyles,
    css`
      .content {
        display: flex;
        flex-direction: column;
        gap: 12px;
        min-height: 0;
      }
      .content.step-job {
        height: 100%;
        min-height: 0;
      }
      .lead {
        margin: 0;
        font-size: 16px;
        color: var(--primary-text-color, #212121);
      }
      md-list {
        padding: 0;
        background: transparent;
        --md-list-container-color: transparent;
        border: 1px solid var(--divider-color, rgba(0, 0, 0, 0.12));
        border-radius: var(--ha-border-radius-md, 12px);
        overflow: hidden;
      }
      md-list-item {
        --md-list-item-label-text-color: var(--primary-text-color, #212121);
        --md-list-item-supporting-text-color: var(--secondary-text-color, #727272);
        --md-list-item-leading-icon-color: var(--primary-color, #03a9f4);
        --md-list-item-trailing-icon-color: var(--secondary-text-color, #727272);
      }
      md-list-item + md-list-item {
        border-top: 1px solid var(--divider-color, rgba(0, 0, 0, 0.12));
      }
      .method-icon {
        color: var(--primary-color, #03a9f4);
        display: flex;
      }
      .ports-header {
        display: flex;
        align-items: center;
        justify-content: space-between;
      }
      .placeholder {
        display: flex;
        align-items: center;
        gap: 12px;
        padding: 16px 0;
        color: var(--secondary-text-color, #727272);
        --md-circular-progress-size: 32px;
      }
      .progress-row {
        display: flex;
        justify-content: space-between;
        align-items: baseline;
        gap: 12px;
        font-size: 14px;
      }
      .phase {
        font-weight: 500;
      }
      .percent {
        font-variant-numeric: tabular-nums;
        color: var(--secondary-text-color, #727272);
      }
      md-linear-progress {
        --esphome-progress-height: 6px;
      }
      .remote {
        display: flex;
        align-items: center;
        flex-wrap: wrap;
        gap: 4px 8px;
        color: var(--secondary-text-color, #727272);
        font-size: 14px;
        min-height: 36px;
      }
      .remote .icon {
        width: 20px;
        height: 20px;
      }
      .build-locally {
        margin-left: auto;
      }
      .result-title {
        font-weight: 500;
      }
      .error-text {
        white-space: pre-wrap;
        font-family: var(--ha-font-family-code, ui-monospace, monospace);
        font-size: 13px;
        margin-top: 4px;
      }
      .hint {
        margin-top: 4px;
        font-size: 13px;
      }
      .result md-text-button {
        margin: 4px 0 -6px -12px;
      }
      .binaries {
        display: flex;
        flex-direction: column;
        border: 1px solid var(--divider-color, rgba(0, 0, 0, 0.12));
        border-radius: var(--ha-border-radius-md, 12px);
      }
      .binary {
        display: flex;
        align-items: center;
        gap: 12px;
        padding: 10px 12px 10px 16px;
      }
      .binary + .binary {
        border-top: 1px solid var(--divider-color, rgba(0, 0, 0, 0.12));
      }
      .binary-text {
        flex: 1;
        min-width: 0;
        overflow-wrap: anywhere;
      }
      .binary-text .secondary {
        font-size: 12px;
      }
      esphome-log-viewer {
        /* Fills what the wide dialog has left; never smaller than a few lines. */
        flex: 1 1 0;
        min-height: 144px;
      }
      [slot="actions"] .spacer {
        flex: 1;
      }
      @media (max-width: 600px) {
        /* Following a job takes the whole phone screen. */
        md-dialog.wide {
          width: 100%;
          max-width: 100%;
          height: 100%;
          max-height: 100%;
          --md-dialog-container-shape: 0;
        }
        .build-locally {
          margin-left: 0;
        }
      }
    `,
  ];
}

declare global {
  interface HTMLElementTagNameMap {
    "esphome-install-dialog": EsphomeInstallDialog;
  }
}
