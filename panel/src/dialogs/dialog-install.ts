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
import { LitElement, html, nothing, type TemplateResult } from "lit";
import { customElement, property, state } from "lit/decorators.js";
import "../components/esphome-log-viewer.ts";
import type { PanelContext } from "../common/context.ts";
import { icon, mdiArrowLeft, mdiClose, mdiStop } from "../common/icons.ts";
import type { LocalizeFunc } from "../common/localize.ts";
import { LogModel } from "../common/log-model.ts";
import { dialogHeaderStyles, dialogStyles, progressStyles, sharedStyles } from "../common/styles.ts";
import { errorText } from "../data/api.ts";
import type { StreamHandle } from "../data/connection.ts";
import { downloadFirmware } from "../data/download.ts";
import { localRetryArgs, type DialogPurpose } from "../data/job-view.ts";
import { deviceTitle, type AppState } from "../data/state.ts";
import { isTerminal, type FirmwareBinary, type FirmwareJob, type SerialPort } from "../data/types.ts";
import { installDialogStyles } from "./dialog-install.styles.ts";
import { jobProgress } from "./install-progress.ts";
import { binaryList, errorAlert, methodStep, portsStep } from "./install-steps.ts";
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
        <div slot="content" class="content step-${this._step}">${this.#renderStep(device?.address ?? `${name}.local`, localize)}</div>
        <div slot="actions">${this.#renderActions(localize)}</div>
      </md-dialog>
    `;
  }

  #renderStep(address: string, localize: LocalizeFunc): TemplateResult {
    switch (this._step) {
      case "method":
        return methodStep(localize, {
          address,
          error: this._error,
          busy: this._busy,
          onOta: () => void this.#start("ota"),
          onSerial: () => void this.#showPorts(),
          onDownload: () => void this.#start("download"),
        });
      case "ports":
        return portsStep(localize, {
          ports: this._ports,
          portsError: this._portsError,
          error: this._error,
          busy: this._busy,
          onPort: (port) => void this.#start("serial", port),
          onRefresh: () => void this.#loadPorts(),
        });
      case "job":
        return this.#renderJob(localize);
      case "binaries":
        return html`${errorAlert(this._error)}${this.#renderBinaryList(localize)}`;
    }
  }

  #renderJob(localize: LocalizeFunc): TemplateResult {
    const job = this._job;
    if (job === null) {
      return html`${errorAlert(this._error)}
        <div class="placeholder" role="status"><md-circular-progress indeterminate></md-circular-progress>${localize("install.starting")}</div>`;
    }
    return html`
      ${jobProgress(localize, job, {
        purpose: this._purpose,
        busy: this._busy,
        switching: this._switching,
        onClean: () => void this.#clean(),
        onBuildLocally: () => void this.#buildLocally(),
      })}
      ${errorAlert(this._switchError)} ${errorAlert(this._error)}
      ${this._purpose === "download" && job.status === "completed" ? this.#renderBinaryList(localize) : nothing}
      <esphome-log-viewer .model=${this.#log} .localize=${localize} ?done=${this._logDone}></esphome-log-viewer>
    `;
  }

  #renderBinaryList(localize: LocalizeFunc): TemplateResult {
    return binaryList(localize, { binaries: this._binaries, error: this._binariesError, onDownload: (file) => void this.#download(file) });
  }

  #renderActions(localize: LocalizeFunc): TemplateResult {
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

  static override styles = [sharedStyles, dialogStyles, dialogHeaderStyles, progressStyles, installDialogStyles];
}

declare global {
  interface HTMLElementTagNameMap {
    "esphome-install-dialog": EsphomeInstallDialog;
  }
}
