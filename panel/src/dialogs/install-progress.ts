/**
 * Where a followed job stands, as the install dialog shows it above the log:
 * the step and phase with a progress bar while it runs, then its result
 * (success, stopped, or failed with a Clean build offer), and "Building on
 * …" while a build server compiles it, with "Build locally" while that is
 * still possible.
 */
import { html, nothing, type TemplateResult } from "lit";
import { icon, mdiAlertCircle, mdiCheckCircle, mdiServerNetwork, mdiStopCircle } from "../common/icons.ts";
import type { LocalizeFunc } from "../common/localize.ts";
import { canBuildLocally, progressView, remoteBuildLabel, resultKind, type DialogPurpose } from "../data/job-view.ts";
import type { FirmwareJob } from "../data/types.ts";

export interface JobProgressOptions {
  /** What the dialog was opened for (names the success). */
  purpose: DialogPurpose;
  /** A command of the dialog is in flight (Clean build waits). */
  busy: boolean;
  /** "Build locally" is in flight. */
  switching: boolean;
  onClean: () => void;
  onBuildLocally: () => void;
}

export function jobProgress(localize: LocalizeFunc, job: FirmwareJob, opts: JobProgressOptions): TemplateResult {
  const remote = remoteBuildLabel(job);
  return html`
    ${resultKind(job) === null ? progress(localize, job) : result(localize, job, opts)}
    ${remote === null
      ? nothing
      : html`<div class="remote" role="status">
          ${icon(mdiServerNetwork)}
          <span class="remote-label">${localize("install.building_on", { label: remote })}</span>
          ${canBuildLocally(job)
            ? html`<md-text-button class="build-locally" ?disabled=${opts.switching} @click=${opts.onBuildLocally}>
                ${localize(opts.switching ? "install.switching" : "install.build_locally")}
              </md-text-button>`
            : nothing}
        </div>`}
  `;
}

function progress(localize: LocalizeFunc, job: FirmwareJob): TemplateResult {
  const view = progressView(job);
  let phaseText: string;
  if (job.status === "queued") phaseText = localize("install.waiting");
  else phaseText = localize(view.phase === null ? "install.starting" : `phase.${view.phase}`);
  return html`
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
  `;
}

function result(localize: LocalizeFunc, job: FirmwareJob, opts: JobProgressOptions): TemplateResult {
  const kind = resultKind(job);
  if (kind === "success") {
    const key = `install.result.${opts.purpose}` as const;
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
            <md-text-button class="clean" ?disabled=${opts.busy} @click=${opts.onClean}>${localize("install.clean_action")}</md-text-button>`}
    </div>
  </div>`;
}
