/** The devices view's layout: a grid that folds to two rows under 900 px and three on a phone. */
import { css } from "lit";

export const devicesViewStyles = css`
      :host {
        display: block;
      }
      .toolbar {
        display: flex;
        flex-wrap: wrap;
        align-items: center;
        gap: 12px 16px;
        margin-bottom: 16px;
      }
      .search {
        flex: 1 1 260px;
        min-width: 0;
        max-width: 480px;
        --md-outlined-text-field-container-shape: var(--ha-border-radius-md, 12px);
        --md-outlined-text-field-top-space: 10px;
        --md-outlined-text-field-bottom-space: 10px;
      }
      .bulk {
        display: flex;
        flex-wrap: wrap;
        gap: 8px;
        margin-left: auto;
      }
      .list {
        list-style: none;
        margin: 0;
        padding: 0;
      }
      .row {
        display: grid;
        grid-template-columns: 48px minmax(150px, 2fr) minmax(72px, 0.6fr) minmax(110px, 1.1fr) minmax(150px, 1.3fr) minmax(140px, 1fr) 216px;
        grid-template-areas: "check name platform address live status actions";
        align-items: center;
        column-gap: 12px;
        padding: 8px 12px 8px 4px;
        min-height: 48px;
      }
      .row.device {
        border-top: 1px solid var(--divider-color, rgba(0, 0, 0, 0.12));
        /* Rows out of view are not laid out or painted until scrolled to. */
        content-visibility: auto;
        contain-intrinsic-size: auto 65px;
      }
      .row.header {
        min-height: 40px;
        padding-top: 4px;
        padding-bottom: 4px;
        font-size: 12px;
        font-weight: 500;
        letter-spacing: 0.02em;
        color: var(--secondary-text-color, #727272);
      }
      .row.header .count {
        grid-area: actions;
        justify-self: end;
        font-weight: 400;
        padding-right: 4px;
      }
      .check {
        grid-area: check;
        display: flex;
        justify-content: center;
      }
      .name {
        grid-area: name;
        min-width: 0;
        display: flex;
        flex-direction: column;
        gap: 2px;
      }
      .platform {
        grid-area: platform;
      }
      .address {
        grid-area: address;
        min-width: 0;
        overflow: hidden;
        text-overflow: ellipsis;
        white-space: nowrap;
      }
      .device .address {
        font-size: 14px;
      }
      button.address {
        all: unset;
        grid-area: address;
        cursor: pointer;
        min-width: 0;
        overflow: hidden;
        text-overflow: ellipsis;
        white-space: nowrap;
        border-radius: 6px;
        display: inline-flex;
        align-items: center;
        gap: 4px;
        color: var(--secondary-text-color, #727272);
        font-size: 14px;
      }
      button.address:hover {
        text-decoration: underline;
      }
      button.address:focus-visible {
        outline: 2px solid var(--primary-color, #03a9f4);
        outline-offset: 2px;
      }
      button.address .icon {
        width: 14px;
        height: 14px;
        flex: none;
      }
      .live {
        grid-area: live;
        min-width: 0;
      }
      .device-state {
        display: inline-flex;
        flex-wrap: wrap;
        align-items: center;
        gap: 4px 6px;
        min-width: 0;
      }
      .device-state .version {
        font-size: 13px;
        white-space: nowrap;
      }
      .dot {
        width: 10px;
        height: 10px;
        border-radius: 50%;
        flex: none;
        background: var(--disabled-text-color, #bdbdbd);
      }
      .dot[data-status="online"] {
        background: var(--success-color, #43a047);
        box-shadow: 0 0 0 3px color-mix(in srgb, var(--success-color, #43a047) 25%, transparent);
      }
      .dot[data-status="offline"] {
        background: transparent;
        border: 2px solid var(--error-color, #db4437);
        width: 6px;
        height: 6px;
      }
      .badge.sleep {
        font-size: 11px;
      }
      .filters {
        display: flex;
        flex-wrap: wrap;
        gap: 8px;
        margin: -4px 0 12px;
      }
      .filter-chip {
        all: unset;
        cursor: pointer;
        display: inline-flex;
        align-items: center;
        gap: 6px;
        padding: 4px 12px;
        border-radius: 16px;
        font-size: 13px;
        border: 1px solid var(--divider-color, rgba(0, 0, 0, 0.12));
        color: var(--primary-text-color, #212121);
      }
      .filter-chip .n {
        color: var(--secondary-text-color, #727272);
        font-size: 12px;
      }
      .filter-chip[aria-checked="true"] {
        background: color-mix(in srgb, var(--primary-color, #03a9f4) 16%, transparent);
        border-color: var(--primary-color, #03a9f4);
      }
      .filter-chip:focus-visible {
        outline: 2px solid var(--primary-color, #03a9f4);
        outline-offset: 2px;
      }
      .status {
        grid-area: status;
        min-width: 0;
      }
      .actions {
        grid-area: actions;
        display: flex;
        align-items: center;
        justify-content: flex-end;
        gap: 0;
      }
      .device-name {
        font-size: 15px;
        font-weight: 500;
        overflow: hidden;
        text-overflow: ellipsis;
        white-space: nowrap;
      }
      .file {
        display: inline-flex;
        align-items: center;
        gap: 4px;
        font-size: 12px;
        min-width: 0;
        overflow: hidden;
        text-overflow: ellipsis;
        white-space: nowrap;
      }
      .file .icon {
        width: 14px;
        height: 14px;
      }
      .yaml-error {
        display: inline-flex;
        align-items: flex-start;
        gap: 4px;
        font-size: 12px;
        color: var(--esphome-error-text, var(--error-color, #db4437));
        overflow-wrap: anywhere;
      }
      .yaml-error .icon {
        width: 14px;
        height: 14px;
        margin-top: 1px;
      }
      .chip {
        display: inline-block;
        padding: 2px 8px;
        border-radius: 6px;
        font-size: 11px;
        font-weight: 500;
        letter-spacing: 0.04em;
        border: 1px solid var(--divider-color, rgba(0, 0, 0, 0.12));
        color: var(--secondary-text-color, #727272);
        white-space: nowrap;
      }
      .never {
        font-size: 13px;
      }
      .status-button {
        all: unset;
        cursor: pointer;
        border-radius: 12px;
        display: inline-flex;
      }
      .status-button:focus-visible {
        outline: 2px solid var(--primary-color, #03a9f4);
        outline-offset: 2px;
      }
      .empty {
        overflow-wrap: anywhere;
      }
      .empty.small {
        padding: 24px;
        border-top: 1px solid var(--divider-color, rgba(0, 0, 0, 0.12));
      }
      md-checkbox {
        flex: none;
        --md-checkbox-selected-container-color: var(--primary-color, #03a9f4);
        --md-checkbox-outline-color: var(--secondary-text-color, #727272);
      }
      .meta {
        display: contents;
      }
      @media (max-width: 900px) {
        .row {
          grid-template-columns: 48px minmax(0, 1fr) auto auto;
          grid-template-areas:
            "check name status actions"
            "check meta status actions";
        }
        .row.header {
          grid-template-areas: "check name status actions";
        }
        .row.header .platform,
        .row.header .address,
        .row.header .live,
        .row.header .status {
          display: none;
        }
        .row.header .count {
          grid-area: status / status / actions / actions;
        }
        .meta {
          grid-area: meta;
          display: flex;
          flex-wrap: wrap;
          align-items: center;
          gap: 4px 8px;
          min-width: 0;
        }
      }
      @media (max-width: 600px) {
        .toolbar {
          gap: 8px;
        }
        .search {
          flex-basis: 100%;
          max-width: none;
        }
        .bulk {
          margin-left: 0;
          width: 100%;
        }
        .bulk > * {
          flex: 1 1 0;
        }
        .row {
          grid-template-columns: 40px minmax(0, 1fr) auto;
          grid-template-areas:
            "check name actions"
            "check meta meta"
            "check status status";
          row-gap: 4px;
          padding-right: 4px;
        }
        .row.header {
          grid-template-areas: "check name actions";
        }
        .row.header .count {
          grid-area: actions;
        }
        .row.device .actions {
          align-self: start;
        }
        .status {
          justify-self: start;
        }
      }
    `;
