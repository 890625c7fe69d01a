/**
 * The panel's shell: a Home Assistant style top bar with the sections, the
 * connection and ESPHome status, the current view, dialogs and toasts.
 */
import "@material/web/button/text-button.js";
import "@material/web/iconbutton/icon-button.js";
import { LitElement, css, html, nothing, type TemplateResult } from "lit";
import { customElement, property, state } from "lit/decorators.js";
import type { PanelContext, ToastDetail } from "./common/context.ts";
import { icon, mdiAlertCircle, mdiClose } from "./common/icons.ts";
import { sharedStyles } from "./common/styles.ts";
import type { AppState } from "./data/state.ts";
import "./components/esphome-problems.ts";
import "./dialogs/dialog-confirm.ts";
import "./dialogs/dialog-device-address.ts";
import "./dialogs/dialog-device-logs.ts";
import "./dialogs/dialog-endpoint.ts";
import "./dialogs/dialog-install.ts";
import "./dialogs/dialog-pair.ts";
import type { DialogElement, ShowDialogDetail } from "./dialogs/show-dialog.ts";
import "./views/esphome-build-servers-view.ts";
import "./views/esphome-devices-view.ts";
import "./views/esphome-jobs-view.ts";
import "./views/esphome-esphome-view.ts";
import { esphomeBanner } from "./data/esphome-view.ts";

type Tab = "devices" | "jobs" | "build-servers" | "esphome";
const TABS: readonly Tab[] = ["devices", "jobs", "build-servers", "esphome"];
const TAB_KEYS = { devices: "app.tabs.devices", jobs: "app.tabs.jobs", "build-servers": "app.tabs.build_servers", esphome: "app.tabs.esphome" } as const;

function tabFromHash(hash: string): Tab {
  const name = hash.replace(/^#/, "");
  return (TABS as readonly string[]).includes(name) ? (name as Tab) : "devices";
}

@customElement("esphome-builder-app")
export class EsphomeBuilderApp extends LitElement {
  @property({ attribute: false }) accessor ctx: PanelContext | undefined = undefined;
  @state() private accessor _state: AppState | undefined = undefined;
  @state() private accessor _tab: Tab = tabFromHash(location.hash);
  @state() private accessor _narrow = false;
  @state() private accessor _toast: ToastDetail | null = null;

  #unsubscribe: (() => void) | null = null;
  #toastTimer: ReturnType<typeof setTimeout> | null = null;
  #narrowQuery = window.matchMedia("(max-width: 600px)");
  readonly #dialogs = new Map<string, DialogElement<unknown>>();

  readonly #onHash = (): void => {
    this._tab = tabFromHash(location.hash);
  };

  readonly #onNarrow = (): void => {
    this._narrow = this.#narrowQuery.matches;
  };

  override connectedCallback(): void {
    super.connectedCallback();
    window.addEventListener("hashchange", this.#onHash);
    this.#narrowQuery.addEventListener("change", this.#onNarrow);
    this.#onNarrow();
    this.#attachStore();
    this.addEventListener("esphome-show-dialog", this.#onShowDialog);
    this.addEventListener("esphome-toast", this.#onToast);
    this.addEventListener("esphome-navigate", this.#onNavigate);
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    window.removeEventListener("hashchange", this.#onHash);
    this.#narrowQuery.removeEventListener("change", this.#onNarrow);
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    this.removeEventListener("esphome-show-dialog", this.#onShowDialog);
    this.removeEventListener("esphome-toast", this.#onToast);
    this.removeEventListener("esphome-navigate", this.#onNavigate);
  }

  protected override willUpdate(): void {
    if (this.#unsubscribe === null) this.#attachStore();
  }

  #attachStore(): void {
    const ctx = this.ctx;
    if (ctx === undefined || this.#unsubscribe !== null) return;
    this._state = ctx.store.state;
    this.#unsubscribe = ctx.store.subscribe((s) => {
      this._state = s;
    });
  }

  readonly #onShowDialog = (e: CustomEvent<ShowDialogDetail>): void => {
    const { tag, params } = e.detail;
    let dialog = this.#dialogs.get(tag);
    if (dialog === undefined) {
      dialog = document.createElement(tag) as DialogElement<unknown>;
      this.#dialogs.set(tag, dialog);
      this.shadowRoot?.append(dialog);
    }
    dialog.ctx = this.ctx;
    dialog.showDialog(params);
  };

  readonly #onToast = (e: CustomEvent<ToastDetail>): void => {
    this._toast = e.detail;
    if (this.#toastTimer !== null) clearTimeout(this.#toastTimer);
    this.#toastTimer = setTimeout(() => {
      this._toast = null;
    }, 8000);
  };

  readonly #onNavigate = (e: CustomEvent<string>): void => {
    this.#select(tabFromHash(e.detail));
  };

  #select(tab: Tab): void {
    this._tab = tab;
    if (location.hash !== `#${tab}`) history.replaceState(null, "", `#${tab}`);
  }

  #onTabKey(e: KeyboardEvent): void {
    const index = TABS.indexOf(this._tab);
    let next: number | null = null;
    if (e.key === "ArrowRight") next = (index + 1) % TABS.length;
    else if (e.key === "ArrowLeft") next = (index - 1 + TABS.length) % TABS.length;
    else if (e.key === "Home") next = 0;
    else if (e.key === "End") next = TABS.length - 1;
    if (next === null) return;
    e.preventDefault();
    const tab = TABS[next] ?? "devices";
    this.#select(tab);
    void this.updateComplete.then(() => {
      this.shadowRoot?.querySelector<HTMLElement>(`#tab-${tab}`)?.focus();
    });
  }

  protected override render(): TemplateResult | typeof nothing {
    const ctx = this.ctx;
    const st = this._state;
    if (ctx === undefined || st === undefined) return nothing;
    const { localize } = ctx;
    const running = Object.values(st.jobs).filter((j) => j.status === "running").length;
    // Pairing requests waiting for an answer, alerts about build servers and problems with their files.
    const attention =
      st.remote === null
        ? 0
        : Object.values(st.remote.receiver.peers).filter((p) => p.status === "pending").length +
          Object.keys(st.remote.alerts).length +
          Object.keys(st.remote.problems).length;
    return html`
      <header class="top-bar">
        <div class="title-row">
          <h1 class="title">${localize("app.title")}</h1>
          <div class="status secondary">
            ${st.queueStatus === null
              ? nothing
              : html`<span class="queue" role="status"
                  >${running === 0 && st.queueStatus.idle
                    ? localize("app.queue.idle")
                    : localize("app.queue.busy", { running, waiting: st.queueStatus.queue_depth })}</span
                >`}
            ${st.server?.esphome_version == null
              ? nothing
              : html`<span class="version">${localize("app.esphome_version", { version: st.server.esphome_version })}</span>`}
          </div>
        </div>
        <nav class="tabs" role="tablist" aria-label=${localize("app.tabs.label")} @keydown=${this.#onTabKey}>
          ${TABS.map(
            (tab) => html`<button
              id="tab-${tab}"
              class="tab"
              role="tab"
              aria-selected=${this._tab === tab ? "true" : "false"}
              aria-controls="panel-${tab}"
              tabindex=${this._tab === tab ? "0" : "-1"}
              @click=${() => { this.#select(tab); }}
            >${localize(TAB_KEYS[tab])}${tab === "build-servers" && attention > 0
              ? html`<span class="attention" title=${localize("app.tabs.attention", { count: attention })}
                  ><span class="visually-hidden">${localize("app.tabs.attention", { count: attention })}</span></span
                >`
              : nothing}</button>`,
          )}
        </nav>
      </header>
      ${st.connection === "open"
        ? nothing
        : html`<div class="connection ${st.connection}" role="status">
            <span class="dot"></span>${localize(st.connection === "reconnecting" ? "app.connection.lost" : "app.connection.connecting")}
          </div>`}
      <main id="panel-${this._tab}" role="tabpanel" aria-labelledby="tab-${this._tab}">
        <esphome-problems .ctx=${ctx} .problems=${st.problems}></esphome-problems>
        ${st.seeded ? this.#renderEsphomeBanner(ctx, st) : nothing}
        ${!st.seeded
          ? html`<div class="loading" aria-busy="true"></div>`
          : this.#renderView(ctx, st)}
      </main>
      ${this._toast === null
        ? nothing
        : html`<div class="toast" role="status" aria-live="polite">
            <span>${this._toast.message}</span>
            ${this._toast.action === undefined
              ? nothing
              : html`<md-text-button
                  @click=${() => {
                    this._toast?.action?.run();
                    this._toast = null;
                  }}
                  >${this._toast.action.label}</md-text-button
                >`}
            <md-icon-button aria-label=${localize("common.dismiss")} @click=${() => { this._toast = null; }}>${icon(mdiClose)}</md-icon-button>
          </div>`}
    `;
  }

  /** Installing ESPHome (progress), or why it could not be, on every tab. */
  #renderEsphomeBanner(ctx: PanelContext, st: AppState): TemplateResult | typeof nothing {
    const { localize } = ctx;
    // A builder without managed ESPHome (older) says only whether it found one.
    const banner = st.esphome === null ? (st.server !== null && st.server.esphome_version === null ? { kind: "missing" as const } : null) : esphomeBanner(st.esphome);
    if (banner === null) return nothing;
    const details =
      this._tab === "esphome" ? nothing : html`<md-text-button class="esphome-details" @click=${() => { this.#select("esphome"); }}>${localize("app.esphome_show")}</md-text-button>`;
    switch (banner.kind) {
      case "provisioning":
        return html`<div class="alert info notice esphome-banner" role="status">${icon(mdiAlertCircle)}<span
            >${localize("app.esphome_installing", { version: banner.version, percent: banner.percent })}</span
          >${details}</div>`;
      case "failed":
        return html`<div class="alert ${banner.blocking ? "error" : "warning"} notice esphome-banner" role="alert">${icon(mdiAlertCircle)}<span
            >${banner.blocking
              ? localize("app.esphome_failed_blocking", { message: banner.message })
              : localize("app.esphome_failed", { version: banner.version ?? "", message: banner.message })}</span
          >${details}</div>`;
      case "missing":
        return html`<div class="alert warning notice" role="alert">${icon(mdiAlertCircle)}<span>${localize("app.esphome_missing")}</span></div>`;
    }
  }

  #renderView(ctx: PanelContext, st: AppState): TemplateResult {
    switch (this._tab) {
      case "esphome":
        return html`<esphome-esphome-view .ctx=${ctx} .state=${st} ?narrow=${this._narrow}></esphome-esphome-view>`;
      case "devices":
        return html`<esphome-devices-view .ctx=${ctx} .state=${st} ?narrow=${this._narrow}></esphome-devices-view>`;
      case "jobs":
        return html`<esphome-jobs-view .ctx=${ctx} .state=${st} ?narrow=${this._narrow}></esphome-jobs-view>`;
      case "build-servers":
        return html`<esphome-build-servers-view .ctx=${ctx} .state=${st} ?narrow=${this._narrow}></esphome-build-servers-view>`;
    }
  }

  static override styles = [
    sharedStyles,
    css`
      :host {
        display: flex;
        flex-direction: column;
        min-height: 100vh;
        background: var(--primary-background-color, #fafafa);
      }
      .top-bar {
        position: sticky;
        top: 0;
        /* Equal to md-dialog's scrim: the dialogs come later in the DOM and cover the bar. */
        z-index: 1;
        background: var(--app-header-background-color, var(--primary-background-color, #fafafa));
        color: var(--app-header-text-color, var(--primary-text-color, #212121));
        border-bottom: var(--app-header-border-bottom, 1px solid var(--divider-color, rgba(0, 0, 0, 0.12)));
        padding: 0 16px;
      }
      .title-row {
        display: flex;
        align-items: center;
        justify-content: space-between;
        gap: 8px 16px;
        flex-wrap: wrap;
        min-height: 56px;
        max-width: 1240px;
        margin: 0 auto;
      }
      .title {
        margin: 0;
        font-size: 20px;
        font-weight: 400;
        white-space: nowrap;
      }
      .status {
        display: flex;
        gap: 16px;
        font-size: 13px;
        color: var(--secondary-text-color, #727272);
      }
      .tabs {
        display: flex;
        gap: 8px;
        max-width: 1240px;
        margin: 0 auto;
      }
      .tab {
        all: unset;
        box-sizing: border-box;
        position: relative;
        cursor: pointer;
        padding: 0 16px;
        height: 48px;
        display: inline-flex;
        align-items: center;
        font-size: 14px;
        font-weight: 500;
        letter-spacing: 0.02em;
        white-space: nowrap;
        color: var(--secondary-text-color, #727272);
        border-radius: 8px 8px 0 0;
      }
      .tab:hover {
        background: color-mix(in srgb, var(--primary-text-color, #212121) 6%, transparent);
      }
      .tab[aria-selected="true"] {
        color: var(--primary-color, #03a9f4);
      }
      .tab[aria-selected="true"]::after {
        content: "";
        position: absolute;
        left: 12px;
        right: 12px;
        bottom: 0;
        height: 3px;
        border-radius: 3px 3px 0 0;
        background: var(--primary-color, #03a9f4);
      }
      .attention {
        width: 8px;
        height: 8px;
        margin-left: 6px;
        border-radius: 50%;
        background: var(--error-color, #db4437);
      }
      .tab:focus-visible {
        outline: 2px solid var(--primary-color, #03a9f4);
        outline-offset: -2px;
      }
      main {
        box-sizing: border-box;
        width: 100%;
        max-width: 1240px;
        margin: 0 auto;
        padding: 16px;
        flex: 1;
      }
      .notice {
        margin-bottom: 16px;
      }
      .connection {
        display: flex;
        align-items: center;
        justify-content: center;
        gap: 8px;
        padding: 8px 16px;
        font-size: 14px;
        background: color-mix(in srgb, var(--warning-color, #ffa600) 18%, var(--primary-background-color, #fafafa));
      }
      .connection .dot {
        width: 8px;
        height: 8px;
        border-radius: 50%;
        background: var(--warning-color, #ffa600);
      }
      .loading {
        min-height: 200px;
      }
      .toast {
        position: fixed;
        left: 50%;
        bottom: 16px;
        transform: translateX(-50%);
        z-index: 10;
        display: flex;
        align-items: center;
        gap: 8px;
        max-width: min(560px, calc(100% - 32px));
        box-sizing: border-box;
        padding: 6px 6px 6px 16px;
        border-radius: 8px;
        font-size: 14px;
        background: var(--esphome-toast-background, #323232);
        color: var(--esphome-toast-color, #f1f1f1);
        box-shadow: 0 3px 12px rgba(0, 0, 0, 0.3);
        --md-text-button-label-text-color: var(--esphome-toast-action, #7fd4ff);
        --md-icon-button-icon-color: var(--esphome-toast-color, #f1f1f1);
      }
      .toast > span {
        flex: 1;
      }
      @media (max-width: 600px) {
        .top-bar {
          padding: 0 8px;
        }
        .title-row {
          min-height: 48px;
          padding: 0 8px;
        }
        .title {
          font-size: 18px;
        }
        .status .version {
          display: none;
        }
        main {
          padding: 12px 8px;
        }
        .tabs {
          gap: 0;
        }
        .tab {
          flex: 1 1 auto;
          justify-content: center;
          padding: 0 8px;
        }
      }
    `,
  ];
}

declare global {
  interface HTMLElementTagNameMap {
    "esphome-builder-app": EsphomeBuilderApp;
  }
}
