/**
 * ESPHome: the version jobs run, installing progress with pip's output, the
 * installed environments with their disk use, and the versions the package
 * index offers (install/switch, remove).
 */
import "@material/web/button/outlined-button.js";
import "@material/web/button/text-button.js";
import "@material/web/checkbox/checkbox.js";
import "@material/web/progress/linear-progress.js";
import { LitElement, css, html, nothing, type PropertyValues, type TemplateResult } from "lit";
import { customElement, property, state } from "lit/decorators.js";
import { fireToast, type PanelContext } from "../common/context.ts";
import { formatTime } from "../common/format.ts";
import { LogModel } from "../common/log-model.ts";
import { progressStyles, sharedStyles } from "../common/styles.ts";
import "../components/esphome-log-viewer.ts";
import { errorText } from "../data/api.ts";
import { formatBytes } from "../data/esphome-view.ts";
import type { AppState } from "../data/state.ts";
import type { EsphomeEnvironmentView, EsphomeStatus, EsphomeVersionsView } from "../data/types.ts";
import { showConfirmDialog } from "../dialogs/show-dialog.ts";

@customElement("esphome-esphome-view")
export class EsphomeEsphomeView extends LitElement {
  @property({ attribute: false }) accessor ctx: PanelContext | undefined = undefined;
  @property({ attribute: false }) accessor state: AppState | undefined = undefined;
  @property({ type: Boolean, reflect: true }) accessor narrow = false;

  @state() private accessor _versions: EsphomeVersionsView | null = null;
  @state() private accessor _loading = false;
  @state() private accessor _prereleases = false;
  @state() private accessor _busy: ReadonlySet<string> = new Set();

  readonly #log = new LogModel(2000);
  #shownLog: readonly string[] = [];
  #askedLog = false;

  protected override willUpdate(changed: PropertyValues<this>): void {
    if (!changed.has("state")) return;
    const st = this.state;
    if (st === undefined) return;
    // The first time: fetch what was printed before this panel connected.
    if (!this.#askedLog && this.ctx !== undefined && st.esphome !== null && st.esphomeLog.length === 0 && st.esphome.state.status !== "idle") {
      this.#askedLog = true;
      void this.ctx.api.esphomeLog().then(
        (log) => { this.ctx?.store.dispatch({ type: "esphome_log", version: log.version, lines: log.lines }); },
        () => undefined,
      );
    }
    this.#syncLog(st.esphomeLog);
  }

  /** Feeds the log viewer what is new since the last render (a new array start means a new log). */
  #syncLog(lines: readonly string[]): void {
    if (lines === this.#shownLog) return;
    const prev = this.#shownLog;
    const continues = prev.length > 0 && lines.length >= prev.length && lines[prev.length - 1] === prev[prev.length - 1] && lines[0] === prev[0];
    if (!continues) {
      this.#log.clear();
      for (const line of lines) this.#log.push(line);
    } else {
      for (const line of lines.slice(prev.length)) this.#log.push(line);
    }
    this.#shownLog = lines;
  }

  async #run(key: string, action: (ctx: PanelContext) => Promise<unknown>): Promise<void> {
    const ctx = this.ctx;
    if (ctx === undefined || this._busy.has(key)) return;
    this._busy = new Set([...this._busy, key]);
    try {
      await action(ctx);
    } catch (err) {
      fireToast(this, { message: ctx.localize("devices.action_failed", { message: errorText(err) }) });
    } finally {
      const next = new Set(this._busy);
      next.delete(key);
      this._busy = next;
    }
  }

  async #loadVersions(): Promise<void> {
    this._loading = true;
    await this.#run("versions", async (ctx) => {
      this._versions = await ctx.api.esphomeVersions(this._prereleases);
    });
    this._loading = false;
  }

  #install(version: string): void {
    void this.#run(`install:${version}`, async (ctx) => {
      await ctx.api.esphomeInstall(version);
      if (this._versions !== null) await this.#loadVersions();
    });
  }

  async #remove(env: EsphomeEnvironmentView): Promise<void> {
    const ctx = this.ctx;
    if (ctx === undefined) return;
    const size = env.bytes === null ? "" : formatBytes(env.bytes);
    const ok = await showConfirmDialog(this, {
      title: ctx.localize("esphome.environments.remove_confirm.title", { version: env.version }),
      text: ctx.localize("esphome.environments.remove_confirm.text", { size }),
      action: ctx.localize("esphome.environments.remove_confirm.action"),
    });
    if (ok) await this.#run(`remove:${env.version}`, (c) => c.api.esphomeRemove(env.version));
  }

  protected override render(): TemplateResult | typeof nothing {
    const ctx = this.ctx;
    const status = this.state?.esphome ?? null;
    if (ctx === undefined || status === null) return nothing;
    const { localize } = ctx;
    if (status.mode === "external") {
      const path = status.environments[0]?.path ?? "--esphome";
      return html`<section class="card"><div class="card-content">
        <h2>${status.current_version === null ? localize("esphome.current_none") : localize("esphome.current", { version: status.current_version })}</h2>
        <p class="secondary">${localize("esphome.mode_external", { path })}</p>
      </div></section>`;
    }
    return html`${this.#renderSummary(status)} ${this.#renderEnvironments(status)} ${this.#renderVersions(status)}`;
  }

  #renderSummary(status: EsphomeStatus): TemplateResult {
    const { localize } = this.ctx as PanelContext;
    const task = status.state;
    const newer = status.latest_version !== null && status.current_version !== null && status.latest_version !== status.current_version && !status.environments.some((e) => e.version === status.latest_version);
    return html`<section class="card summary" aria-labelledby="esphome-title">
      <div class="card-content">
        <h2 id="esphome-title">${status.current_version === null ? localize("esphome.current_none") : localize("esphome.current", { version: status.current_version })}</h2>
        <p class="secondary">
          ${status.pinned_version === null ? nothing : localize("esphome.pinned", { version: status.pinned_version })}
          ${status.latest_version === null ? nothing : html` · ${localize("esphome.latest", { version: status.latest_version })}`}
        </p>
        ${newer && status.latest_version !== null
          ? html`<p class="update">${localize("esphome.update_available", { version: status.latest_version })}
              <md-outlined-button class="install-latest" ?disabled=${task.status === "provisioning"} @click=${() => { this.#install(status.latest_version ?? ""); }}
                >${localize("esphome.versions.install")}</md-outlined-button
              ></p>`
          : nothing}
        ${task.status === "provisioning"
          ? html`<div class="provisioning" role="status">
              <span>${localize("esphome.installing", { version: task.version, percent: task.percent })} (${localize(`esphome.phase.${task.phase}`)})</span>
              <md-linear-progress value=${task.percent / 100}></md-linear-progress>
              <p class="secondary note">${localize("esphome.progress_note")}</p>
            </div>`
          : nothing}
        ${task.status === "failed"
          ? html`<div class="alert error" role="alert"><strong>${localize("esphome.failed", { version: task.version ?? "" })}</strong><span>${task.message}</span></div>`
          : nothing}
        <h3>${localize("esphome.log")}</h3>
        ${this.#log.length === 0
          ? html`<p class="secondary">${localize("esphome.log_empty")}</p>`
          : html`<esphome-log-viewer class="log" .model=${this.#log} .localize=${localize} ?done=${task.status !== "provisioning"}></esphome-log-viewer>`}
      </div>
    </section>`;
  }

  #renderEnvironments(status: EsphomeStatus): TemplateResult {
    const ctx = this.ctx as PanelContext;
    const { localize } = ctx;
    return html`<section class="card environments" aria-labelledby="envs-title">
      <div class="card-content">
        <h2 id="envs-title">${localize("esphome.environments.title")}</h2>
        <p class="secondary">${localize("esphome.environments.text", { limit: status.limit, size: formatBytes(status.disk_bytes) })}</p>
        <ul class="rows">
          ${status.environments.map((env) => {
            const notes: string[] = [];
            if (env.bundled) notes.push(localize("esphome.environments.bundled"));
            if (env.current) notes.push(localize("esphome.environments.current"));
            if (env.in_use) notes.push(localize("esphome.environments.in_use"));
            if (env.python_version !== null) notes.push(localize("esphome.environments.python", { version: env.python_version }));
            if (env.bytes !== null) notes.push(formatBytes(env.bytes));
            if (env.last_used !== null) notes.push(localize("esphome.environments.last_used", { time: formatTime(env.last_used, ctx.locale) }));
            return html`<li class="row" data-version=${env.version}>
              <div class="row-text"><strong>ESPHome ${env.version}</strong><span class="secondary">${notes.join(" · ")}</span></div>
              ${env.current
                ? nothing
                : html`<md-text-button class="use" ?disabled=${status.state.status === "provisioning"} @click=${() => { this.#install(env.version); }}>${localize("esphome.environments.use")}</md-text-button>`}
              ${env.current || env.bundled
                ? nothing
                : html`<md-text-button class="remove" ?disabled=${env.in_use || this._busy.has(`remove:${env.version}`)} @click=${() => void this.#remove(env)}
                    >${localize("esphome.environments.remove")}</md-text-button
                  >`}
            </li>`;
          })}
        </ul>
      </div>
    </section>`;
  }

  #renderVersions(status: EsphomeStatus): TemplateResult {
    const { localize } = this.ctx as PanelContext;
    const offered = this._versions;
    return html`<section class="card versions" aria-labelledby="versions-title">
      <div class="card-content">
        <h2 id="versions-title">${localize("esphome.versions.title")}</h2>
        ${offered === null ? nothing : html`<p class="secondary">${localize("esphome.versions.text", { index: offered.index })}</p>`}
        <div class="controls">
          <label class="check"
            ><md-checkbox
              ?checked=${this._prereleases}
              @change=${(e: Event) => {
                this._prereleases = (e.target as HTMLInputElement).checked;
                if (this._versions !== null) void this.#loadVersions();
              }}
            ></md-checkbox
            >${localize("esphome.versions.prereleases")}</label
          >
          <md-outlined-button class="load" ?disabled=${this._loading} @click=${() => void this.#loadVersions()}>${localize("esphome.versions.load")}</md-outlined-button>
        </div>
        ${this._loading ? html`<p class="secondary" role="status">${localize("esphome.versions.loading")}</p>` : nothing}
        ${offered === null
          ? nothing
          : html`<ul class="rows offered">
              ${offered.versions.slice(0, 40).map(
                (v) => html`<li class="row" data-version=${v.version}>
                  <div class="row-text"><strong>ESPHome ${v.version}</strong
                    ><span class="secondary">${[v.prerelease ? localize("esphome.versions.prerelease") : "", v.installed ? localize("esphome.versions.installed") : ""].filter((t) => t !== "").join(" · ")}</span></div>
                  ${v.current
                    ? html`<span class="secondary">${localize("esphome.environments.current")}</span>`
                    : html`<md-text-button class="install" ?disabled=${status.state.status === "provisioning" || this._busy.has(`install:${v.version}`)} @click=${() => { this.#install(v.version); }}
                        >${v.installed ? localize("esphome.environments.use") : localize("esphome.versions.install")}</md-text-button
                      >`}
                </li>`,
              )}
            </ul>`}
      </div>
    </section>`;
  }

  static override styles = [
    sharedStyles,
    progressStyles,
    css`
      :host {
        display: flex;
        flex-direction: column;
        gap: 16px;
      }
      .card-content {
        padding: 16px;
      }
      h2 {
        margin: 0 0 4px;
        font-size: 1.15rem;
      }
      h3 {
        margin: 16px 0 8px;
        font-size: 1rem;
      }
      .provisioning {
        display: flex;
        flex-direction: column;
        gap: 6px;
        margin-top: 12px;
      }
      .note {
        font-size: 0.85rem;
      }
      .log {
        display: block;
        height: 280px;
      }
      .rows {
        list-style: none;
        margin: 8px 0 0;
        padding: 0;
      }
      .row {
        display: flex;
        align-items: center;
        gap: 8px;
        padding: 8px 0;
        border-top: 1px solid var(--divider-color, rgba(0, 0, 0, 0.12));
      }
      .row-text {
        display: flex;
        flex-direction: column;
        flex: 1;
        min-width: 0;
      }
      .controls {
        display: flex;
        align-items: center;
        gap: 16px;
        flex-wrap: wrap;
      }
      .check {
        display: flex;
        align-items: center;
        gap: 4px;
      }
      .update {
        display: flex;
        align-items: center;
        gap: 12px;
      }
    `,
  ];
}

declare global {
  interface HTMLElementTagNameMap {
    "esphome-esphome-view": EsphomeEsphomeView;
  }
}
