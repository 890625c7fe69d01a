/**
 * The pair dialog's steps as a pure reducer: address -> preview (who answers
 * there, its fingerprint) -> the user confirms the fingerprint matches what
 * the build server shows -> request -> waiting for approval -> paired. The
 * dialog runs the commands and feeds their outcome in; "paired" and
 * "rejected" come from the store (the builder's events), see `pairStep`.
 */
import { formatPairingKey, parsePairingKey } from "../../../src/remote-build/transport/pairing-key-text.ts";
import type { RemoteBuildState } from "./remote-build.ts";
import type { Pairing, PairPreview } from "./types.ts";

export type PairFlowStep = "address" | "previewing" | "confirm" | "requesting" | "waiting";
export type PairStep = PairFlowStep | "paired" | "rejected";

/** What went wrong, as far as the dialog has to tell apart. */
export type PairErrorKind =
  /** The address: nothing answers there, or not a builder. */
  | "unreachable"
  /** The key there is not the one previewed (request_pair refuses with invalid_args). */
  | "mismatch"
  /** The build server refused: no pairing window open, or rejected at once. */
  | "refused"
  /** A headless build server did not take the pairing key (wrong, used, or expired: it does not say which). */
  | "key";

export interface PairFlow {
  step: PairFlowStep;
  /** As typed. */
  hostname: string;
  port: string;
  label: string;
  /** A headless build server's printed key, as shown in the field (grouped `XXXX-XXXX-…`). */
  pairingKey: string;
  preview: PairPreview | null;
  /** The pin an mDNS announcement promised, to compare with the preview. */
  announcedPin: string | null;
  error: { kind: PairErrorKind; message: string } | null;
}

export type PairAction =
  | { type: "edit"; hostname?: string; port?: string; label?: string; pairingKey?: string }
  | { type: "preview_started" }
  | { type: "preview_ok"; preview: PairPreview }
  | { type: "preview_failed"; message: string }
  | { type: "request_started" }
  | { type: "request_ok"; pairing: Pairing }
  | { type: "request_failed"; code: string; message: string }
  | { type: "back" };

export function startPairFlow(opts: { hostname?: string; port?: number | string; announcedPin?: string | null } = {}): PairFlow {
  return {
    step: "address",
    hostname: opts.hostname ?? "",
    port: opts.port === undefined ? "" : String(opts.port),
    label: "",
    pairingKey: "",
    preview: null,
    announcedPin: opts.announcedPin ?? null,
    error: null,
  };
}

export function pairFlowReducer(flow: PairFlow, action: PairAction): PairFlow {
  switch (action.type) {
    case "edit":
      return {
        ...flow,
        ...(action.hostname === undefined ? {} : { hostname: action.hostname }),
        ...(action.port === undefined ? {} : { port: action.port }),
        ...(action.label === undefined ? {} : { label: action.label }),
        ...(action.pairingKey === undefined ? {} : { pairingKey: formatPairingKey(action.pairingKey) }),
        // Typing a new key clears the complaint about the old one.
        ...(action.pairingKey !== undefined && flow.error?.kind === "key" ? { error: null } : {}),
      };
    case "preview_started":
      return { ...flow, step: "previewing", preview: null, error: null };
    case "preview_ok":
      return { ...flow, step: "confirm", preview: action.preview, label: flow.label !== "" ? flow.label : action.preview.label, error: null };
    case "preview_failed":
      return { ...flow, step: "address", preview: null, error: { kind: "unreachable", message: action.message } };
    case "request_started":
      return flow.preview === null || !pairingKeyReady(flow) ? flow : { ...flow, step: "requesting", error: null };
    case "request_ok":
      return { ...flow, step: "waiting", error: null };
    case "request_failed": {
      // The builder pins the handshake to the previewed key: a different key is invalid_args, nothing was sent.
      // A headless build server that did not take the key: pairing_key_refused.
      const kind: PairErrorKind = action.code === "invalid_args" ? "mismatch" : action.code === "pairing_key_refused" ? "key" : "refused";
      return { ...flow, step: "confirm", error: { kind, message: action.message } };
    }
    case "back":
      return { ...flow, step: "address", preview: null, error: null };
  }
}

/** Whether the build server asks for a pairing key (a headless one, `--remote-build-only`). */
export function needsPairingKey(flow: PairFlow): boolean {
  return flow.preview?.requires_pairing_key === true;
}

/** The key to send (grouped form), undefined when none is needed; null while the one needed is incomplete. */
export function flowPairingKey(flow: PairFlow): string | undefined | null {
  return needsPairingKey(flow) ? parsePairingKey(flow.pairingKey) : undefined;
}

/** The request can go: no key needed, or a complete one typed. */
export function pairingKeyReady(flow: PairFlow): boolean {
  return flowPairingKey(flow) !== null;
}

/** The pairing the flow made, once the builder reported it. */
export function flowPairing(flow: PairFlow, remote: RemoteBuildState | null): Pairing | undefined {
  const pin = flow.preview?.pin_sha256;
  if (pin === undefined || remote === null) return undefined;
  return remote.offloader.pairings.find((p) => p.pin_sha256 === pin);
}

/** The step to show: a request is paired once the build server approved it, rejected when it went away. */
export function pairStep(flow: PairFlow, remote: RemoteBuildState | null): PairStep {
  if (flow.step !== "waiting") return flow.step;
  const pairing = flowPairing(flow, remote);
  if (pairing?.status === "approved") return "paired";
  const pin = flow.preview?.pin_sha256;
  if (pairing === undefined && pin !== undefined && remote !== null && Object.hasOwn(remote.offloader.removed, pin)) return "rejected";
  return "waiting";
}

/** The mDNS announcement named a different key than the builder presented. */
export function announcedPinDiffers(flow: PairFlow): boolean {
  return flow.preview !== null && flow.announcedPin !== null && flow.announcedPin !== flow.preview.pin_sha256;
}
