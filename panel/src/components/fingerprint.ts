/**
 * A pin shown for people to compare: 7 emoji (names as tooltip and for
 * screen readers) and, optionally, the hex pairs.
 */
import { css, html, nothing, type TemplateResult } from "lit";
import { emojiNames, pinEmoji, pinHexPairs } from "../common/fingerprint.ts";
import type { LocalizeFunc } from "../common/localize.ts";

export type FingerprintSize = "large" | "medium" | "small";

export function fingerprint(
  pin: string,
  localize: LocalizeFunc,
  opts: { size?: FingerprintSize; hex?: boolean } = {},
): TemplateResult {
  const emoji = pinEmoji(pin);
  const size = opts.size ?? "medium";
  const names = emojiNames(emoji, localize);
  // Eight pairs per group so the 32 pairs wrap into even lines.
  const groups = (pinHexPairs(pin).match(/(?:[0-9a-f]{2} ?){1,8}/g) ?? []).map((g) => g.trim());
  return html`<div class="fingerprint ${size}" data-pin=${pin}>
    <div class="emoji-row" role="img" aria-label=${localize("fingerprint.aria", { names })} title=${names}>
      ${emoji.map((e) => html`<span class="emoji" aria-hidden="true" title=${localize(`fingerprint.names.${e.name}`)}>${e.emoji}</span>`)}
    </div>
    ${opts.hex === true
      ? html`<div class="hex" aria-label=${localize("fingerprint.hex_label")}>${groups.map((g) => html`<span class="hex-group">${g}</span>`)}</div>`
      : nothing}
  </div>`;
}

export const fingerprintStyles = css`
  .fingerprint {
    display: flex;
    flex-direction: column;
    gap: 8px;
    min-width: 0;
  }
  .emoji-row {
    display: flex;
    flex-wrap: wrap;
    gap: 4px;
    font-family: "Noto Color Emoji", "Apple Color Emoji", "Segoe UI Emoji", sans-serif;
    line-height: 1;
  }
  .emoji {
    display: inline-flex;
    align-items: center;
    justify-content: center;
    cursor: default;
  }
  .fingerprint.large .emoji-row {
    gap: 8px;
  }
  .fingerprint.large .emoji {
    width: 48px;
    height: 48px;
    font-size: 32px;
    border-radius: 12px;
    background: var(--secondary-background-color, #f0f0f0);
  }
  .fingerprint.medium .emoji {
    width: 32px;
    height: 32px;
    font-size: 22px;
    border-radius: 8px;
    background: var(--secondary-background-color, #f0f0f0);
  }
  .fingerprint.small .emoji-row {
    gap: 2px;
  }
  .fingerprint.small .emoji {
    font-size: 16px;
  }
  .hex {
    display: flex;
    flex-wrap: wrap;
    gap: 0 12px;
    font-family: var(--ha-font-family-code, ui-monospace, "DejaVu Sans Mono", monospace);
    font-size: 13px;
    line-height: 20px;
    color: var(--secondary-text-color, #727272);
    overflow-wrap: anywhere;
  }
  .hex-group {
    white-space: nowrap;
  }
  @media (max-width: 600px) {
    /* Seven in a row down to a phone's dialog. */
    .fingerprint.large .emoji-row {
      gap: 4px;
    }
    .fingerprint.large .emoji {
      width: 36px;
      height: 36px;
      font-size: 24px;
      border-radius: 10px;
    }
  }
`;
