/**
 * The builder's current problems (`initial_state.problems`, kept by the
 * `builder_problem_*` events) as a banner at the top of the app: a title per
 * problem code, the builder's message (what happened, what it did, what to
 * do) and a dismiss button, which clears the problem for every panel.
 */
import "@material/web/iconbutton/icon-button.js";
import { LitElement, css, html, nothing, type TemplateResult } from "lit";
import { customElement, property, state } from "lit/decorators.js";
import { fireToast, type PanelContext } from "../common/context.ts";
import { icon, mdiAlertCircle, mdiClose } from "../common/icons.ts";
import type { LocalizeKey } from "../common/localize.ts";
import { sharedStyles } from "../common/styles.ts";
import { errorText } from "../data/api.ts";
import type { BuilderProblem, ProblemCode } from "../data/types.ts";

const TITLES = {
  state_file_corrupt: "problems.state_file_corrupt",
  state_file_unreadable: "problems.state_file_unreadable",
  state_rows_skipped: "problems.state_rows_skipped",
  disk_full: "problems.disk_full",
  storage_error: "problems.storage_error",
} as const satisfies Record<ProblemCode, LocalizeKey>;

/** Writes failing now is an error; state set aside at start is a warning. */
const ERRORS: ReadonlySet<string> = new Set<ProblemCode>(["disk_full", "storage_error"]);

function titleKey(code: string): LocalizeKey {
  return Object.hasOwn(TITLES, code) ? TITLES[code as ProblemCode] : "problems.other";
}

@customElement("esphome-problems")
export class EsphomeProblems extends LitElement {
  @property({ attribute: false }) accessor ctx: PanelContext | undefined = undefined;
  @property({ attribute: false }) accessor problems: readonly BuilderProblem[] = [];
  /** Ids whose dismiss request is in flight. */
  @state() private accessor _dismissing: ReadonlySet<string> = new Set();

  async #dismiss(problem: BuilderProblem): Promise<void> {
    const ctx = this.ctx;
    if (ctx === undefined) return;
    this._dismissing = new Set([...this._dismissing, problem.id]);
    try {
      // The builder's `builder_problem_cleared` event removes it from every panel's state.
      await ctx.api.dismissProblem(problem.id);
    } catch (err) {
      fireToast(this, { message: ctx.localize("common.error", { message: errorText(err) }) });
    } finally {
      this._dismissing = new Set([...this._dismissing].filter((id) => id !== problem.id));
    }
  }

  protected override render(): TemplateResult | typeof nothing {
    const ctx = this.ctx;
    if (ctx === undefined || this.problems.length === 0) return nothing;
    return html`<section class="problems" aria-label=${ctx.localize("problems.label")}>
      ${this.problems.map((p) => this.#renderProblem(ctx, p))}
    </section>`;
  }

  #renderProblem(ctx: PanelContext, problem: BuilderProblem): TemplateResult {
    const title = ctx.localize(titleKey(problem.code));
    return html`<div class="alert ${ERRORS.has(problem.code) ? "error" : "warning"} problem" role="alert" data-code=${problem.code} data-id=${problem.id}>
      ${icon(mdiAlertCircle)}
      <div class="body">
        <div class="title">${title}</div>
        <div class="message">${problem.message}</div>
      </div>
      <md-icon-button
        class="dismiss"
        aria-label=${ctx.localize("problems.dismiss", { title })}
        title=${ctx.localize("common.dismiss")}
        ?disabled=${this._dismissing.has(problem.id)}
        @click=${() => void this.#dismiss(problem)}
        >${icon(mdiClose)}</md-icon-button
      >
    </div>`;
  }

  static override styles = [
    sharedStyles,
    css`
      :host {
        display: block;
      }
      .problems {
        display: flex;
        flex-direction: column;
        gap: 8px;
        margin-bottom: 16px;
      }
      .problem {
        align-items: center;
        padding-right: 4px;
      }
      .problem > .icon {
        align-self: flex-start;
        margin-top: 0;
      }
      .body {
        flex: 1;
        min-width: 0;
      }
      .title {
        font-weight: 500;
      }
      .message {
        font-size: 14px;
        color: var(--secondary-text-color, #727272);
      }
      .dismiss {
        flex: none;
        align-self: flex-start;
        margin-top: -6px;
      }
    `,
  ];
}

declare global {
  interface HTMLElementTagNameMap {
    "esphome-problems": EsphomeProblems;
  }
}
