/**
 * The top of the Build servers view: problems with the remote-build state
 * files found at start-up (what happened, what to do, until dismissed) and
 * alerts about paired build servers (a changed key, a build server that no
 * longer accepts this builder) with the steps to pair again or unpair.
 */
import "@material/web/button/filled-button.js";
import "@material/web/button/outlined-button.js";
import { css, html, nothing, type TemplateResult } from "lit";
import { customElement } from "lit/decorators.js";
import { icon, mdiAlertCircle, mdiShieldAlert } from "../../common/icons.ts";
import type { LocalizeFunc } from "../../common/localize.ts";
import type { OffloaderAlert, RemoteBuildProblem } from "../../data/types.ts";
import { showPairDialog } from "../../dialogs/show-dialog.ts";
import { fingerprint } from "../fingerprint.ts";
import { BuildServersSection } from "./section.ts";
import { cardStyles } from "./styles.ts";

@customElement("esphome-remote-build-alerts")
export class EsphomeRemoteBuildAlerts extends BuildServersSection {
  protected override render(): TemplateResult | typeof nothing {
    if (this.ctx === undefined || this.remote === undefined) return nothing;
    const { localize } = this.ctx;
    return html`<div class="alerts">
      ${Object.values(this.remote.problems).map((p) => this.#renderProblem(p, localize))}${Object.values(this.remote.alerts).map((a) => this.#renderAlert(a, localize))}
    </div>`;
  }

  /** A state file the builder could not read at start-up: what happened and what to do, until dismissed. */
  #renderProblem(problem: RemoteBuildProblem, localize: LocalizeFunc): TemplateResult {
    const key = `problem:${problem.id}`;
    return html`<div class="alert warning builder-problem" role="alert" data-kind=${problem.kind} data-id=${problem.id}>
      ${icon(mdiAlertCircle)}
      <div class="alert-body">
        <div class="alert-title">${localize(`build_servers.problems.${problem.kind}`)}</div>
        <div class="alert-message">${problem.message}</div>
        <div class="alert-actions">
          <md-outlined-button class="dismiss" ?disabled=${this.busy.has(key)} @click=${() => void this.run(key, (c) => c.api.dismissRemoteBuildProblem(problem.id))}
            >${localize("build_servers.problems.dismiss")}</md-outlined-button
          >
        </div>
      </div>
    </div>`;
  }

  #renderAlert(alert: OffloaderAlert, localize: LocalizeFunc): TemplateResult {
    const label = alert.label;
    const address = `${alert.receiver_hostname}:${alert.receiver_port}`;
    const mismatch = alert.kind === "pin_mismatch";
    return html`<div class="alert error offloader-alert" role="alert" data-kind=${alert.kind} data-pin=${alert.pin_sha256}>
      ${icon(mdiShieldAlert)}
      <div class="alert-body">
        <div class="alert-title">${localize(mismatch ? "build_servers.alerts.pin_mismatch_title" : "build_servers.alerts.peer_revoked_title", { label })}</div>
        <div class="alert-message">${alert.message}</div>
        <ol class="steps">
          ${mismatch
            ? html`<li>${localize("build_servers.alerts.pin_mismatch_step1", { label })}</li>
                <li>${localize("build_servers.alerts.pin_mismatch_step2")}</li>
                <li>${localize("build_servers.alerts.pin_mismatch_step3", { address })}</li>`
            : html`<li>${localize("build_servers.alerts.peer_revoked_step1", { label })}</li>
                <li>${localize("build_servers.alerts.peer_revoked_step2", { label })}</li>
                <li>${localize("build_servers.alerts.peer_revoked_step3")}</li>`}
        </ol>
        ${mismatch && alert.observed_pin !== null
          ? html`<div class="observed">
              <span class="secondary">${localize("build_servers.alerts.observed")}</span>
              ${fingerprint(alert.observed_pin, localize, { size: "small" })}
            </div>`
          : nothing}
        <div class="alert-actions">
          <md-filled-button
            class="pair-again"
            @click=${() => { showPairDialog(this, { hostname: alert.receiver_hostname, port: alert.receiver_port, preview: true }); }}
            >${localize("build_servers.alerts.pair_again")}</md-filled-button
          >
          <md-outlined-button class="unpair" ?disabled=${this.busy.has(`pairing:${alert.pin_sha256}`)} @click=${() => void this.unpair(alert.pin_sha256, label)}
            >${localize("build_servers.offloader.unpair")}</md-outlined-button
          >
        </div>
      </div>
    </div>`;
  }

  static override styles = [
    ...cardStyles,
    css`
      .alerts {
        display: flex;
        flex-direction: column;
        gap: 12px;
      }
      .offloader-alert {
        border: 1px solid color-mix(in srgb, var(--error-color, #db4437) 40%, transparent);
        padding: 16px;
      }
      .builder-problem {
        border: 1px solid color-mix(in srgb, var(--warning-color, #ffa600) 50%, transparent);
        padding: 16px;
      }
      .builder-problem .alert-title {
        color: var(--primary-text-color, #212121);
      }
      .builder-problem .alert-message {
        overflow-wrap: anywhere;
      }
      .alert-body {
        display: flex;
        flex-direction: column;
        gap: 6px;
        min-width: 0;
        flex: 1;
      }
      .alert-title {
        font-weight: 500;
        font-size: 16px;
        color: var(--esphome-error-text, var(--error-color, #db4437));
      }
      .alert-message {
        font-size: 14px;
        color: var(--secondary-text-color, #727272);
      }
      .steps {
        margin: 4px 0;
        padding-left: 20px;
        font-size: 14px;
        line-height: 20px;
      }
      .steps li + li {
        margin-top: 4px;
      }
      .observed {
        display: flex;
        align-items: center;
        flex-wrap: wrap;
        gap: 4px 8px;
        font-size: 13px;
      }
      .alert-actions {
        display: flex;
        flex-wrap: wrap;
        gap: 8px;
        margin-top: 6px;
      }
    `,
  ];
}

declare global {
  interface HTMLElementTagNameMap {
    "esphome-remote-build-alerts": EsphomeRemoteBuildAlerts;
  }
}
