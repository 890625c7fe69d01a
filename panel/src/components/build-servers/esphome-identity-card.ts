/**
 * "This builder": its label, ESPHome version, the build server's port (or
 * that it is off), the fingerprint others compare when pairing, and rotating
 * the key (every paired builder must pair again).
 */
import "@material/web/button/text-button.js";
import { css, html, nothing, type TemplateResult } from "lit";
import { customElement } from "lit/decorators.js";
import { fireToast } from "../../common/context.ts";
import { icon, mdiFingerprint, mdiKeyChange } from "../../common/icons.ts";
import { fingerprint } from "../fingerprint.ts";
import { BuildServersSection, cardHeader } from "./section.ts";
import { cardStyles } from "./styles.ts";

@customElement("esphome-identity-card")
export class EsphomeIdentityCard extends BuildServersSection {
  async #rotate(): Promise<void> {
    await this.confirmThenRun("build_servers.identity.rotate_confirm", {}, "rotate", async (c) => {
      const identity = await c.api.rotateIdentity();
      c.store.dispatch({ type: "remote_identity", identity });
      fireToast(this, { message: c.localize("build_servers.identity.rotated") });
    });
  }

  protected override render(): TemplateResult | typeof nothing {
    if (this.ctx === undefined || this.remote === undefined) return nothing;
    const { localize } = this.ctx;
    const id = this.remote.identity;
    const details: string[] = [];
    if (id.esphome_version !== null) details.push(localize("app.esphome_version", { version: id.esphome_version }));
    details.push(
      id.listener_port === null
        ? localize("build_servers.identity.listener_off")
        : localize("build_servers.identity.listener_port", { port: String(id.listener_port) }),
    );
    return html`<section class="card identity" aria-labelledby="identity-title">
      ${cardHeader({
        icon: mdiFingerprint,
        titleId: "identity-title",
        title: localize("build_servers.identity.title"),
        text: localize("build_servers.identity.text"),
        action: html`<md-text-button class="rotate header-action" ?disabled=${this.busy.has("rotate")} @click=${() => void this.#rotate()}>
          <span slot="icon">${icon(mdiKeyChange)}</span>${localize("build_servers.identity.rotate")}
        </md-text-button>`,
      })}
      <div class="card-content identity-content">
        <div class="identity-label">
          <span class="builder-label">${id.label}</span>
          <span class="secondary">${details.join(" · ")}</span>
        </div>
        ${fingerprint(id.pin_sha256, localize, { size: "large", hex: true })}
      </div>
    </section>`;
  }

  static override styles = [
    ...cardStyles,
    css`
      .header-action {
        flex: none;
        margin: 2px -4px 0 0;
      }
      .card-content {
        padding: 8px 16px 16px 72px;
      }
      .identity-content {
        display: flex;
        flex-wrap: wrap;
        align-items: flex-start;
        justify-content: space-between;
        gap: 12px 24px;
      }
      .identity-content .fingerprint {
        max-width: 400px;
      }
      .identity-label {
        display: flex;
        flex-direction: column;
        gap: 2px;
      }
      .builder-label {
        font-size: 16px;
        font-weight: 500;
      }
      .identity-label .secondary {
        font-size: 13px;
      }
      @media (max-width: 600px) {
        .header-action {
          margin: -4px 0 0 auto;
        }
        .card-content {
          padding-left: 12px;
          padding-right: 12px;
        }
      }
    `,
  ];
}

declare global {
  interface HTMLElementTagNameMap {
    "esphome-identity-card": EsphomeIdentityCard;
  }
}
