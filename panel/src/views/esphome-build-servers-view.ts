/**
 * Build servers, both roles, as a column of cards (panel/src/components/
 * build-servers/): alerts and state-file problems on top, this builder's
 * identity, the build server (receiver) card, the offloader card and "This
 * machine". The view owns the commands in flight for all of them, one set of
 * busy keys, so the same command offered in two cards (a pairing's Unpair
 * in its row and in its alert) cannot run twice.
 */
import { LitElement, css, html, nothing, type TemplateResult } from "lit";
import { customElement, property, state } from "lit/decorators.js";
import { fireToast, type PanelContext } from "../common/context.ts";
import { icon, mdiServer } from "../common/icons.ts";
import { emptyStateStyles, sharedStyles } from "../common/styles.ts";
import "../components/build-servers/esphome-identity-card.ts";
import "../components/build-servers/esphome-local-builds-card.ts";
import "../components/build-servers/esphome-offloader-card.ts";
import "../components/build-servers/esphome-receiver-card.ts";
import "../components/build-servers/esphome-remote-build-alerts.ts";
import type { RunCommand } from "../components/build-servers/section.ts";
import { errorText } from "../data/api.ts";
import type { AppState } from "../data/state.ts";

@customElement("esphome-build-servers-view")
export class EsphomeBuildServersView extends LitElement {
  @property({ attribute: false }) accessor ctx: PanelContext | undefined = undefined;
  @property({ attribute: false }) accessor state: AppState | undefined = undefined;
  @property({ type: Boolean, reflect: true }) accessor narrow = false;

  /** Commands in flight, by a key per control, so a control cannot be pressed twice. */
  @state() private accessor _busy: ReadonlySet<string> = new Set();

  /** Runs a command for one control; a failure becomes a toast. */
  readonly #run: RunCommand = async (key, action) => {
    const ctx = this.ctx;
    if (ctx === undefined || this._busy.has(key)) return false;
    this._busy = new Set([...this._busy, key]);
    try {
      await action(ctx);
      return true;
    } catch (err) {
      fireToast(this, { message: ctx.localize("devices.action_failed", { message: errorText(err) }) });
      return false;
    } finally {
      const next = new Set(this._busy);
      next.delete(key);
      this._busy = next;
    }
  };

  protected override render(): TemplateResult | typeof nothing {
    const ctx = this.ctx;
    const st = this.state;
    if (ctx === undefined || st === undefined) return nothing;
    const remote = st.remote;
    if (remote === null) {
      return html`<section class="card"><div class="empty">${icon(mdiServer)}<p>${ctx.localize("build_servers.unavailable")}</p></div></section>`;
    }
    const busy = this._busy;
    const run = this.#run;
    const alerts = Object.keys(remote.alerts).length > 0 || Object.keys(remote.problems).length > 0;
    return html`
      ${alerts ? html`<esphome-remote-build-alerts .ctx=${ctx} .remote=${remote} .busy=${busy} .run=${run}></esphome-remote-build-alerts>` : nothing}
      <esphome-identity-card .ctx=${ctx} .remote=${remote} .busy=${busy} .run=${run}></esphome-identity-card>
      <esphome-receiver-card .ctx=${ctx} .remote=${remote} .connection=${st.connection} .busy=${busy} .run=${run}></esphome-receiver-card>
      <esphome-offloader-card .ctx=${ctx} .remote=${remote} .busy=${busy} .run=${run}></esphome-offloader-card>
      <esphome-local-builds-card .ctx=${ctx} .remote=${remote} .busy=${busy} .run=${run}></esphome-local-builds-card>
    `;
  }

  static override styles = [
    sharedStyles,
    emptyStateStyles,
    css`
      :host {
        display: flex;
        flex-direction: column;
        gap: 16px;
        max-width: 960px;
        margin: 0 auto;
      }
      @media (max-width: 600px) {
        :host {
          gap: 12px;
        }
      }
    `,
  ];
}

declare global {
  interface HTMLElementTagNameMap {
    "esphome-build-servers-view": EsphomeBuildServersView;
  }
}
