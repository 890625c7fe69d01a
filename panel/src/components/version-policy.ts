/**
 * The ESPHome version policy control of the Build servers view: a select of
 * the four policies (upstream's names) with what the chosen one does below.
 * Used twice: the build server's `version_policy` and the sending builder's
 * `version_match_policy`; `role` picks the help texts.
 */
import "@material/web/select/outlined-select.js";
import "@material/web/select/select-option.js";
import { css, html, type TemplateResult } from "lit";
import type { LocalizeFunc } from "../common/localize.ts";
import { VERSION_POLICIES, type VersionPolicy } from "../data/types.ts";

export interface VersionPolicyOptions {
  role: "receiver" | "offloader";
  value: VersionPolicy;
  disabled: boolean;
  onChange: (policy: VersionPolicy) => void;
  /** Notes under the help text (say, that this builder cannot install versions). */
  notes?: readonly string[];
}

function isPolicy(value: string): value is VersionPolicy {
  return (VERSION_POLICIES as readonly string[]).includes(value);
}

export function versionPolicySelect(localize: LocalizeFunc, opts: VersionPolicyOptions): TemplateResult {
  const label = localize(`build_servers.versions.${opts.role}_label`);
  return html`<div class="subsection version-policy" data-role=${opts.role}>
    <md-outlined-select
      class="version-policy-select"
      label=${label}
      aria-label=${label}
      .value=${opts.value}
      ?disabled=${opts.disabled}
      @change=${(e: Event) => {
        const value = (e.target as HTMLSelectElement).value;
        if (isPolicy(value) && value !== opts.value) opts.onChange(value);
      }}
    >
      ${VERSION_POLICIES.map(
        (p) => html`<md-select-option value=${p} ?selected=${p === opts.value}><div slot="headline">${localize(`build_servers.versions.policy.${p}`)}</div></md-select-option>`,
      )}
    </md-outlined-select>
    <p class="secondary hint version-policy-help">${localize(`build_servers.versions.${opts.role}_help.${opts.value}`)}</p>
    ${(opts.notes ?? []).map((note) => html`<p class="secondary hint version-policy-note">${note}</p>`)}
  </div>`;
}

export const versionPolicyStyles = css`
  .version-policy md-outlined-select {
    width: min(100%, 360px);
  }
  .version-policy-help {
    margin-top: 4px;
  }
`;
