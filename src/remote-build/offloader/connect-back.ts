/**
 * The offloader's answer to a build server's `connect_back` (newer upstream;
 * WIRE-FACTS "Newer upstream" C).
 *
 * A build server we are paired with dialled our own peer-link listener to say
 * "I am here now": the address it came from and the port in its msg3. We
 * believe nothing of that until we have checked it ourselves: the caller's
 * key must be the pin of an approved pairing (the handshake proved the caller
 * holds it), and a `preview` we open FORWARD to that address must meet the
 * same key. Only then does the pairing move there and its session loop try at
 * once. Whoever cannot prove a pinned key cannot move a pairing anywhere.
 */
import { isIP } from "node:net";
import { errorMessage } from "../../errors.ts";
import { getLogger } from "../../logger.ts";
import { initiate } from "../transport/handshake.ts";
import type { Identity } from "../transport/identity.ts";
import { connectBackPayloadSchema, type ConnectBackReject } from "../transport/messages.ts";

const log = getLogger("connect-back");

export type ConnectBackAnswer = { intent_response: "ok" } | { intent_response: "rejected"; reason: ConnectBackReject };

export interface ConnectBackAnswerDeps {
  /** The pairing with the build server of `pin`: undefined when unknown. */
  pairing: (pin: string) => { approved: boolean; connected: boolean } | undefined;
  /** Opens a `preview` to host:port and checks its key is `pin`; throws when it is not, or cannot. */
  probe: (host: string, port: number, pin: string) => Promise<void>;
  /** Moves the pairing of `pin` to host:port and wakes its session loop. */
  rebind: (pin: string, host: string, port: number) => void;
}

/** The caller's address as a plain IP (an IPv4-mapped IPv6 address unwrapped); null when it is not one. */
export function endpointIp(remoteAddress: string): string | null {
  const ip = remoteAddress.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, "");
  return isIP(ip) === 0 ? null : ip;
}

export class ConnectBackAnswerer {
  readonly #deps: ConnectBackAnswerDeps;
  /** Pins with a probe running now. */
  readonly #probing = new Set<string>();

  constructor(deps: ConnectBackAnswerDeps) {
    this.#deps = deps;
  }

  /** Whether a probe for `pin` is running (for tests and diagnostics). */
  probing(pin: string): boolean {
    return this.#probing.has(pin);
  }

  /**
   * Answers one `connect_back` from the holder of `pin`, calling from
   * `remoteAddress`, with msg3 `payload`.
   */
  async answer(pin: string, remoteAddress: string, payload: Record<string, unknown>): Promise<ConnectBackAnswer> {
    const reject = (reason: ConnectBackReject, why: string): ConnectBackAnswer => {
      log.info(`connect_back from ${remoteAddress} (pin ${pin.slice(0, 12)}…) refused: ${reason} (${why})`);
      return { intent_response: "rejected", reason };
    };
    const pairing = this.#deps.pairing(pin);
    if (pairing?.approved !== true) return reject("no_approved_peer", pairing === undefined ? "no pairing has this key" : "the pairing is not approved yet");
    const parsed = connectBackPayloadSchema.safeParse(payload);
    if (!parsed.success) return reject("bad_endpoint", `peer_link_port ${JSON.stringify(payload["peer_link_port"] ?? null).slice(0, 40)} is not a port 1-65535`);
    const ip = endpointIp(remoteAddress);
    if (ip === null) return reject("bad_endpoint", `the caller's address ${JSON.stringify(remoteAddress.slice(0, 64))} is not an IP`);
    if (pairing.connected) return reject("already_connected", "a session with it is open");
    if (this.#probing.has(pin)) return reject("rebind_in_progress", "a probe for it is running");
    const port = parsed.data.peer_link_port;
    this.#probing.add(pin);
    try {
      await this.#deps.probe(ip, port, pin);
    } catch (err) {
      return reject("probe_failed", `${ip}:${port}: ${errorMessage(err)}`);
    } finally {
      this.#probing.delete(pin);
    }
    // The pairing may have gone (or connected) while we probed.
    const now = this.#deps.pairing(pin);
    if (now?.approved !== true) return reject("no_approved_peer", "the pairing went away during the probe");
    if (now.connected) return reject("already_connected", "a session opened during the probe");
    this.#deps.rebind(pin, ip, port);
    log.info(`connect_back: the build server of pin ${pin.slice(0, 12)}… is at ${ip}:${port} now; pairing moved there`);
    return { intent_response: "ok" };
  }
}

/**
 * The forward probe: a `preview` to host:port whose key must hash to `pin`
 * (checked before anything is sent in msg3) and whose answer is `ok`.
 */
export async function probeBuildServer(opts: { identity: Identity | undefined; host: string; port: number; pin: string; stepTimeoutMs: number }): Promise<void> {
  if (opts.identity === undefined) throw new Error("this builder has no identity yet");
  const { channel, response } = await initiate({
    host: opts.host,
    port: opts.port,
    staticPrivateKey: opts.identity.privateKey,
    intent: "preview",
    payload: null,
    expectedPin: opts.pin,
    stepTimeoutMs: opts.stepTimeoutMs,
  });
  channel.close("done");
  if (response.intent_response !== "ok") throw new Error(`the preview was answered ${response.intent_response}${response.reason === undefined ? "" : ` (${response.reason})`}`);
}
