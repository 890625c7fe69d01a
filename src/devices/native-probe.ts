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

/**
 * Why `key` cannot be an `api: encryption: key`, by ESPHome's own rule
 * (components/noise: strict base64 of 32 bytes, not all zeros), or null. The
 * client would silently drop such a key and then report that the device
 * "wants" one, so the probe says what is wrong with the YAML's instead.
 */
export function apiKeyProblem(key: string): string | null {
  if (key.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(key)) return "it is not base64";
  const raw = Buffer.from(key, "base64");
  if (raw.length !== 32) return `it is ${raw.length} bytes, not 32`;
  if (raw.every((b) => b === 0)) return "the all-zeros key is reserved";
  return null;
}

export function nativeApiProbe(opts: { connectTimeoutMs: number }): ProbeFn {
  return async (target, signal): Promise<ProbeOutcome> => {
    const keyProblem = target.apiKey === null ? null : apiKeyProblem(target.apiKey);
    let client;
    try {
      client = await openEspHomeClient({
        host: target.host,
        port: target.port,
        psk: keyProblem === null ? target.apiKey : null,
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
      if (keyProblem !== null && (err instanceof EncryptionRequiredError || err instanceof EncryptionKeyMissingError)) {
        return {
          kind: "answered_error",
          error: `the device wants an API encryption key and the YAML's is not one (${keyProblem}): api: encryption: key must be 32 bytes in base64, e.g. from \`openssl rand -base64 32\``,
        };
      }
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
