/**
 * `--remote-build-only`: this builder as a headless build server. What
 * "headless" means here:
 *
 * - the build server is on, whatever receiver.json says (a headless box exists
 *   to compile for its peers), and start fails if its listener cannot bind;
 * - the panel and API listen on a loopback address only (config enforces it),
 *   so nobody on the network gets a panel; an operator can still reach it
 *   through an SSH tunnel;
 * - with no approved peer, the first pairing needs no panel: a one-shot key
 *   (PairingKeyWindow) is printed on stdout with how to use it, valid 15
 *   minutes for exactly one pairing. Nothing paired by then: `outcome`
 *   says `expired`, and the process exits (start it again for a fresh key).
 */
import { getLogger } from "../../logger.ts";
import { BuilderError, ErrorCode } from "../../errors.ts";
import { fingerprintEmoji, fingerprintEmojiNames, pinHexPairs } from "../transport/fingerprint.ts";
import type { PairingKeyOutcome, PairingKeyWindow } from "./pairing-key.ts";

const log = getLogger("remote-build-only");

export interface RemoteBuildOnlyDeps {
  receiver: {
    readonly port: number | null;
    setEnabled(enabled: boolean): Promise<void>;
    peers(): readonly { status: "pending" | "approved"; label: string }[];
  };
  gate: PairingKeyWindow;
  /** This builder's pin (read after the identity is loaded). */
  pin: () => string;
  label: () => string;
  /** Where the banner and its JSON line go (stdout). */
  write: (text: string) => void;
  allowSources: readonly string[];
}

/** What start() decided: serving paired builders already, or waiting for the first pairing by key. */
export type RemoteBuildOnlyStart = { kind: "serving"; peers: number } | { kind: "pairing"; key: string; expiresAt: number };

export class RemoteBuildOnly {
  readonly #deps: RemoteBuildOnlyDeps;

  constructor(deps: RemoteBuildOnlyDeps) {
    this.#deps = deps;
  }

  /** How the first-pair window ended; `paired` at once when a builder was paired before. */
  get outcome(): Promise<PairingKeyOutcome> {
    return this.#deps.gate.outcome;
  }

  async start(): Promise<RemoteBuildOnlyStart> {
    const { receiver, gate } = this.#deps;
    await receiver.setEnabled(true);
    if (receiver.port === null) throw new BuilderError(ErrorCode.Unavailable, "--remote-build-only: the peer-link listener is not bound, so there is nothing to serve");
    const approved = receiver.peers().filter((p) => p.status === "approved");
    if (approved.length > 0) {
      gate.stop();
      log.info(`headless build server for ${approved.map((p) => p.label).join(", ")} on peer-link port ${receiver.port}`);
      return { kind: "serving", peers: approved.length };
    }
    const { key, expiresAt, validForMs } = gate.arm();
    const pin = this.#deps.pin();
    const minutes = Math.round(validForMs / 60_000);
    this.#deps.write(banner({ key, minutes, pin, port: receiver.port, label: this.#deps.label(), sources: this.#deps.allowSources }));
    this.#deps.write(`${JSON.stringify({ event: "pairing_key", pairing_key: key, expires_in_seconds: Math.round(validForMs / 1000), pin_sha256: pin, peer_link_port: receiver.port })}\n`);
    log.info(`no builder is paired: the pairing key printed on stdout is valid for ${minutes} minutes and one pairing`);
    void gate.outcome.then((outcome) => {
      if (outcome === "paired") log.info("the pairing key paired a builder and is used up; serving it");
      if (outcome === "expired") log.error(`no builder paired within ${minutes} minutes; start this build server again for a new pairing key`);
    });
    return { kind: "pairing", key, expiresAt };
  }

  stop(): void {
    this.#deps.gate.stop();
  }
}

function banner(o: { key: string; minutes: number; pin: string; port: number; label: string; sources: readonly string[] }): string {
  const rule = "=".repeat(72);
  const who = o.sources.length === 0 ? "Any address that has the key may pair; --allow-pairing-source limits that." : `Only ${o.sources.join(", ")} may pair with it.`;
  return [
    rule,
    ` HEADLESS BUILD SERVER "${o.label}": NOT PAIRED YET`,
    "",
    ` On the builder that should send its builds here, open Build servers ->`,
    ` Add a build server, enter this machine's address and port ${o.port}, and`,
    " check that the fingerprint shown there is this one:",
    "",
    `   ${fingerprintEmoji(o.pin).join(" ")}`,
    `   (${fingerprintEmojiNames(o.pin).join(", ")})`,
    `   ${pinHexPairs(o.pin)}`,
    "",
    " Then enter this one-time pairing key when the dialog asks for it:",
    "",
    `   ${o.key}`,
    "",
    ` It is valid for ${o.minutes} minutes and pairs one builder. ${who}`,
    " If nothing pairs in time this process exits; start it again for a new key.",
    rule,
    "",
  ].join("\n");
}
