/**
 * The managed ESPHome's task state, a plain object moved only by these named
 * transitions: idle → provisioning{percent, phase} → ready | failed{code, message}.
 * Progress never falls within one provisioning; a new provisioning starts at 0.
 */
import type { EsphomeProvisionPhase, EsphomeTaskState } from "../domain/esphome.ts";

export type { EsphomeProvisionPhase, EsphomeTaskState } from "../domain/esphome.ts";

export function idle(): EsphomeTaskState {
  return { status: "idle" };
}

export function beginProvisioning(version: string): EsphomeTaskState {
  return { status: "provisioning", version, percent: 0, phase: "python" };
}

/** A progress report; ignored unless that version is being provisioned, and never lowers the figure. */
export function advance(state: EsphomeTaskState, version: string, percent: number, phase: EsphomeProvisionPhase): EsphomeTaskState {
  if (state.status !== "provisioning" || state.version !== version) return state;
  const next = Math.max(state.percent, Math.min(100, Math.floor(percent)));
  if (next === state.percent && phase === state.phase) return state;
  return { status: "provisioning", version, percent: next, phase };
}

export function markReady(version: string): EsphomeTaskState {
  return { status: "ready", version };
}

export function markFailed(version: string | null, code: string, message: string): EsphomeTaskState {
  return { status: "failed", version, code, message };
}
