/**
 * "Send builds to build servers": this builder offloading its compiles. The
 * auto-route switch, the version match policy, the paired build servers
 * (status, use switch, move, reset its build files there, unpair), the
 * builders found on the LAN, and "add by host and port".
 */
import "@material/web/button/outlined-button.js";
import "@material/web/iconbutton/icon-button.js";
import "@material/web/switch/switch.js";
import { css, html, nothing, type TemplateResult } from "lit";
import { customElement } from "lit/decorators.js";
import { fireToast } from "../../common/context.ts";
import { icon, mdiCloudUpload, mdiDelete, mdiDeleteSweep, mdiLan, mdiPencil, mdiPlus } from "../../common/icons.ts";
import type { LocalizeFunc } from "../../common/localize.ts";
import { hostEndpoint, hostTitle, pairableHosts, pairingStatus, type RemoteBuildState } from "../../data/remote-build.ts";
import type { DiscoveredHost, Pairing } from "../../data/types.ts";
import { showEndpointDialog, showPairDialog } from "../../dialogs/show-dialog.ts";
import { fingerprint } from "../fingerprint.ts";
import { versionPolicySelect } from "../version-policy.ts";
import { BuildServersSection, cardHeader } from "./section.ts";
import { cardStyles } from "./styles.ts";

@customElement("esphome-offloader-card")
export class EsphomeOffloaderCard extends BuildServersSection {
  async #resetBuildEnv(pairing: Pairing): Promise<void> {
    const label = pairing.label;
    await this.confirmThenRun("build_servers.offloader.reset_confirm", { label }, `reset:${pairing.pin_sha256}`, async (c) => {
      await c.api.resetBuildEnv(pairing.pin_sha256);
      fireToast(this, { message: c.localize("build_servers.offloader.reset_started", { label }) });
    });
  }

  #pairHost(host: DiscoveredHost): void {
    const endpoint = hostEndpoint(host);
    if (endpoint === null) return;
    showPairDialog(this, { ...endpoint, announcedPin: host.pin_sha256, preview: true });
  }

  protected override render(): TemplateResult | typeof nothing {
    if (this.ctx === undefined || this.remote === undefined) return nothing;
    const { localize } = this.ctx;
    const remote = this.remote;
    const pairings = remote.offloader.pairings;
    const hosts = pairableHosts(remote);
    return html`<section class="card offloader" aria-labelledby="offloader-title">
      ${cardHeader({ icon: mdiCloudUpload, titleId: "offloader-title", title: localize("build_servers.offloader.title"), text: localize("build_servers.offloader.text") })}
      <label class="switch-row">
        <span class="switch-text">
          <span class="switch-label">${localize("build_servers.offloader.switch")}</span>
          <span class="secondary">${localize("build_servers.offloader.switch_text")}</span>
        </span>
        <md-switch
          class="auto-route-switch"
          aria-label=${localize("build_servers.offloader.switch")}
          .selected=${remote.offloader.remoteBuildsEnabled}
          ?disabled=${this.busy.has("offloader")}
          @change=${(e: Event) => { this.toggle(e, "offloader", (c, on) => c.api.setRemoteBuildsEnabled(on)); }}
        ></md-switch>
      </label>
      ${versionPolicySelect(localize, {
        role: "offloader",
        value: remote.offloader.versionMatchPolicy,
        disabled: this.busy.has("version_match_policy"),
        onChange: (policy) => void this.run("version_match_policy", (c) => c.api.setVersionMatchPolicy(policy)),
      })}
      <div class="subsection" role="group" aria-labelledby="pairings-title">
        <h3 id="pairings-title">${localize("build_servers.offloader.pairings")}</h3>
        ${pairings.length === 0
          ? html`<p class="secondary hint">${localize("build_servers.offloader.no_pairings")}</p>`
          : html`<ul class="list">${pairings.map((p) => this.#renderPairing(p, remote, localize))}</ul>`}
      </div>
      <div class="subsection" role="group" aria-labelledby="discovered-title">
        <h3 id="discovered-title">${localize("build_servers.offloader.discovered")}</h3>
        ${hosts.length === 0
          ? html`<p class="secondary hint">${localize("build_servers.offloader.no_discovered")}</p>`
          : html`<ul class="list">${hosts.map((h) => this.#renderHost(h, localize))}</ul>`}
      </div>
      <div class="card-actions">
        <md-outlined-button class="add-by-address" @click=${() => { showPairDialog(this, {}); }}>
          <span slot="icon">${icon(mdiPlus)}</span>${localize("build_servers.offloader.add")}
        </md-outlined-button>
      </div>
    </section>`;
  }

  #renderPairing(pairing: Pairing, remote: RemoteBuildState, localize: LocalizeFunc): TemplateResult {
    const pin = pairing.pin_sha256;
    const status = pairingStatus(pairing, remote.offloader.queues[pin]);
    const busy = this.busy.has(`pairing:${pin}`);
    const meta = [`${pairing.receiver_hostname}:${pairing.receiver_port}`];
    if (pairing.esphome_version !== "") meta.push(localize("app.esphome_version", { version: pairing.esphome_version }));
    if (pairing.version_policy !== null) meta.push(localize("build_servers.versions.pairing_policy", { policy: localize(`build_servers.versions.policy.${pairing.version_policy}`) }));
    if (pairing.auto_provision_supported) meta.push(localize("build_servers.versions.pairing_installs"));
    const statusText =
      status.kind === "busy" && (status.running > 0 || status.waiting > 0)
        ? localize("build_servers.status.busy_counts", { running: status.running, waiting: status.waiting })
        : localize(`build_servers.status.${status.kind}`);
    const pending = pairing.status === "pending";
    return html`<li class="row pairing" data-pin=${pin} data-status=${status.kind}>
      <div class="row-main">
        <div class="row-title">
          <span class="name">${pairing.label}</span>
          <span class="badge status ${status.tone}">${statusText}</span>
        </div>
        <div class="secondary meta">
          <span>${meta.join(" · ")}</span> ${fingerprint(pin, localize, { size: "small" })}
        </div>
        ${pending ? html`<div class="secondary hint">${localize("build_servers.offloader.pending_hint", { label: pairing.label })}</div>` : nothing}
        ${!pairing.connected && pairing.last_connect_error !== "" && !pending
          ? html`<div class="error-text">${localize("build_servers.offloader.last_error", { error: pairing.last_connect_error })}</div>`
          : nothing}
      </div>
      <div class="row-actions">
        ${pending
          ? nothing
          : html`<md-switch
              class="pairing-switch"
              aria-label=${localize("build_servers.offloader.use", { label: pairing.label })}
              title=${localize("build_servers.offloader.use", { label: pairing.label })}
              .selected=${pairing.enabled}
              ?disabled=${busy}
              @change=${(e: Event) => { this.toggle(e, `pairing:${pin}`, (c, on) => c.api.setPairingEnabled(pin, on)); }}
            ></md-switch>`}
        ${pending
          ? nothing
          : html`<md-icon-button
              class="edit"
              aria-label=${localize("build_servers.offloader.edit", { label: pairing.label })}
              title=${localize("build_servers.offloader.edit", { label: pairing.label })}
              @click=${() => {
                showEndpointDialog(this, { pin_sha256: pin, label: pairing.label, hostname: pairing.receiver_hostname, port: pairing.receiver_port });
              }}
              >${icon(mdiPencil)}</md-icon-button
            >`}
        ${pending || !pairing.connected
          ? nothing
          : html`<md-icon-button
              class="reset-build-env"
              aria-label=${localize(pairing.reset_build_env_supported ? "build_servers.offloader.reset" : "build_servers.offloader.reset_unsupported", { label: pairing.label })}
              title=${localize(pairing.reset_build_env_supported ? "build_servers.offloader.reset" : "build_servers.offloader.reset_unsupported", { label: pairing.label })}
              ?disabled=${!pairing.reset_build_env_supported || this.busy.has(`reset:${pin}`)}
              @click=${() => void this.#resetBuildEnv(pairing)}
              >${icon(mdiDeleteSweep)}</md-icon-button
            >`}
        <md-icon-button
          class="unpair"
          aria-label=${localize(pending ? "build_servers.offloader.cancel_request" : "build_servers.offloader.unpair_named", { label: pairing.label })}
          title=${localize(pending ? "build_servers.offloader.cancel_request" : "build_servers.offloader.unpair_named", { label: pairing.label })}
          ?disabled=${busy}
          @click=${() => void this.unpair(pin, pairing.label)}
          >${icon(mdiDelete)}</md-icon-button
        >
      </div>
    </li>`;
  }

  #renderHost(host: DiscoveredHost, localize: LocalizeFunc): TemplateResult {
    const endpoint = hostEndpoint(host);
    const title = hostTitle(host);
    const meta = [endpoint === null ? host.hostname : `${endpoint.hostname}:${endpoint.port}`];
    if (host.esphome_version !== "") meta.push(localize("app.esphome_version", { version: host.esphome_version }));
    return html`<li class="row host" data-name=${host.name}>
      <span class="row-icon">${icon(mdiLan)}</span>
      <div class="row-main">
        <div class="row-title"><span class="name">${title}</span></div>
        <div class="secondary meta">${meta.join(" · ")}</div>
        ${endpoint === null ? html`<div class="secondary hint">${localize("build_servers.offloader.host_off")}</div>` : nothing}
      </div>
      <div class="row-actions">
        <md-outlined-button class="pair" ?disabled=${endpoint === null} aria-label=${localize("build_servers.offloader.pair_named", { label: title })} @click=${() => { this.#pairHost(host); }}
          >${localize("build_servers.offloader.pair")}</md-outlined-button
        >
      </div>
    </li>`;
  }

  static override styles = [
    ...cardStyles,
    css`
      .card-actions {
        display: flex;
        flex-wrap: wrap;
        justify-content: flex-end;
        gap: 8px;
        padding: 8px;
        border-top: 1px solid var(--divider-color, rgba(0, 0, 0, 0.12));
      }
      .row-icon {
        display: flex;
        color: var(--secondary-text-color, #727272);
      }
      .error-text {
        font-size: 13px;
        color: var(--esphome-error-text, var(--error-color, #db4437));
        overflow-wrap: anywhere;
      }
    `,
  ];
}

declare global {
  interface HTMLElementTagNameMap {
    "esphome-offloader-card": EsphomeOffloaderCard;
  }
}
