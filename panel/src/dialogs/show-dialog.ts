/**
 * Opening dialogs: an element fires `esphome-show-dialog` and the app shell
 * creates the dialog element once, hands it the panel context and calls its
 * `showDialog(params)`. Openers are typed per dialog.
 */
import type { PanelContext } from "../common/context.ts";

export interface DialogElement<P> extends HTMLElement {
  ctx: PanelContext | undefined;
  showDialog(params: P): void;
}

export interface ShowDialogDetail {
  tag: string;
  params: unknown;
}

export function showDialog(origin: EventTarget, tag: string, params: unknown): void {
  origin.dispatchEvent(
    new CustomEvent<ShowDialogDetail>("esphome-show-dialog", { detail: { tag, params }, bubbles: true, composed: true }),
  );
}

export interface InstallDialogParams {
  configuration: string;
  /** Follow this job instead of asking how to install. */
  jobId?: string;
  /** Open on the list of firmware files the last build left. */
  binaries?: boolean;
}

export function showInstallDialog(origin: EventTarget, params: InstallDialogParams): void {
  showDialog(origin, "esphome-install-dialog", params);
}

export interface ConfirmDialogParams {
  title: string;
  text: string;
  action: string;
  resolve(confirmed: boolean): void;
}

export function showConfirmDialog(origin: EventTarget, params: Omit<ConfirmDialogParams, "resolve">): Promise<boolean> {
  return new Promise((resolve) => {
    showDialog(origin, "esphome-confirm-dialog", { ...params, resolve });
  });
}

declare global {
  interface HTMLElementEventMap {
    "esphome-show-dialog": CustomEvent<ShowDialogDetail>;
  }
}

export interface PairDialogParams {
  /** Prefilled address (a discovered builder, or "pair again" after an alert). */
  hostname?: string;
  port?: number;
  /** The pin an mDNS announcement (or the old pairing) named, to compare with the preview. */
  announcedPin?: string | null;
  /** Preview at once instead of asking for the address first. */
  preview?: boolean;
}

export function showPairDialog(origin: EventTarget, params: PairDialogParams = {}): void {
  showDialog(origin, "esphome-pair-dialog", params);
}

export interface EndpointDialogParams {
  pin_sha256: string;
  label: string;
  hostname: string;
  port: number;
}

export function showEndpointDialog(origin: EventTarget, params: EndpointDialogParams): void {
  showDialog(origin, "esphome-endpoint-dialog", params);
}

export interface DeviceLogsDialogParams {
  configuration: string;
  name: string;
}

export function showDeviceLogsDialog(origin: EventTarget, params: DeviceLogsDialogParams): void {
  showDialog(origin, "esphome-device-logs-dialog", params);
}

export interface DeviceAddressDialogParams {
  configuration: string;
  name: string;
  /** The address in use now. */
  address: string;
  /** Whether the owner set it (else it is the YAML's or the host default). */
  ownerSet: boolean;
  /** The YAML's address (what clearing goes back to). */
  yamlAddress: string;
}

export function showDeviceAddressDialog(origin: EventTarget, params: DeviceAddressDialogParams): void {
  showDialog(origin, "esphome-device-address-dialog", params);
}
