/**
 * What every card of the Build servers view shares: the panel context, the
 * remote-build state, and the view's commands in flight. The view owns one
 * set of busy keys for all its cards, so a control in one card and the same
 * command in another (a pairing's Unpair in its row and in its alert) are
 * disabled together.
 */
import { LitElement } from "lit";
import { property } from "lit/decorators.js";
import type { PanelContext } from "../../common/context.ts";
import type { RemoteBuildState } from "../../data/remote-build.ts";
import { showConfirmDialog, type ConfirmDialogParams } from "../../dialogs/show-dialog.ts";

/**
 * Runs a command for one control, keyed so it cannot be pressed twice while
 * in flight; a failure becomes a toast. Resolves whether it ran and succeeded.
 */
export type RunCommand = (key: string, action: (ctx: PanelContext) => Promise<unknown>) => Promise<boolean>;

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

  /** Asks first (title, text, the confirming button's label); runs the command once confirmed. */
  protected async confirmThenRun(confirm: Omit<ConfirmDialogParams, "resolve">, key: string, action: (ctx: PanelContext) => Promise<unknown>): Promise<void> {
    if (!(await showConfirmDialog(this, confirm))) return;
    await this.run(key, action);
  }

  /** Unpairs a build server after asking (from its row, and from its alert). */
  protected async unpair(pin: string, label: string): Promise<void> {
    const ctx = this.ctx;
    if (ctx === undefined) return;
    await this.confirmThenRun(
      {
        title: ctx.localize("build_servers.offloader.unpair_confirm.title", { label }),
        text: ctx.localize("build_servers.offloader.unpair_confirm.text", { label }),
        action: ctx.localize("build_servers.offloader.unpair_confirm.action"),
      },
      `pairing:${pin}`,
      (c) => c.api.unpair(pin),
    );
  }
}
