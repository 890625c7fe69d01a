/**
 * The offloader's pairings: the row offloader.json keeps for each paired
 * build server, the live state around it, and reading/writing the file
 * (`remote_builds_enabled`, `version_match_policy`, the approved pairings).
 */
import { z } from "zod";
import { VERSION_POLICIES, type VersionPolicy } from "../../domain/policy.ts";
import type { RemoteBuildProblem } from "../../domain/remote-build.ts";
import { isVersionPolicy } from "../../esphome/version-policy.ts";
import { getLogger } from "../../logger.ts";
import { JsonStore } from "../../store.ts";
import { looseFileSchema, rowName, StateFileReport, type LooseFile } from "../state-files.ts";
import { pinSchema } from "../transport/fingerprint.ts";
import type { PeerSession } from "./peer-session.ts";

const log = getLogger("offloader");

export const storedPairingSchema = z.object({
  pin_sha256: pinSchema,
  label: z.string().max(128),
  receiver_hostname: z.string().min(1).max(255),
  receiver_port: z.number().int().min(1).max(65535),
  paired_at: z.string(),
  enabled: z.boolean().default(true),
  esphome_version: z.string().max(64).default(""),
  friendly_name: z.string().max(128).default(""),
  /** What its last intent response said: it installs the ESPHome version a build asks for. */
  auto_provision_supported: z.boolean().default(false),
  /** Its version policy, when it is a builder of ours that says. */
  version_policy: z.enum(VERSION_POLICIES).nullable().default(null),
});
export type StoredPairing = z.infer<typeof storedPairingSchema>;

/** A pairing as the offloader holds it: its row, and its live session or loop. */
export interface PairingState {
  stored: StoredPairing;
  status: "pending" | "approved";
  session: PeerSession | null;
  lastError: string;
  /** Stops the session loop (or the pending long poll). */
  stop: () => void;
  /** Ends a backoff sleep early. */
  wake: () => void;
  running: boolean;
}

export function newPairingState(stored: StoredPairing, status: "pending" | "approved"): PairingState {
  const state: PairingState = { stored, status, session: null, lastError: "", running: true, stop: () => undefined, wake: () => undefined };
  state.stop = () => {
    state.running = false;
    state.session?.channel.terminate("client_stopped");
    state.wake();
  };
  return state;
}

/** What offloader.json holds. */
export interface OffloaderFile {
  remoteBuildsEnabled: boolean;
  versionMatchPolicy: VersionPolicy;
  /** Approved pairings, in the order they were made. */
  pairings: StoredPairing[];
}

/** offloader.json: read once at start-up, then written (debounced) after each change. */
export class PairingsStore {
  readonly #file: string;
  readonly #store: JsonStore<LooseFile>;

  constructor(file: string) {
    this.#file = file;
    this.#store = new JsonStore({ file, schema: looseFileSchema, mode: 0o600, debounceMs: 50 });
  }

  /**
   * Reads offloader.json. Not a JSON object: moved aside, nothing paired.
   * Otherwise each pairing is read on its own (a bad one is skipped, the
   * others kept) and a master switch that is not true or false counts as
   * off (builds stay here). Whatever could not be read goes to `problems`;
   * `rewrite` says the file must be written again with what was kept (the
   * original was copied aside first).
   */
  async load(problems: RemoteBuildProblem[]): Promise<{ file: OffloaderFile; rewrite: boolean }> {
    const report = new StateFileReport(this.#file);
    const loaded = await this.#store.load();
    const file: OffloaderFile = { remoteBuildsEnabled: true, versionMatchPolicy: "any", pairings: [] };
    if (loaded.kind === "corrupt") {
      report.movedAside(
        "offloader_file",
        loaded,
        "No build server is paired now, so builds run on this builder: pair the build servers again (Build servers → Add a build server), or put back a repaired copy and restart.",
      );
    } else if (loaded.kind === "ok") {
      file.remoteBuildsEnabled = report.flag(loaded.value, "remote_builds_enabled", {
        kind: "offloader_file",
        ifMissing: true,
        fallback: false,
        consequence: "sending builds to build servers was turned off, so builds run here. Turn it on again under Build servers if you want that.",
      });
      file.pairings = report.rows(loaded.value, "pairings", {
        schema: storedPairingSchema,
        key: (pairing) => pairing.pin_sha256,
        kind: "offloader_pairing",
        name: (raw, index) => rowName("Paired build server", raw, index, ["label", "receiver_hostname"]),
        remedy: "builds no longer go there until you pair it again (Build servers → Add a build server).",
        whenUnreadable: "no build server is paired now, so builds run here; pair them again.",
      });
      const policy = loaded.value["version_match_policy"];
      if (isVersionPolicy(policy)) file.versionMatchPolicy = policy;
      else if (policy !== undefined) log.warning(`offloader.json: version_match_policy ${JSON.stringify(policy)} is not one of ${VERSION_POLICIES.join(", ")}; using any`);
    }
    const rewrite = report.needsRewrite;
    await report.finish();
    problems.push(...report.problems);
    return { file, rewrite };
  }

  #data(file: OffloaderFile): LooseFile {
    return { remote_builds_enabled: file.remoteBuildsEnabled, version_match_policy: file.versionMatchPolicy, pairings: file.pairings };
  }

  /** Writes soon (debounced); `read` is called when the write happens. */
  save(read: () => OffloaderFile): void {
    this.#store.scheduleSave(() => this.#data(read()));
  }

  saveNow(read: () => OffloaderFile): Promise<void> {
    return this.#store.saveNow(() => this.#data(read()));
  }

  flush(): Promise<void> {
    return this.#store.flush();
  }
}
