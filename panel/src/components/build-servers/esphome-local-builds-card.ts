/**
 * "This machine": where its own compiles run (`local_builds`, with a warning
 * when "never" leaves installs waiting for a build server that is not
 * there) and cleaning all its build files.
 */
import "@material/web/button/outlined-button.js";
import { css, html, nothing, type TemplateResult } from "lit";
import { customElement } from "lit/decorators.js";
import { fireToast } from "../../common/context.ts";
import { icon, mdiDeleteSweep, mdiLaptop } from "../../common/icons.ts";
import { LOCAL_BUILDS, type LocalBuilds } from "../../data/types.ts";
import { BuildServersSection, cardHeader } from "./section.ts";
import { cardStyles } from "./styles.ts";

@customElement("esphome-local-builds-card")
export class EsphomeLocalBuildsCard extends BuildServersSection {
  async #cleanAll(): Promise<void> {
    await this.confirmThenRun("build_servers.local.clean_all_confirm", {}, "clean-all", async (c) => {
      await c.api.cleanAll();
      fireToast(this, { message: c.localize("build_servers.local.clean_all_started") });
    });
  }

  #setMode(e: Event, previous: LocalBuilds): void {
    const target = e.target as HTMLSelectElement;
    const value = LOCAL_BUILDS.find((m) => m === target.value);
    if (value === undefined) return;
    void this.run("local-builds", (c) => c.api.setLocalBuilds(value)).then((ok) => {
      if (!ok) target.value = previous;
    });
  }

  protected override render(): TemplateResult | typeof nothing {
    if (this.ctx === undefined || this.remote === undefined) return nothing;
    const { localize } = this.ctx;
    const { offloader } = this.remote;
    const mode = offloader.localBuilds;
    const connected = offloader.remoteBuildsEnabled && offloader.pairings.some((p) => p.connected && p.enabled && p.status === "approved");
    return html`<section class="card local-builds" aria-labelledby="local-title">
      ${cardHeader({ icon: mdiLaptop, titleId: "local-title", title: localize("build_servers.local.title"), text: localize("build_servers.local.text") })}
      <label class="switch-row">
        <span class="switch-text">
          <span class="switch-label">${localize("build_servers.local.mode")}</span>
          <span class="secondary">${localize("build_servers.local.mode_text")}</span>
          ${mode === "never" && !connected ? html`<span class="warning-text never-warning">${localize("build_servers.local.never_warning")}</span>` : nothing}
        </span>
        <select
          class="local-builds-select"
          aria-label=${localize("build_servers.local.mode")}
          .value=${mode}
          ?disabled=${this.busy.has("local-builds")}
          @change=${(e: Event) => { this.#setMode(e, mode); }}
        >
          ${LOCAL_BUILDS.map((m) => html`<option value=${m} ?selected=${m === mode}>${localize(`build_servers.local.modes.${m}`)}</option>`)}
        </select>
      </label>
      <div class="switch-row">
        <span class="switch-text">
          <span class="switch-label">${localize("build_servers.local.clean_all")}</span>
          <span class="secondary">${localize("build_servers.local.clean_all_text")}</span>
        </span>
        <md-outlined-button class="clean-all" ?disabled=${this.busy.has("clean-all")} @click=${() => void this.#cleanAll()}>
          <span slot="icon">${icon(mdiDeleteSweep)}</span>${localize("build_servers.local.clean_all")}
        </md-outlined-button>
      </div>
    </section>`;
  }

  static override styles = [
    ...cardStyles,
    css`
      .never-warning {
        color: var(--esphome-warning-text, var(--warning-color, #ffa600));
      }
      .local-builds-select {
        flex: none;
        max-width: 50%;
        min-height: 40px;
        padding: 0 12px;
        border: 1px solid var(--outline-color, var(--divider-color, rgba(0, 0, 0, 0.38)));
        border-radius: 4px;
        background: var(--card-background-color, #fff);
        color: var(--primary-text-color, #212121);
        font: inherit;
        font-size: 14px;
      }
      .local-builds .switch-row {
        cursor: default;
      }
      .local-builds .switch-row + .switch-row {
        border-top: 1px solid var(--divider-color, rgba(0, 0, 0, 0.12));
      }
      @media (max-width: 600px) {
        .local-builds .switch-row {
          flex-wrap: wrap;
        }
        .local-builds-select {
          max-width: none;
          width: 100%;
        }
        .local-builds .switch-text {
          flex-basis: 100%;
        }
        .local-builds md-outlined-button {
          margin-left: auto;
        }
      }
    `,
  ];
}

declare global {
  interface HTMLElementTagNameMap {
    "esphome-local-builds-card": EsphomeLocalBuildsCard;
  }
}
