/**
 * What every card of the Build servers view shares: the panel context, the
 * remote-build state, and the view's commands in flight. The view owns one
 * set of busy keys for all its cards, so a control in one card and the same
 * command in another (a pairing's Unpair in its row and in its alert) are
 * disabled together. Also the header every card opens with.
 */
import { LitElement, html, nothing, type TemplateResult } from "lit";
import { property } from "lit/decorators.js";
import type { PanelContext } from "../../common/context.ts";
import { icon } from "../../common/icons.ts";
import type { LocalizeParams } from "../../common/localize.ts";
import type { RemoteBuildState } from "../../data/remote-build.ts";
import { showConfirmDialog } from "../../dialogs/show-dialog.ts";

/**
 * Runs a command for one control, keyed so it cannot be pressed twice while
 * in flight; a failure becomes a toast. Resolves whether it ran and succeeded.
 */
export type RunCommand = (key: string, action: (ctx: PanelContext) => Promise<unknown>) => Promise<boolean>;

/** The actions the cards ask about first; each has `title`, `text` and `action` strings under it. */
type ConfirmStrings =
  | "build_servers.identity.rotate_confirm"
  | "build_servers.receiver.remove_confirm"
  | "build_servers.offloader.unpair_confirm"
  | "build_servers.offloader.reset_confirm"
  | "build_servers.local.clean_all_confirm";

/** A card's header: its round icon, title (the card's `aria-labelledby` target), one line of text, an optional action. */
export function cardHeader(opts: { icon: string; titleId: string; title: string; text: string; action?: TemplateResult }): TemplateResult {
  return html`<div class="card-header">
    <span class="header-icon">${icon(opts.icon)}</span>
    <div class="header-text">
      <h2 id=${opts.titleId}>${opts.title}</h2>
      <p class="secondary">${opts.text}</p>
    </div>
    ${opts.action ?? nothing}
  </div>`;
}

export abstract class BuildServersSection extends LitElement {
  @property({ attribute: false }) accessor ctx: PanelContext | undefined = undefined;
  @property({ attribute: false }) accessor remote: RemoteBuildState | undefined = undefined;
  /** Keys of the commands in flight (the view's, shared by its cards). */
  @property({ attribute: false }) accessor busy: ReadonlySet<string> = new Set();
  @property({ attribute: false }) accessor run: RunCommand = () => Promise.resolve(false);

  /** A switch's change: run the command; on failure put the switch back. */
  protected toggle(e: Event, key: string, action: (ctx: PanelContext, on: boolean) => Promise<unknown>): void {
    const target = e.target as HTMLElement & { selected: boolean };
    const on = target.selected;
    void this.run(key, (c) => action(c, on)).then((ok) => {
      if (!ok) target.selected = !on;
    });
  }

  /** Asks first (the strings under `strings`, filled with `params`); runs the command once confirmed. */
  protected async confirmThenRun(strings: ConfirmStrings, params: LocalizeParams, key: string, action: (ctx: PanelContext) => Promise<unknown>): Promise<void> {
    const ctx = this.ctx;
    if (ctx === undefined) return;
    const confirmed = await showConfirmDialog(this, {
      title: ctx.localize(`${strings}.title`, params),
      text: ctx.localize(`${strings}.text`, params),
      action: ctx.localize(`${strings}.action`, params),
    });
    if (confirmed) await this.run(key, action);
  }

  /** Unpairs a build server after asking (from its row, and from its alert). */
  protected unpair(pin: string, label: string): Promise<void> {
    return this.confirmThenRun("build_servers.offloader.unpair_confirm", { label }, `pairing:${pin}`, (c) => c.api.unpair(pin));
  }
}
