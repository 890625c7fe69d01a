/**
 * One native-API probe: connect (with the YAML's encryption key when it has
 * one), read the device info the handshake fetches, disconnect.
 *
 * Client: `esphome-client` (maintained, typed, no dependencies), checked
 * against a real ESPHome 2026.10 device (test/real-device/): it does not wait
 * for an answer to the old password login, which 2026.10 no longer gives.
 */
import {
  AuthenticationError,
  EncryptionKeyInvalidError,
  EncryptionKeyMissingError,
  EncryptionRequiredError,
  IncompatibleApiVersionError,
  NoiseHandshakeError,
  openEspHomeClient,
  PeerClosedDuringNoiseError,
} from "esphome-client";
import { errorMessage } from "../errors.ts";
import type { ProbeFn, ProbeOutcome } from "./prober.ts";

const SILENT = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/**
 * Errors that prove a device answered: it speaks the API but refused this
 * session (a key it does not accept, a key it wants, an API too old or new).
 */
function answeredError(err: unknown): string | null {
  if (err instanceof EncryptionRequiredError || err instanceof EncryptionKeyMissingError) {
    return "the device wants an API encryption key: put it in the YAML (api: encryption: key)";
  }
  if (err instanceof EncryptionKeyInvalidError || (err instanceof NoiseHandshakeError && !(err instanceof PeerClosedDuringNoiseError))) {
    return `the device refused the YAML's API encryption key (${errorMessage(err)})`;
  }
  if (err instanceof AuthenticationError) return `the device refused the session: ${errorMessage(err)}`;
  if (err instanceof IncompatibleApiVersionError) return `the device's API version is not supported: ${errorMessage(err)}`;
  return null;
}

export function nativeApiProbe(opts: { connectTimeoutMs: number }): ProbeFn {
  return async (target, signal): Promise<ProbeOutcome> => {
    let client;
    try {
      client = await openEspHomeClient({
        host: target.host,
        port: target.port,
        psk: target.apiKey,
        clientId: "esphome-builder",
        logger: SILENT,
        reconnect: false,
        keepAlive: false,
        maxConstructionRetries: 0,
        connectTimeoutMs: opts.connectTimeoutMs,
        gracefulDisconnectTimeoutMs: 500,
        signal,
      });
    } catch (err) {
      const answered = answeredError(err);
      if (answered !== null) return { kind: "answered_error", error: answered };
      return { kind: "unreachable", error: errorMessage(err), misses: 0 };
    }
    try {
      const info = client.deviceInfo();
      if (info?.esphomeVersion === undefined || info.esphomeVersion === "") {
        return { kind: "answered_error", error: "the device sent no ESPHome version in its device info" };
      }
      return {
        kind: "answer",
        answer: {
          name: info.name ?? "",
          esphomeVersion: info.esphomeVersion,
          compilationTime: info.compilationTime ?? null,
          projectName: info.projectName === undefined || info.projectName === "" ? null : info.projectName,
          projectVersion: info.projectVersion === undefined || info.projectVersion === "" ? null : info.projectVersion,
        },
      };
    } finally {
      await client.disconnectAsync().catch(() => undefined);
    }
  };
}
