/**
 * Styles shared by the panel's elements. Colours, radii and fonts come from
 * Home Assistant's theme variables (defaults for both modes live in
 * panel/index.html; every use here still names a fallback).
 */
import { css } from "lit";

export const sharedStyles = css`
  :host {
    font-family: var(--ha-font-family-body, var(--paper-font-body1_-_font-family, Roboto, "Noto Sans", system-ui, sans-serif));
    color: var(--primary-text-color, #212121);
    -webkit-font-smoothing: antialiased;
  }
  .icon {
    width: 24px;
    height: 24px;
    flex: none;
    fill: currentColor;
  }
  .small-icon {
    width: 18px;
    height: 18px;
  }
  .card {
    display: block;
    background: var(--ha-card-background, var(--card-background-color, #fff));
    border-radius: var(--ha-card-border-radius, 12px);
    border: var(--ha-card-border-width, 1px) solid var(--ha-card-border-color, var(--divider-color, rgba(0, 0, 0, 0.12)));
    box-shadow: var(--ha-card-box-shadow, none);
    color: var(--primary-text-color, #212121);
    overflow: hidden;
  }
  .secondary {
    color: var(--secondary-text-color, #727272);
  }
  .badge {
    display: inline-flex;
    align-items: center;
    gap: 4px;
    box-sizing: border-box;
    height: 24px;
    padding: 0 8px;
    border-radius: 12px;
    font-size: 12px;
    font-weight: 500;
    line-height: 1;
    white-space: nowrap;
    background: color-mix(in srgb, var(--secondary-text-color, #727272) 14%, transparent);
    color: var(--primary-text-color, #212121);
  }
  .badge .icon {
    width: 16px;
    height: 16px;
  }
  .badge.success {
    background: color-mix(in srgb, var(--success-color, #43a047) 18%, transparent);
    color: var(--esphome-success-text, var(--success-color, #43a047));
  }
  .badge.error {
    background: color-mix(in srgb, var(--error-color, #db4437) 16%, transparent);
    color: var(--esphome-error-text, var(--error-color, #db4437));
  }
  .badge.warning {
    background: color-mix(in srgb, var(--warning-color, #ffa600) 20%, transparent);
    color: var(--esphome-warning-text, var(--warning-color, #ffa600));
  }
  .badge.info {
    background: color-mix(in srgb, var(--primary-color, #03a9f4) 16%, transparent);
    color: var(--esphome-primary-text, var(--primary-color, #03a9f4));
  }
  .alert {
    display: flex;
    gap: 12px;
    align-items: flex-start;
    padding: 12px 16px;
    border-radius: var(--ha-border-radius-md, 8px);
    line-height: 20px;
    overflow-wrap: anywhere;
  }
  .alert .icon {
    margin-top: -2px;
  }
  .alert.error {
    background: color-mix(in srgb, var(--error-color, #db4437) 12%, transparent);
  }
  .alert.error > .icon {
    color: var(--error-color, #db4437);
  }
  .alert.warning {
    background: color-mix(in srgb, var(--warning-color, #ffa600) 14%, transparent);
  }
  .alert.warning > .icon {
    color: var(--warning-color, #ffa600);
  }
  .alert.success {
    background: color-mix(in srgb, var(--success-color, #43a047) 14%, transparent);
  }
  .alert.success > .icon {
    color: var(--success-color, #43a047);
  }
  .alert.info {
    background: color-mix(in srgb, var(--primary-color, #03a9f4) 10%, transparent);
  }
  .alert.info > .icon {
    color: var(--primary-color, #03a9f4);
  }
  .visually-hidden {
    position: absolute;
    width: 1px;
    height: 1px;
    margin: -1px;
    padding: 0;
    overflow: hidden;
    clip: rect(0 0 0 0);
    white-space: nowrap;
    border: 0;
  }
  md-filled-button,
  md-outlined-button,
  md-text-button {
    --md-filled-button-container-shape: var(--ha-button-border-radius, 18px);
    --md-outlined-button-container-shape: var(--ha-button-border-radius, 18px);
    --md-text-button-container-shape: var(--ha-button-border-radius, 18px);
    --md-filled-button-container-height: 36px;
    --md-outlined-button-container-height: 36px;
    --md-text-button-container-height: 36px;
  }
  md-filled-button .icon,
  md-outlined-button .icon,
  md-text-button .icon {
    width: 18px;
    height: 18px;
  }
`;

/** Icon buttons and the empty state of a list, as every view shows them. */
export const emptyStateStyles = css`
      md-icon-button {
        --md-icon-button-icon-color: var(--secondary-text-color, #727272);
        --md-icon-button-hover-icon-color: var(--primary-text-color, #212121);
      }
      .empty {
        display: flex;
        flex-direction: column;
        align-items: center;
        gap: 8px;
        padding: 48px 24px;
        text-align: center;
        color: var(--secondary-text-color, #727272);
      }
      .empty .icon {
        width: 48px;
        height: 48px;
        opacity: 0.6;
      }
`;

/** A dialog headline: the title ellipsised, actions at the end. */
export const dialogHeaderStyles = css`
      .headline {
        display: flex;
        align-items: center;
        justify-content: space-between;
        gap: 8px;
        padding-right: 12px !important;
      }
      .title {
        overflow: hidden;
        text-overflow: ellipsis;
        white-space: nowrap;
        min-width: 0;
      }
`;

/**
 * The frame every form dialog shares: HA's dialog shape and type, a width of
 * `--esphome-dialog-width` (560px unless a dialog sets it) that shrinks on
 * phones, and a content column. `md-dialog.wide` is a dialog with a log in
 * it (install, device logs): wide and tall, the whole screen on phones.
 */
export const dialogStyles = css`
      md-dialog {
        width: min(var(--esphome-dialog-width, 560px), calc(100% - 32px));
        max-width: min(var(--esphome-dialog-width, 560px), calc(100% - 32px));
        max-height: calc(100% - 32px);
        --md-dialog-container-shape: var(--ha-dialog-border-radius, 24px);
        --md-dialog-headline-size: 22px;
        --md-dialog-headline-line-height: 28px;
        --md-dialog-supporting-text-color: var(--primary-text-color, #212121);
      }
      md-dialog.wide {
        width: min(960px, calc(100% - 32px));
        max-width: min(960px, calc(100% - 32px));
        height: min(820px, calc(100% - 32px));
      }
      .content {
        display: flex;
        flex-direction: column;
        gap: 16px;
      }
      @media (max-width: 600px) {
        md-dialog {
          width: calc(100% - 16px);
          max-width: calc(100% - 16px);
        }
        /* A dialog with a log in it takes the whole phone screen. */
        md-dialog.wide {
          width: 100%;
          max-width: 100%;
          height: 100%;
          max-height: 100%;
          --md-dialog-container-shape: 0;
        }
      }
`;

/** A host field and a narrow port field side by side, stacked on phones. */
export const endpointFieldStyles = css`
      .fields {
        display: flex;
        gap: 12px;
        align-items: flex-start;
      }
      md-outlined-text-field {
        --md-outlined-text-field-container-shape: var(--ha-border-radius-md, 12px);
      }
      .fields .host {
        flex: 1 1 auto;
        min-width: 0;
      }
      .fields .port {
        flex: 0 0 120px;
      }
      @media (max-width: 600px) {
        .fields {
          flex-direction: column;
          align-items: stretch;
        }
        .fields .port {
          flex-basis: auto;
        }
      }
`;

/** A progress bar in the theme's primary colour, `--esphome-progress-height` tall (4px unless set). */
export const progressStyles = css`
      md-linear-progress {
        width: 100%;
        --md-linear-progress-active-indicator-color: var(--primary-color, #03a9f4);
        --md-linear-progress-track-color: color-mix(in srgb, var(--primary-color, #03a9f4) 18%, transparent);
        --md-linear-progress-track-shape: 4px;
        --md-linear-progress-track-height: var(--esphome-progress-height, 4px);
        --md-linear-progress-active-indicator-height: var(--esphome-progress-height, 4px);
      }
`;
