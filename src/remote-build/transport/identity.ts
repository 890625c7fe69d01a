/**
 * This dashboard's peer-link identity: a stable `dashboard_id` and the
 * X25519 static key the Noise handshake authenticates.
 *
 * - `dashboard_id` is an identifier, not a secret (random base64url, sent
 *   only inside encrypted handshake messages). It lives in a small JSON file.
 * - The private key is a 32-byte raw file, mode 0600, written atomically and
 *   created once. The public key and pin are derived on every load, never
 *   stored, so they cannot drift from the key.
 * - A key file that is unreadable or not 32 bytes is moved aside to
 *   `<file>.corrupt` (kept as evidence, never silently deleted) and replaced;
 *   every paired peer then sees a new pin and has to re-pair. That, and an
 *   unreadable id file, is logged and kept in `problems` for the panel.
 *
 * All operations of one store run one at a time, so concurrent `load()`s
 * cannot create two keys and a `rotate()` cannot interleave with a load.
 */
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import { z } from "zod";
import type { RemoteBuildProblem } from "../../domain/remote-build.ts";
import { getLogger } from "../../logger.ts";
import { atomicWrite, JsonStore, quarantine } from "../../store.ts";
import { pinSha256 } from "./fingerprint.ts";
import { generateStaticKey, publicKeyOf } from "./noise-primitives.ts";

const log = getLogger("remote-build.identity");

const DASHBOARD_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
const KEY_BYTES = 32;
const SECRET_MODE = 0o600;

/** A syntactically valid dashboard_id: 1..64 base64url characters. */
export function isValidDashboardId(value: unknown): value is string {
  return typeof value === "string" && DASHBOARD_ID_RE.test(value);
}

/** A new dashboard_id: 24 random bytes as 32 base64url characters (upstream's `token_urlsafe(24)`). */
export function newDashboardId(): string {
  return randomBytes(24).toString("base64url");
}

export interface Identity {
  readonly dashboard_id: string;
  /** Raw 32-byte X25519 private key. */
  readonly privateKey: Uint8Array;
  /** Raw 32-byte X25519 public key. */
  readonly publicKey: Uint8Array;
  /** Lowercase hex SHA-256 of `publicKey`. */
  readonly pin_sha256: string;
}

export interface IdentityStoreDeps {
  /** Raw private key file (0600). */
  keyFile: string;
  /** JSON file holding the dashboard_id (0600). */
  idFile: string;
  /** Clock for the id file's `created_at`; tests pin it. */
  now?: () => Date;
}

const idFileSchema = z.object({
  dashboard_id: z.string().regex(DASHBOARD_ID_RE),
  created_at: z.string().optional(),
});
type IdFile = z.infer<typeof idFileSchema>;

export class IdentityStore {
  readonly #keyFile: string;
  readonly #now: () => Date;
  readonly #idStore: JsonStore<IdFile>;
  #current: Identity | null = null;
  #tail: Promise<unknown> = Promise.resolve();
  /** An identity or key file that could not be read and was replaced (shown in Build servers). */
  readonly problems: RemoteBuildProblem[] = [];

  constructor(deps: IdentityStoreDeps) {
    this.#keyFile = deps.keyFile;
    this.#now = deps.now ?? (() => new Date());
    this.#idStore = new JsonStore({ file: deps.idFile, schema: idFileSchema, mode: SECRET_MODE });
  }

  /** The identity, created on first use. Later calls return the same one without touching the disk. */
  load(): Promise<Identity> {
    return this.#exclusive(async () => {
      this.#current ??= await this.#loadFromDisk();
      return copy(this.#current);
    });
  }

  /** Replaces the key (every peer must re-pair); keeps the dashboard_id. */
  rotate(): Promise<Identity> {
    return this.#exclusive(async () => {
      const dashboardId = (this.#current ?? (await this.#loadFromDisk())).dashboard_id;
      const privateKey = generateStaticKey();
      await atomicWrite(this.#keyFile, privateKey, SECRET_MODE);
      this.#current = makeIdentity(dashboardId, privateKey);
      log.info(`peer-link key rotated; new pin ${this.#current.pin_sha256}; paired peers must re-pair`);
      return copy(this.#current);
    });
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn, fn);
    this.#tail = run.catch(() => undefined);
    return run;
  }

  async #loadFromDisk(): Promise<Identity> {
    const dashboardId = await this.#loadDashboardId();
    const privateKey = await this.#loadKey();
    return makeIdentity(dashboardId, privateKey);
  }

  async #loadDashboardId(): Promise<string> {
    const loaded = await this.#idStore.load();
    if (loaded.kind === "ok") return loaded.value.dashboard_id;
    // A corrupt file was already moved aside and logged by the store.
    const record: IdFile = { dashboard_id: newDashboardId(), created_at: this.#now().toISOString() };
    await this.#idStore.saveNow(() => record);
    if (loaded.kind === "corrupt") {
      const message =
        `This builder's identity file ${this.#idStore.file} could not be read (${loaded.reason}); it was moved to ${loaded.movedTo} and a new dashboard_id was made. ` +
        "Build servers this builder was paired with no longer recognise it: pair with them again.";
      log.error(message);
      this.problems.push({ id: "identity_file", kind: "identity_file", file: this.#idStore.file, kept_at: loaded.movedTo, message });
    }
    return record.dashboard_id;
  }

  async #loadKey(): Promise<Uint8Array> {
    let data: Buffer | null = null;
    let problem: string | null = null;
    try {
      data = await fs.readFile(this.#keyFile);
      if (data.length !== KEY_BYTES) problem = `is ${data.length} bytes, expected ${KEY_BYTES}`;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOENT") problem = `is unreadable (${code ?? String(err)})`;
    }
    if (data !== null && problem === null) {
      await this.#tightenMode();
      return new Uint8Array(data);
    }
    if (problem !== null) {
      const movedTo = await quarantine(this.#keyFile);
      const message =
        `This builder's peer-link key ${this.#keyFile} ${problem}; it was moved to ${movedTo} and a new key was made, so this builder has a new fingerprint. ` +
        "Every builder paired with this one, in either direction, must pair again.";
      log.error(message);
      this.problems.push({ id: "key_file", kind: "key_file", file: this.#keyFile, kept_at: movedTo, message });
    }
    const privateKey = generateStaticKey();
    await atomicWrite(this.#keyFile, privateKey, SECRET_MODE);
    log.info(`created peer-link key ${this.#keyFile}`);
    return privateKey;
  }

  /** A key file readable by others (copied in by hand, restored from a backup) is made private again. */
  async #tightenMode(): Promise<void> {
    const stat = await fs.stat(this.#keyFile);
    if ((stat.mode & 0o077) === 0) return;
    await fs.chmod(this.#keyFile, SECRET_MODE);
    log.warning(`peer-link key file ${this.#keyFile} was mode ${(stat.mode & 0o777).toString(8)}; set to 600`);
  }
}

function makeIdentity(dashboardId: string, privateKey: Uint8Array): Identity {
  const publicKey = publicKeyOf(privateKey);
  return { dashboard_id: dashboardId, privateKey, publicKey, pin_sha256: pinSha256(publicKey) };
}

/** Callers get their own byte arrays, so nobody can alter the cached key in place. */
function copy(identity: Identity): Identity {
  return { ...identity, privateKey: Uint8Array.from(identity.privateKey), publicKey: Uint8Array.from(identity.publicKey) };
}
