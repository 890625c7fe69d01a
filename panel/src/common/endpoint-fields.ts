/**
 * The host and port fields of a build server's address, shared by the pair
 * dialog and the endpoint editor (styled by `endpointFieldStyles`).
 */
import "@material/web/textfield/outlined-text-field.js";
import { html, type TemplateResult } from "lit";
import { DEFAULT_PEER_LINK_PORT } from "../data/remote-build.ts";
import type { LocalizeFunc } from "./localize.ts";

export interface EndpointFields {
  localize: LocalizeFunc;
  hostname: string;
  port: string;
  /** Which field to show in error, if any. */
  fieldError: "host" | "port" | null;
  /** Show the hint under the host field (when the dialog has room for it). */
  hostHint?: boolean;
  onHostname(value: string): void;
  onPort(value: string): void;
}

export function renderEndpointFields(f: EndpointFields): TemplateResult {
  return html`<div class="fields">
    <md-outlined-text-field
      class="host"
      label=${f.localize("pair.host")}
      supporting-text=${f.hostHint === true ? f.localize("pair.host_hint") : ""}
      autocomplete="off"
      spellcheck="false"
      required
      .value=${f.hostname}
      ?error=${f.fieldError === "host"}
      error-text=${f.localize("pair.host_invalid")}
      @input=${(e: Event) => { f.onHostname((e.target as HTMLInputElement).value); }}
    ></md-outlined-text-field>
    <md-outlined-text-field
      class="port"
      label=${f.localize("pair.port")}
      type="number"
      min="1"
      max="65535"
      placeholder=${String(DEFAULT_PEER_LINK_PORT)}
      .value=${f.port}
      ?error=${f.fieldError === "port"}
      error-text=${f.localize("pair.port_invalid")}
      @input=${(e: Event) => { f.onPort((e.target as HTMLInputElement).value); }}
    ></md-outlined-text-field>
  </div>`;
}
