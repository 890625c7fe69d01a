/**
 * The Build servers cards' common layout: the card header (round icon,
 * title, text, an action), switch rows, subsections with their lists of
 * rows (peers, requests, pairings, builders found). Every card takes
 * `cardStyles` and adds what only it shows.
 */
import { css } from "lit";
import { emptyStateStyles, sharedStyles } from "../../common/styles.ts";
import { fingerprintStyles } from "../fingerprint.ts";
import { versionPolicyStyles } from "../version-policy.ts";

const cardLayout = css`
  :host {
    display: block;
  }
  .card-header {
    display: flex;
    gap: 16px;
    align-items: flex-start;
    padding: 16px 16px 8px;
  }
  .header-icon {
    display: flex;
    align-items: center;
    justify-content: center;
    width: 40px;
    height: 40px;
    flex: none;
    border-radius: 50%;
    color: var(--primary-color, #03a9f4);
    background: color-mix(in srgb, var(--primary-color, #03a9f4) 14%, transparent);
  }
  .header-text {
    flex: 1;
    min-width: 0;
  }
  h2 {
    margin: 0;
    font-size: 20px;
    font-weight: 400;
    line-height: 40px;
  }
  .header-text p {
    margin: 0 0 4px;
    font-size: 14px;
    line-height: 20px;
  }
  h3 {
    margin: 0 0 4px;
    font-size: 14px;
    font-weight: 500;
    letter-spacing: 0.02em;
    color: var(--secondary-text-color, #727272);
  }
  .switch-row {
    display: flex;
    align-items: center;
    gap: 16px;
    padding: 12px 16px 12px 72px;
    cursor: pointer;
  }
  .switch-text {
    flex: 1;
    min-width: 0;
    display: flex;
    flex-direction: column;
    gap: 4px;
    font-size: 14px;
    line-height: 20px;
  }
  .switch-label {
    font-size: 15px;
    font-weight: 500;
  }
  md-switch {
    flex: none;
    --md-switch-selected-handle-color: var(--text-primary-color, #fff);
    --md-switch-selected-hover-handle-color: var(--text-primary-color, #fff);
    --md-switch-selected-focus-handle-color: var(--text-primary-color, #fff);
    --md-switch-selected-pressed-handle-color: var(--text-primary-color, #fff);
    --md-switch-selected-track-color: var(--primary-color, #03a9f4);
    --md-switch-selected-hover-track-color: var(--primary-color, #03a9f4);
    --md-switch-selected-focus-track-color: var(--primary-color, #03a9f4);
    --md-switch-selected-pressed-track-color: var(--primary-color, #03a9f4);
  }
  .subsection {
    padding: 8px 16px 12px 72px;
  }
  .hint {
    margin: 0;
    font-size: 14px;
    line-height: 20px;
  }
  .list {
    list-style: none;
    margin: 0;
    padding: 0;
    border: 1px solid var(--divider-color, rgba(0, 0, 0, 0.12));
    border-radius: var(--ha-border-radius-md, 12px);
  }
  .row {
    display: flex;
    align-items: center;
    gap: 12px;
    padding: 12px 8px 12px 16px;
  }
  .row + .row {
    border-top: 1px solid var(--divider-color, rgba(0, 0, 0, 0.12));
  }
  .row-main {
    flex: 1;
    min-width: 0;
    display: flex;
    flex-direction: column;
    gap: 4px;
  }
  .row-title {
    display: flex;
    align-items: center;
    flex-wrap: wrap;
    gap: 4px 10px;
  }
  .name {
    font-size: 15px;
    font-weight: 500;
    overflow-wrap: anywhere;
  }
  .meta {
    display: flex;
    align-items: center;
    flex-wrap: wrap;
    gap: 2px 10px;
    font-size: 13px;
    overflow-wrap: anywhere;
  }
  .row-actions {
    display: flex;
    align-items: center;
    flex-wrap: wrap;
    justify-content: flex-end;
    gap: 4px 8px;
    flex: none;
  }
  @media (max-width: 600px) {
    .card-header {
      gap: 12px;
      padding: 12px 12px 4px;
      flex-wrap: wrap;
    }
    .header-icon {
      width: 32px;
      height: 32px;
    }
    .header-text {
      flex-basis: calc(100% - 44px);
    }
    .header-icon .icon {
      width: 20px;
      height: 20px;
    }
    h2 {
      font-size: 18px;
      line-height: 32px;
    }
    .switch-row,
    .subsection {
      padding-left: 12px;
      padding-right: 12px;
    }
    .row {
      flex-wrap: wrap;
      padding-left: 12px;
    }
    .row-main {
      flex-basis: calc(100% - 48px);
    }
    .row-actions {
      margin-left: auto;
    }
  }
`;

/** Everything a Build servers card needs, in cascade order (a card's own rules go after). */
export const cardStyles = [sharedStyles, emptyStateStyles, fingerprintStyles, versionPolicyStyles, cardLayout];
