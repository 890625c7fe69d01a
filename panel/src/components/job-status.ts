/** The status badge of a job (devices view "last job", jobs view). */
import { html, nothing, type TemplateResult } from "lit";
import { icon, mdiAlertCircle, mdiCheckCircle, mdiClockOutline, mdiProgressClock, mdiSleep, mdiStopCircle } from "../common/icons.ts";
import type { LocalizeFunc } from "../common/localize.ts";
import type { FirmwareJob } from "../data/types.ts";

export function statusBadge(job: FirmwareJob, localize: LocalizeFunc): TemplateResult {
  // A held job (its device is offline) says what it waits for, whatever its status.
  if (job.waiting === "device" && (job.status === "queued" || job.status === "running")) {
    return html`<span class="badge warning" data-status="waiting">${icon(mdiSleep)}${localize("status.waiting_device")}</span>`;
  }
  switch (job.status) {
    case "queued":
      return html`<span class="badge" data-status="queued">${icon(mdiClockOutline)}${localize("status.queued")}</span>`;
    case "running": {
      const pct = job.progress !== null && job.progress > 0 ? html` ${job.progress}%` : nothing;
      const phase = job.phase === null ? localize("status.running") : localize(`phase.${job.phase}`);
      return html`<span class="badge info" data-status="running">${icon(mdiProgressClock)}${phase}${pct}</span>`;
    }
    case "completed":
      return html`<span class="badge success" data-status="completed">${icon(mdiCheckCircle)}${localize("status.completed")}</span>`;
    case "failed":
      return html`<span class="badge error" data-status="failed">${icon(mdiAlertCircle)}${localize("status.failed")}</span>`;
    case "cancelled":
      return html`<span class="badge" data-status="cancelled">${icon(mdiStopCircle)}${localize("status.cancelled")}</span>`;
  }
}
