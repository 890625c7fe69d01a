/** The install dialog's layout: the method and port lists, progress, the result, firmware files, the log filling the wide dialog. */
import { css } from "lit";

export const installDialogStyles = css`
      .content {
        display: flex;
        flex-direction: column;
        gap: 12px;
        min-height: 0;
      }
      .content.step-job {
        height: 100%;
        min-height: 0;
      }
      .lead {
        margin: 0;
        font-size: 16px;
        color: var(--primary-text-color, #212121);
      }
      md-list {
        padding: 0;
        background: transparent;
        --md-list-container-color: transparent;
        border: 1px solid var(--divider-color, rgba(0, 0, 0, 0.12));
        border-radius: var(--ha-border-radius-md, 12px);
        overflow: hidden;
      }
      md-list-item {
        --md-list-item-label-text-color: var(--primary-text-color, #212121);
        --md-list-item-supporting-text-color: var(--secondary-text-color, #727272);
        --md-list-item-leading-icon-color: var(--primary-color, #03a9f4);
        --md-list-item-trailing-icon-color: var(--secondary-text-color, #727272);
      }
      md-list-item + md-list-item {
        border-top: 1px solid var(--divider-color, rgba(0, 0, 0, 0.12));
      }
      .method-icon {
        color: var(--primary-color, #03a9f4);
        display: flex;
      }
      .ports-header {
        display: flex;
        align-items: center;
        justify-content: space-between;
      }
      .placeholder {
        display: flex;
        align-items: center;
        gap: 12px;
        padding: 16px 0;
        color: var(--secondary-text-color, #727272);
        --md-circular-progress-size: 32px;
      }
      .progress-row {
        display: flex;
        justify-content: space-between;
        align-items: baseline;
        gap: 12px;
        font-size: 14px;
      }
      .phase {
        font-weight: 500;
      }
      .percent {
        font-variant-numeric: tabular-nums;
        color: var(--secondary-text-color, #727272);
      }
      md-linear-progress {
        --esphome-progress-height: 6px;
      }
      .remote {
        display: flex;
        align-items: center;
        flex-wrap: wrap;
        gap: 4px 8px;
        color: var(--secondary-text-color, #727272);
        font-size: 14px;
        min-height: 36px;
      }
      .remote .icon {
        width: 20px;
        height: 20px;
      }
      .build-locally {
        margin-left: auto;
      }
      .result-title {
        font-weight: 500;
      }
      .error-text {
        white-space: pre-wrap;
        font-family: var(--ha-font-family-code, ui-monospace, monospace);
        font-size: 13px;
        margin-top: 4px;
      }
      .hint {
        margin-top: 4px;
        font-size: 13px;
      }
      .result md-text-button {
        margin: 4px 0 -6px -12px;
      }
      .binaries {
        display: flex;
        flex-direction: column;
        border: 1px solid var(--divider-color, rgba(0, 0, 0, 0.12));
        border-radius: var(--ha-border-radius-md, 12px);
      }
      .binary {
        display: flex;
        align-items: center;
        gap: 12px;
        padding: 10px 12px 10px 16px;
      }
      .binary + .binary {
        border-top: 1px solid var(--divider-color, rgba(0, 0, 0, 0.12));
      }
      .binary-text {
        flex: 1;
        min-width: 0;
        overflow-wrap: anywhere;
      }
      .binary-text .secondary {
        font-size: 12px;
      }
      esphome-log-viewer {
        /* Fills what the wide dialog has left; never smaller than a few lines. */
        flex: 1 1 0;
        min-height: 144px;
      }
      [slot="actions"] .spacer {
        flex: 1;
      }
      @media (max-width: 600px) {
        .build-locally {
          margin-left: 0;
        }
      }
    `;
