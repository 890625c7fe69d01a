/** The status badge of a job (devices view "last job", jobs view). */
import { html, nothing, type TemplateResult } from "lit";
import { icon, mdiAlertCircle, mdiCheckCircle, mdiClockOutline, mdiProgressClock, mdiSleep, mdiStopCircle } from "../common/icons.ts";
import type { LocalizeFunc } from "../common/localize.ts";
import type { FirmwareJob } from "../data/types.ts";

/** `waitingForEsphome`: queued jobs wait for the managed ESPHome's first environment, and say so. */
export function statusBadge(job: FirmwareJob, localize: LocalizeFunc, waitingForEsphome = false): TemplateResult {
  // A held job (its device is offline) says what it waits for, whatever its status.
  if (job.waiting?.reason === "device" && (job.status === "queued" || job.status === "running")) {
    return html`<span class="badge warning" data-status="waiting">${icon(mdiSleep)}${localize("status.waiting.device")}</span>`;
  }
  switch (job.status) {
    case "queued":
      if (job.waiting !== undefined) {
        return html`<span class="badge warning waiting" data-status="queued" data-waiting=${job.waiting.reason}>${icon(mdiClockOutline)}${localize(`status.waiting.${job.waiting.reason}`)}</span>`;
      }
      return waitingForEsphome
        ? html`<span class="badge" data-status="queued" data-waiting="esphome">${icon(mdiClockOutline)}${localize("status.waiting_esphome")}</span>`
        : html`<span class="badge" data-status="queued">${icon(mdiClockOutline)}${localize("status.queued")}</span>`;
    case "running": {
      // Back in the pool after its build server was lost.
      if (job.waiting !== undefined) {
        return html`<span class="badge warning waiting" data-status="running" data-waiting=${job.waiting.reason}>${icon(mdiProgressClock)}${localize(`status.waiting.${job.waiting.reason}`)}</span>`;
      }
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
