/**
 * A job's log: ANSI colours rendered, virtualised (only the visible lines are
 * in the DOM, so 50,000 lines cost what 50 do), following the tail unless the
 * user scrolled up.
 */
import { LitElement, css, html, nothing, type PropertyValues, type TemplateResult } from "lit";
import { customElement, property, query, state } from "lit/decorators.js";
import { parseAnsi } from "../common/ansi.ts";
import { icon, mdiArrowDown } from "../common/icons.ts";
import type { LocalizeFunc } from "../common/localize.ts";
import type { LogModel } from "../common/log-model.ts";

/** Must match `.line { height }` below. */
const LINE_HEIGHT = 18;
/** Lines rendered above and below the visible ones. */
const OVERSCAN = 30;

@customElement("esphome-log-viewer")
export class EsphomeLogViewer extends LitElement {
  @property({ attribute: false }) accessor model: LogModel | undefined = undefined;
  @property({ attribute: false }) accessor localize: LocalizeFunc | undefined = undefined;
  /** Set when no more lines will come (the job is over): the log stops being busy for assistive tech. */
  @property({ type: Boolean }) accessor done = false;

  @state() private accessor _follow = true;
  @query(".scroller") private accessor _scroller: HTMLElement | null = null;

  #unsubscribe: (() => void) | null = null;
  #subscribedTo: LogModel | undefined = undefined;
  #frame = 0;
  #scrollTop = 0;
  #viewport = 400;
  #lastHidden = 0;
  #resizeObserver: ResizeObserver | null = null;

  override connectedCallback(): void {
    super.connectedCallback();
    this.#subscribe();
    this.#resizeObserver = new ResizeObserver(() => {
      const el = this._scroller;
      if (el !== null && el.clientHeight !== this.#viewport) {
        this.#viewport = el.clientHeight;
        this.#schedule();
      }
    });
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    this.#subscribedTo = undefined;
    this.#resizeObserver?.disconnect();
    if (this.#frame !== 0) cancelAnimationFrame(this.#frame);
    this.#frame = 0;
  }

  /** Scrolls to the newest line and follows it again. */
  scrollToEnd(): void {
    this._follow = true;
    const el = this._scroller;
    if (el !== null) el.scrollTop = el.scrollHeight;
  }

  protected override willUpdate(changed: PropertyValues<this>): void {
    if (changed.has("model")) {
      this.#subscribe();
      this.#lastHidden = this.model?.hidden ?? 0;
    }
  }

  protected override firstUpdated(): void {
    const el = this._scroller;
    if (el !== null) {
      this.#viewport = el.clientHeight || this.#viewport;
      this.#resizeObserver?.observe(el);
    }
  }

  protected override updated(): void {
    const el = this._scroller;
    if (el === null) return;
    const model = this.model;
    if (model !== undefined && model.hidden !== this.#lastHidden) {
      // Lines left the top: keep a reader who scrolled up looking at the same text.
      const dropped = model.hidden - this.#lastHidden;
      this.#lastHidden = model.hidden;
      if (!this._follow && dropped > 0) el.scrollTop = Math.max(0, el.scrollTop - dropped * LINE_HEIGHT);
    }
    if (this._follow && el.scrollTop + el.clientHeight < el.scrollHeight - 1) el.scrollTop = el.scrollHeight;
  }

  #subscribe(): void {
    if (this.#subscribedTo === this.model && this.#unsubscribe !== null) return;
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    this.#subscribedTo = this.model;
    if (this.model !== undefined && this.isConnected) {
      this.#unsubscribe = this.model.subscribe(() => {
        this.#schedule();
      });
    }
  }

  /** At most one render per animation frame, however many lines arrive. */
  #schedule(): void {
    if (this.#frame !== 0) return;
    this.#frame = requestAnimationFrame(() => {
      this.#frame = 0;
      this.requestUpdate();
    });
  }

  #onScroll(): void {
    const el = this._scroller;
    if (el === null) return;
    this.#scrollTop = el.scrollTop;
    const atEnd = el.scrollTop + el.clientHeight >= el.scrollHeight - LINE_HEIGHT;
    if (atEnd !== this._follow) this._follow = atEnd;
    this.#schedule();
  }

  #renderLine(raw: string): TemplateResult {
    const segments = parseAnsi(raw);
    return html`<div class="line">${segments.map((s) =>
      s.fg === null && !s.bold && !s.underline
        ? s.text
        : html`<span class="${s.fg === null ? "" : `fg${s.fg}`}${s.bold ? " b" : ""}${s.underline ? " u" : ""}">${s.text}</span>`,
    )}</div>`;
  }

  protected override render(): TemplateResult {
    const localize = this.localize;
    const model = this.model;
    const total = model?.length ?? 0;
    const hidden = model?.hidden ?? 0;
    const first = Math.max(0, Math.floor(this.#scrollTop / LINE_HEIGHT) - OVERSCAN);
    const visible = Math.ceil(this.#viewport / LINE_HEIGHT) + 2 * OVERSCAN;
    // While following, render the tail (the scroll position catches up after this render).
    const start = this._follow ? Math.max(0, total - visible) : Math.min(first, Math.max(0, total - visible));
    const end = Math.min(total, start + visible);
    const rows: TemplateResult[] = [];
    for (let i = start; i < end; i++) rows.push(this.#renderLine(model?.line(i) ?? ""));
    return html`
      <div
        class="scroller"
        role="log"
        aria-live="off"
        aria-busy=${this.done ? "false" : "true"}
        aria-label=${localize?.("log.label") ?? "Log"}
        tabindex="0"
        @scroll=${this.#onScroll}
      >
        ${hidden > 0 ? html`<div class="hidden-note">${localize?.("log.hidden", { count: hidden }) ?? `${hidden}`}</div>` : nothing}
        ${total === 0 ? html`<div class="empty">${localize?.("log.empty") ?? ""}</div>` : nothing}
        <div class="spacer" style="height: ${total * LINE_HEIGHT}px">
          <div class="rows" style="transform: translateY(${start * LINE_HEIGHT}px)">${rows}</div>
        </div>
      </div>
      ${this._follow || total === 0
        ? nothing
        : html`<button class="follow" type="button" aria-label=${localize?.("log.follow") ?? "Follow"} title=${localize?.("log.follow") ?? ""} @click=${() => { this.scrollToEnd(); }}>
            ${icon(mdiArrowDown)}
          </button>`}
    `;
  }

  static override styles = css`
    :host {
      display: block;
      position: relative;
      min-height: 0;
      --log-bg: var(--esphome-log-background, var(--secondary-background-color, #f5f5f5));
    }
    .scroller {
      box-sizing: border-box;
      height: 100%;
      overflow: auto;
      overscroll-behavior: contain;
      background: var(--log-bg);
      color: var(--primary-text-color, #212121);
      border-radius: var(--ha-border-radius-md, 8px);
      padding: 8px 0;
      font-family: var(--ha-font-family-code, var(--code-font-family, ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace));
      font-size: 12px;
      contain: strict;
    }
    .scroller:focus-visible {
      outline: 2px solid var(--primary-color, #03a9f4);
      outline-offset: -2px;
    }
    .spacer {
      position: relative;
      min-width: max-content;
    }
    .rows {
      position: absolute;
      top: 0;
      left: 0;
      min-width: 100%;
      will-change: transform;
    }
    .line,
    .hidden-note,
    .empty {
      height: 18px;
      line-height: 18px;
      padding: 0 12px;
      white-space: pre;
      tab-size: 8;
    }
    .hidden-note,
    .empty {
      font-style: italic;
      color: var(--secondary-text-color, #727272);
      font-family: var(--ha-font-family-body, Roboto, system-ui, sans-serif);
    }
    .b {
      font-weight: bold;
    }
    .u {
      text-decoration: underline;
    }
    .fg30 { color: var(--esphome-ansi-black); }
    .fg31 { color: var(--esphome-ansi-red); }
    .fg32 { color: var(--esphome-ansi-green); }
    .fg33 { color: var(--esphome-ansi-yellow); }
    .fg34 { color: var(--esphome-ansi-blue); }
    .fg35 { color: var(--esphome-ansi-magenta); }
    .fg36 { color: var(--esphome-ansi-cyan); }
    .fg37 { color: var(--esphome-ansi-white); }
    .fg90 { color: var(--esphome-ansi-bright-black); }
    .fg91 { color: var(--esphome-ansi-bright-red); }
    .fg92 { color: var(--esphome-ansi-bright-green); }
    .fg93 { color: var(--esphome-ansi-bright-yellow); }
    .fg94 { color: var(--esphome-ansi-bright-blue); }
    .fg95 { color: var(--esphome-ansi-bright-magenta); }
    .fg96 { color: var(--esphome-ansi-bright-cyan); }
    .fg97 { color: var(--esphome-ansi-bright-white); }
    .follow {
      position: absolute;
      right: 16px;
      bottom: 12px;
      width: 40px;
      height: 40px;
      border-radius: 50%;
      border: none;
      display: grid;
      place-items: center;
      cursor: pointer;
      background: var(--primary-color, #03a9f4);
      color: var(--text-primary-color, #fff);
      box-shadow: 0 2px 6px rgba(0, 0, 0, 0.3);
    }
    .follow:focus-visible {
      outline: 2px solid var(--primary-text-color, #212121);
      outline-offset: 2px;
    }
    .icon {
      width: 24px;
      height: 24px;
    }
  `;
}

declare global {
  interface HTMLElementTagNameMap {
    "esphome-log-viewer": EsphomeLogViewer;
  }
}
