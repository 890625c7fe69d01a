/**
 * Home Assistant's ESPHome integration, set up the way a user does, against a real Home
 * Assistant (ha-core.ts): a config entry through the config-flow REST API (host and port of a
 * device), the dashboard (this builder) stored the way the integration stores what Supervisor
 * discovery tells it, and its firmware update entity, which the integration registers disabled.
 *
 * What Home Assistant 2026.2.3's integration does (components/esphome/, read in the root):
 * - dashboard.py keeps the dashboard in `.storage/esphome.dashboard` (`{"info": {"addon_slug",
 *   "host", "port"}}`, storage version 1) and restores it when the integration is set up;
 * - coordinator.py reads the dashboard's `/devices` every 5 minutes (and after an install);
 * - update.py adds `update.<device>_firmware` for a device the dashboard lists by `name`:
 *   installed version from the device, latest from the dashboard's `current_version`; install
 *   is `/compile` then `/upload` with port `OTA` (after waiting for the device to be connected).
 */
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import type { HaCore, HaSocket } from "./ha-core.ts";

export interface DashboardInfo {
  addon_slug: string;
  host: string;
  port: number;
}

/** Writes `.storage/esphome.dashboard` into a configuration folder, as the integration saves it. */
export async function storeDashboardInfo(configDir: string, info: DashboardInfo): Promise<void> {
  await mkdir(path.join(configDir, ".storage"), { recursive: true });
  const store = { version: 1, minor_version: 1, key: "esphome.dashboard", data: { info } };
  await writeFile(path.join(configDir, ".storage", "esphome.dashboard"), JSON.stringify(store, null, 2));
}

interface FlowResult {
  type: string;
  flow_id?: string;
  step_id?: string;
  reason?: string;
  errors?: Record<string, string> | null;
  result?: { entry_id: string; title: string; state: string };
  title?: string;
}

async function postJson<T>(core: HaCore, token: string, apiPath: string, body: unknown): Promise<T> {
  const res = await fetch(`${core.url}${apiPath}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`POST ${apiPath}: ${res.status} ${text}`);
  return JSON.parse(text) as T;
}

/** The ESPHome config flow as the "Add integration" dialog runs it: host and port; resolves with the new entry. */
export async function addEsphomeDevice(core: HaCore, token: string, host: string, port: number): Promise<{ entry_id: string; title: string; state: string }> {
  const form = await postJson<FlowResult>(core, token, "/api/config/config_entries/flow", { handler: "esphome", show_advanced_options: false });
  if (form.type !== "form" || form.step_id !== "user" || form.flow_id === undefined) throw new Error(`unexpected first step: ${JSON.stringify(form)}`);
  const done = await postJson<FlowResult>(core, token, `/api/config/config_entries/flow/${form.flow_id}`, { host, port });
  if (done.type !== "create_entry" || done.result === undefined) throw new Error(`the ESPHome flow did not create an entry: ${JSON.stringify(done)}`);
  return done.result;
}

export interface RegistryEntry {
  entity_id: string;
  platform: string;
  config_entry_id: string | null;
  disabled_by: string | null;
  unique_id: string;
  original_name: string | null;
}

/** The entity registry's entries of one config entry. */
export async function entitiesOf(socket: HaSocket, entryId: string): Promise<RegistryEntry[]> {
  const all = await socket.call<RegistryEntry[]>({ type: "config/entity_registry/list" });
  return all.filter((e) => e.config_entry_id === entryId);
}

/**
 * Enables an entity the integration registered disabled, as the entity's settings dialog does.
 * Home Assistant reloads the config entry `reload_delay` seconds later (30) and the entity
 * appears then. Do not reload the entry sooner by hand: the delayed reload comes anyway, and an
 * install started in between is lost with the entity it ran on (its service call never ends).
 */
export async function enableEntity(socket: HaSocket, entityId: string): Promise<{ reload_delay?: number }> {
  return socket.call<{ reload_delay?: number }>({ type: "config/entity_registry/update", entity_id: entityId, disabled_by: null });
}

export interface UpdateState {
  state: string;
  attributes: { installed_version?: string | null; latest_version?: string | null; in_progress?: boolean | number; supported_features?: number; title?: string };
}

/** UpdateEntityFeature.INSTALL. */
export const UPDATE_FEATURE_INSTALL = 1;

/** Calls `update.install` through the WebSocket API, which answers when the install has ended: null on success, else Home Assistant's error. */
export async function installUpdate(socket: HaSocket, entityId: string): Promise<{ code: string; message: string; translation_key?: string } | null> {
  try {
    await socket.call({ type: "call_service", domain: "update", service: "install", target: { entity_id: entityId } });
    return null;
  } catch (err) {
    return JSON.parse((err as Error).message) as { code: string; message: string; translation_key?: string };
  }
}
