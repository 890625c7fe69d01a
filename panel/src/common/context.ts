/** What every element of the panel needs: the API, the state store and the strings. */
import type { BuilderApi } from "../data/api.ts";
import type { Store } from "../data/state.ts";
import type { LocalizeFunc } from "./localize.ts";

export interface PanelContext {
  api: BuilderApi;
  store: Store;
  localize: LocalizeFunc;
  /** BCP-47 tag used for dates and numbers. */
  locale: string;
}

/** Fired (bubbling, composed) by any element to show a short message. */
export interface ToastDetail {
  message: string;
  action?: { label: string; run: () => void };
}

export function fireToast(target: EventTarget, detail: ToastDetail): void {
  target.dispatchEvent(new CustomEvent<ToastDetail>("esphome-toast", { detail, bubbles: true, composed: true }));
}

declare global {
  interface HTMLElementEventMap {
    "esphome-toast": CustomEvent<ToastDetail>;
  }
}
