/**
 * The install dialog's choices, as templates the dialog fills in: how to
 * install (wirelessly, a serial port of the server, a firmware download),
 * which serial port, and which firmware file to download. The dialog holds
 * the state and runs the commands; these only show it.
 */
import { html, nothing, type TemplateResult } from "lit";
import { formatKilobytes } from "../common/format.ts";
import { icon, mdiAlertCircle, mdiChevronRight, mdiDownload, mdiRefresh, mdiUsb, mdiWifi } from "../common/icons.ts";
import type { LocalizeFunc } from "../common/localize.ts";
import type { FirmwareBinary, SerialPort } from "../data/types.ts";

/** An error the dialog shows in its body, or nothing. */
export function errorAlert(message: string | null): TemplateResult | typeof nothing {
  if (message === null) return nothing;
  return html`<div class="alert error" role="alert">${icon(mdiAlertCircle)}<span>${message}</span></div>`;
}

export interface MethodStepOptions {
  /** Where a wireless install goes (the device's address). */
  address: string;
  error: string | null;
  busy: boolean;
  onOta: () => void;
  onSerial: () => void;
  onDownload: () => void;
}

export function methodStep(localize: LocalizeFunc, opts: MethodStepOptions): TemplateResult {
  const method = (name: "ota" | "serial" | "download", glyph: string, text: string, onClick: () => void): TemplateResult =>
    html`<md-list-item type="button" data-method=${name} ?disabled=${opts.busy} @click=${onClick}>
      <span slot="start" class="method-icon">${icon(glyph)}</span>
      <span slot="headline">${localize(`install.method.${name}`)}</span>
      <span slot="supporting-text">${text}</span>
      <span slot="end">${icon(mdiChevronRight)}</span>
    </md-list-item>`;
  return html`
    <p class="lead">${localize("install.choose_method")}</p>
    ${errorAlert(opts.error)}
    <md-list class="methods" aria-label=${localize("install.choose_method")}>
      ${method("ota", mdiWifi, localize("install.method.ota_text", { address: opts.address }), opts.onOta)}
      ${method("serial", mdiUsb, localize("install.method.serial_text"), opts.onSerial)}
      ${method("download", mdiDownload, localize("install.method.download_text"), opts.onDownload)}
    </md-list>
  `;
}

export interface PortsStepOptions {
  /** null while loading. */
  ports: readonly SerialPort[] | null;
  portsError: string | null;
  error: string | null;
  busy: boolean;
  onPort: (port: string) => void;
  onRefresh: () => void;
}

export function portsStep(localize: LocalizeFunc, opts: PortsStepOptions): TemplateResult {
  const ports = opts.ports;
  let body: TemplateResult | typeof nothing;
  if (ports === null) {
    body = html`<div class="placeholder" role="status">
      <md-circular-progress indeterminate aria-label=${localize("install.ports.loading")}></md-circular-progress>
      <span>${localize("install.ports.loading")}</span>
    </div>`;
  } else if (opts.portsError !== null) {
    body = errorAlert(opts.portsError);
  } else if (ports.length === 0) {
    body = html`<div class="placeholder empty" role="status">${icon(mdiUsb)}<span>${localize("install.ports.empty")}</span></div>`;
  } else {
    body = html`<md-list class="ports" aria-label=${localize("install.ports.title")}>
      ${ports.map(
        (p) => html`<md-list-item type="button" data-port=${p.port} ?disabled=${opts.busy} @click=${() => { opts.onPort(p.port); }}>
          <span slot="start" class="method-icon">${icon(mdiUsb)}</span>
          <span slot="headline">${p.desc}</span>
          <span slot="supporting-text">${p.port}</span>
          ${p.hint === null
            ? nothing
            : html`<span slot="end" class="badge info" title=${localize(p.hint === "esp" ? "install.ports.hint_esp_title" : "install.ports.hint_bridge_title")}
                >${localize(p.hint === "esp" ? "install.ports.hint_esp" : "install.ports.hint_bridge")}</span
              >`}
        </md-list-item>`,
      )}
    </md-list>`;
  }
  return html`
    <div class="ports-header">
      <span class="lead">${localize("install.ports.title")}</span>
      <md-icon-button aria-label=${localize("install.ports.refresh")} title=${localize("install.ports.refresh")} @click=${opts.onRefresh}>
        ${icon(mdiRefresh)}
      </md-icon-button>
    </div>
    ${errorAlert(opts.error)} ${body}
  `;
}

export interface BinaryListOptions {
  /** null while loading. */
  binaries: readonly FirmwareBinary[] | null;
  error: string | null;
  onDownload: (file: string) => void;
}

/** The firmware files the last build left, each with its download button. */
export function binaryList(localize: LocalizeFunc, opts: BinaryListOptions): TemplateResult {
  const binaries = opts.binaries;
  if (binaries === null) {
    return html`<div class="placeholder" role="status"><md-circular-progress indeterminate></md-circular-progress>${localize("install.binaries_loading")}</div>`;
  }
  return html`
    ${errorAlert(opts.error)}
    ${binaries.length === 0 && opts.error === null ? html`<div class="placeholder">${localize("install.binaries_none")}</div>` : nothing}
    <div class="binaries" role="list" aria-label=${localize("install.binaries")}>
      ${binaries.map(
        (b) => html`<div class="binary" role="listitem">
          <div class="binary-text">
            <div>${b.title}</div>
            <div class="secondary">${b.download_name} · ${localize("install.size", { size: formatKilobytes(b.size) })}</div>
          </div>
          <md-outlined-button data-file=${b.file} aria-label=${localize("install.download_binary", { title: b.title })} @click=${() => { opts.onDownload(b.file); }}>
            <span slot="icon">${icon(mdiDownload)}</span>${localize("common.download")}
          </md-outlined-button>
        </div>`,
      )}
    </div>
  `;
}
