/** MDI icons as inline SVG (paths from @mdi/js; only the ones used are bundled). */
import { html, type TemplateResult } from "lit";
import { ifDefined } from "lit/directives/if-defined.js";

export {
  mdiAccountClock,
  mdiAlert,
  mdiAlertCircle,
  mdiArrowDown,
  mdiArrowLeft,
  mdiBroom,
  mdiCancel,
  mdiCheck,
  mdiCheckCircle,
  mdiChevronRight,
  mdiChip,
  mdiClockOutline,
  mdiClose,
  mdiCloudUpload,
  mdiDelete,
  mdiDeleteSweep,
  mdiDownload,
  mdiFileDocumentOutline,
  mdiFingerprint,
  mdiInformationOutline,
  mdiKeyChange,
  mdiLan,
  mdiLanConnect,
  mdiLaptop,
  mdiMagnify,
  mdiPencil,
  mdiPlus,
  mdiProgressClock,
  mdiRadar,
  mdiRefresh,
  mdiServer,
  mdiServerNetwork,
  mdiSleep,
  mdiPackageUp,
  mdiCircle,
  mdiCircleOutline,
  mdiShieldAlert,
  mdiStop,
  mdiStopCircle,
  mdiTextBoxOutline,
  mdiTimerOutline,
  mdiTimerSandComplete,
  mdiUpload,
  mdiUsb,
  mdiWifi,
} from "@mdi/js";

/** An MDI icon; decorative unless `label` is given. */
export function icon(path: string, label?: string): TemplateResult {
  return html`<svg
    class="icon"
    viewBox="0 0 24 24"
    width="24"
    height="24"
    fill="currentColor"
    role=${label === undefined ? "presentation" : "img"}
    aria-hidden=${label === undefined ? "true" : "false"}
    aria-label=${ifDefined(label)}
    focusable="false"
  ><path d=${path}></path></svg>`;
}
