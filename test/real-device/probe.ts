/**
 * What firmware a device runs, from its native API's device info: the ESPHome
 * version and the compilation time (ESPHome's build_time_str, which changes with
 * every build of a changed configuration).
 *
 * Client: `esphome-client` (a devDependency: only the tests use it). Maintained
 * (2.0.0, 2026-09), zero dependencies, typed, and it speaks what ESPHome 2026.10
 * devices speak: 2026.10 no longer answers the old password login, and a client
 * that waits for that answer hangs (`esphome-native-api` 1.0.9 does).
 */
import { openEspHomeClient } from "esphome-client";

export interface FirmwareInfo {
  name: string;
  esphomeVersion: string;
  /** e.g. "2026-12-02 04:55:32 +0000". */
  compilationTime: string;
}

const SILENT = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** One connection: hello, device info, disconnect. Throws when the device does not answer in time. */
export async function probeFirmware(host: string, opts: { port?: number; timeoutMs?: number } = {}): Promise<FirmwareInfo> {
  const client = await openEspHomeClient({
    host,
    port: opts.port ?? 6053,
    psk: null,
    logger: SILENT,
    reconnect: false,
    keepAlive: false,
    maxConstructionRetries: 0,
    connectTimeoutMs: opts.timeoutMs ?? 5000,
    signal: AbortSignal.timeout(opts.timeoutMs ?? 5000),
  });
  try {
    const info = client.deviceInfo();
    if (info?.name === undefined || info.esphomeVersion === undefined || info.compilationTime === undefined) {
      throw new Error(`incomplete device info from ${host}: ${JSON.stringify(info)}`);
    }
    return { name: info.name, esphomeVersion: info.esphomeVersion, compilationTime: info.compilationTime };
  } finally {
    await client.disconnectAsync().catch(() => undefined);
  }
}

/**
 * Probes until the device answers with firmware for which `until` holds (a device
 * re-executing after an OTA refuses connections for a moment). Fails at `timeoutMs`
 * with the last answer or error, or at once when `stillAlive` says the process is gone.
 */
export async function waitForFirmware(
  host: string,
  until: (info: FirmwareInfo) => boolean,
  opts: { port?: number; timeoutMs?: number; stillAlive?: () => boolean } = {},
): Promise<FirmwareInfo> {
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  let last = "no answer yet";
  for (;;) {
    if (opts.stillAlive?.() === false) throw new Error(`the device at ${host} exited (${last})`);
    try {
      const info = await probeFirmware(host, { ...(opts.port === undefined ? {} : { port: opts.port }), timeoutMs: 3000 });
      if (until(info)) return info;
      last = `runs ${JSON.stringify(info)}`;
    } catch (err) {
      last = String(err);
    }
    if (Date.now() > deadline) throw new Error(`the device at ${host} did not answer as expected in time (${last})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
