/**
 * Jobs: running, queued and finished jobs with progress, duration and where
 * they build; open a job's log, cancel, clear the history.
 */
import "@material/web/button/outlined-button.js";
import "@material/web/iconbutton/icon-button.js";
import "@material/web/progress/linear-progress.js";
import { LitElement, css, html, nothing, type PropertyValues, type TemplateResult } from "lit";
import { customElement, property, state } from "lit/decorators.js";
import { fireToast, type PanelContext } from "../common/context.ts";
import { formatDuration, formatTime } from "../common/format.ts";
import { icon, mdiBroom, mdiCancel, mdiChip, mdiDeleteSweep, mdiServerNetwork, mdiTextBoxOutline, mdiUpload } from "../common/icons.ts";
import { emptyStateStyles, progressStyles, sharedStyles } from "../common/styles.ts";
import { statusBadge } from "../components/job-status.ts";
import { jobsWaitForEsphome } from "../data/esphome-view.ts";
import { errorText } from "../data/api.ts";
import { jobSubject, progressView, remoteBuildLabel, remotePeerLabel } from "../data/job-view.ts";
import { deviceTitle, jobDuration, selectJobGroups, type AppState } from "../data/state.ts";
import { isTerminal, type FirmwareJob, type JobType } from "../data/types.ts";

const JOB_ICONS: Readonly<Record<JobType, string>> = {
  install: mdiUpload,
  upload: mdiUpload,
  compile: mdiChip,
  clean: mdiBroom,
  clean_all: mdiDeleteSweep,
};
import { showConfirmDialog, showInstallDialog } from "../dialogs/show-dialog.ts";

@customElement("esphome-jobs-view")
export class EsphomeJobsView extends LitElement {
  @property({ attribute: false }) accessor ctx: PanelContext | undefined = undefined;
  @property({ attribute: false }) accessor state: AppState | undefined = undefined;
  @property({ type: Boolean, reflect: true }) accessor narrow = false;

  /** Ticks once a second while a job runs, for live durations (no server polling). */
  @state() private accessor _now = Date.now();
  #timer: ReturnType<typeof setInterval> | null = null;

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.#stopTimer();
  }

  protected override updated(changed: PropertyValues<this>): void {
    if (!changed.has("state")) return;
    const running = selectJobGroups(this.state?.jobs ?? {}).running.length > 0;
    if (running && this.#timer === null) {
      this.#timer = setInterval(() => {
        this._now = Date.now();
      }, 1000);
    } else if (!running) {
      this.#stopTimer();
    }
  }

  #stopTimer(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  async #cancel(job: FirmwareJob): Promise<void> {
    const ctx = this.ctx;
    if (ctx === undefined) return;
    try {
      await ctx.api.cancel(job.job_id);
    } catch (err) {
      fireToast(this, { message: ctx.localize("devices.action_failed", { message: errorText(err) }) });
    }
  }

  async #clearHistory(): Promise<void> {
    const ctx = this.ctx;
    if (ctx === undefined) return;
    const ok = await showConfirmDialog(this, {
      title: ctx.localize("jobs.confirm_clear.title"),
      text: ctx.localize("jobs.confirm_clear.text"),
      action: ctx.localize("jobs.confirm_clear.action"),
    });
    if (!ok) return;
    try {
      const { removed } = await ctx.api.clearHistory();
      fireToast(this, { message: ctx.localize("jobs.cleared", { count: removed }) });
    } catch (err) {
      fireToast(this, { message: ctx.localize("devices.action_failed", { message: errorText(err) }) });
    }
  }

  protected override render(): TemplateResult | typeof nothing {
    const ctx = this.ctx;
    const st = this.state;
    if (ctx === undefined || st === undefined) return nothing;
    const { localize } = ctx;
    const groups = selectJobGroups(st.jobs);
    const empty = groups.running.length + groups.queued.length + groups.finished.length === 0;
    return html`
      ${empty
        ? html`<section class="card"><div class="empty">${icon(mdiTextBoxOutline)}<p>${localize("jobs.empty")}</p></div></section>`
        : html`
            ${this.#renderGroup("running", groups.running)} ${this.#renderGroup("queued", groups.queued)}
            ${this.#renderGroup("finished", groups.finished)}
          `}
    `;
  }

  #renderGroup(kind: "running" | "queued" | "finished", jobs: readonly FirmwareJob[]): TemplateResult | typeof nothing {
    if (jobs.length === 0) return nothing;
    const { localize } = this.ctx as PanelContext;
    const id = `group-${kind}`;
    return html`
      <section class="group" aria-labelledby=${id}>
        <div class="group-header">
          <h3 id=${id}>${localize(`jobs.${kind}`)} <span class="secondary">(${jobs.length})</span></h3>
          ${kind === "finished"
            ? html`<md-outlined-button class="clear-history" @click=${() => void this.#clearHistory()}>${localize("jobs.clear_history")}</md-outlined-button>`
            : nothing}
        </div>
        <ul class="card list">
          ${jobs.map((job) => this.#renderJob(job))}
        </ul>
      </section>
    `;
  }

  #renderJob(job: FirmwareJob): TemplateResult {
    const { localize, locale } = this.ctx as PanelContext;
    const st = this.state as AppState;
    const name = jobSubject(job, deviceTitle(st.devices[job.configuration], job.configuration), localize);
    // A clean_all on a build server names it in its title already.
    const remote = job.source === "remote" && job.job_type !== "clean_all" ? (remoteBuildLabel(job) ?? job.source_label) : null;
    const peer = remotePeerLabel(job);
    const duration = jobDuration(job, this._now);
    const view = progressView(job);
    const active = !isTerminal(job.status);
    const meta: string[] = [localize("jobs.created", { time: formatTime(job.created_at, locale) })];
    if (duration !== null) {
      meta.push(localize(active ? "jobs.running_for" : "jobs.duration", { duration: formatDuration(duration, localize) }));
    }
    if (job.port !== "" && job.job_type !== "compile" && job.job_type !== "clean") meta.push(localize("jobs.port", { port: job.port }));
    return html`
      <li class="job" data-job-id=${job.job_id} data-status=${job.status}>
        <div class="main">
          <div class="title-row">
            <span class="job-name">${name}</span>
            <span class="job-type">${icon(JOB_ICONS[job.job_type])}${localize(`job_type.${job.job_type}`)}</span>
            ${statusBadge(job, localize, jobsWaitForEsphome(this.state?.esphome ?? null))}
          </div>
          <div class="meta secondary">
            ${meta.join(" · ")}
          </div>
          <div class="tags">
            ${remote !== null && remote !== ""
              ? html`<span class="badge info source-remote">${icon(mdiServerNetwork)}${localize("jobs.building_on", { label: remote })}</span>`
              : nothing}
            ${peer === null
              ? nothing
              : html`<span class="badge warning from-peer" title=${localize("jobs.from_peer_title", { label: peer })}>${localize("jobs.from_peer", { label: peer })}</span>`}
          </div>
          ${job.status === "failed" && job.error !== null ? html`<div class="error-text">${job.error}</div>` : nothing}
          ${job.status === "running"
            ? html`<md-linear-progress
                aria-label=${localize("install.progress_label")}
                .value=${view.value / 100}
                ?indeterminate=${view.indeterminate}
              ></md-linear-progress>`
            : nothing}
        </div>
        <div class="actions">
          <md-icon-button
            class="open-log"
            aria-label=${localize("jobs.open_log", { name })}
            title=${localize("jobs.open_log", { name })}
            @click=${() => { showInstallDialog(this, { configuration: job.configuration, jobId: job.job_id }); }}
          >${icon(mdiTextBoxOutline)}</md-icon-button>
          ${active
            ? html`<md-icon-button
                class="cancel"
                aria-label=${localize("jobs.cancel", { name })}
                title=${localize("jobs.cancel", { name })}
                @click=${() => void this.#cancel(job)}
              >${icon(mdiCancel)}</md-icon-button>`
            : nothing}
        </div>
      </li>
    `;
  }

  static override styles = [
    sharedStyles,
    emptyStateStyles,
    progressStyles,
    css`
      :host {
        display: block;
      }
      .group-header {
        display: flex;
        align-items: center;
        justify-content: space-between;
        gap: 16px;
        min-height: 40px;
        margin: 12px 0 8px;
      }
      .group:first-child .group-header {
        margin-top: 0;
      }
      h3 {
        margin: 0 4px;
        font-size: 14px;
        font-weight: 500;
        letter-spacing: 0.02em;
      }
      h3 .secondary {
        font-weight: 400;
      }
      .list {
        list-style: none;
        margin: 0;
        padding: 0;
      }
      .job {
        display: flex;
        align-items: center;
        gap: 8px;
        padding: 12px 8px 12px 16px;
      }
      .job + .job {
        border-top: 1px solid var(--divider-color, rgba(0, 0, 0, 0.12));
      }
      .main {
        flex: 1;
        min-width: 0;
        display: flex;
        flex-direction: column;
        gap: 4px;
      }
      .title-row {
        display: flex;
        align-items: center;
        flex-wrap: wrap;
        gap: 4px 10px;
      }
      .job-name {
        font-size: 15px;
        font-weight: 500;
        overflow-wrap: anywhere;
      }
      .job-type {
        display: inline-flex;
        align-items: center;
        gap: 2px;
        font-size: 13px;
        color: var(--secondary-text-color, #727272);
      }
      .job-type .icon {
        width: 16px;
        height: 16px;
      }
      .meta {
        font-size: 13px;
      }
      .tags {
        display: flex;
        flex-wrap: wrap;
        gap: 6px;
      }
      .tags:empty {
        display: none;
      }
      .error-text {
        font-size: 13px;
        color: var(--esphome-error-text, var(--error-color, #db4437));
        overflow-wrap: anywhere;
      }
      md-linear-progress {
        margin-top: 6px;
      }
      .actions {
        display: flex;
        flex: none;
      }
    `,
  ];
}

declare global {
  interface HTMLElementTagNameMap {
    "esphome-jobs-view": EsphomeJobsView;
  }
}
