/**
 * A build server's packed artifacts, made when a peer's compile completes
 * rather than when the download is asked for: `artifacts_start` needs the
 * whole tarball's SHA-256, so packing is the one cost before the first chunk,
 * and the offloader asks right after `completed`.
 *
 * One entry per device of a peer (the newest completed compile; a new job for
 * the device drops it), forgotten after `ttlMs`, and at most `maxBytes` of
 * tarballs held together (oldest dropped first). A pack that failed is
 * forgotten, so the download packs again and reports why.
 */
import type { PackedArtifacts } from "../archives/artifacts.ts";

export interface ArtifactCacheOptions {
  maxBytes: number;
  ttlMs: number;
  now?: () => number;
}

interface Entry {
  device: string;
  packed: Promise<PackedArtifacts>;
  bytes: number;
  at: number;
}

export class ArtifactCache {
  readonly #opts: ArtifactCacheOptions;
  readonly #now: () => number;
  /** By the local job id, oldest first. */
  readonly #entries = new Map<string, Entry>();

  constructor(opts: ArtifactCacheOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
  }

  /** Packs a completed job's artifacts now; an older entry of the same device goes. */
  start(jobId: string, device: string, pack: () => Promise<PackedArtifacts>): void {
    this.forgetDevice(device);
    const entry: Entry = { device, packed: pack(), bytes: 0, at: this.#now() };
    this.#entries.set(jobId, entry);
    entry.packed.then(
      (packed) => {
        if (this.#entries.get(jobId) !== entry) return;
        entry.bytes = packed.tarball.length;
        this.#trim();
      },
      () => {
        if (this.#entries.get(jobId) === entry) this.#entries.delete(jobId);
      },
    );
  }

  /** The job's pack (finished or under way), or undefined when there is none (or it failed). */
  get(jobId: string): Promise<PackedArtifacts> | undefined {
    const entry = this.#entries.get(jobId);
    if (entry === undefined) return undefined;
    if (this.#now() - entry.at > this.#opts.ttlMs) {
      this.#entries.delete(jobId);
      return undefined;
    }
    return entry.packed;
  }

  /** A new job for the device: its build folder is about to change. */
  forgetDevice(device: string): void {
    for (const [id, entry] of this.#entries) if (entry.device === device) this.#entries.delete(id);
  }

  clear(): void {
    this.#entries.clear();
  }

  /** Bytes of finished packs held now. */
  get bytes(): number {
    let total = 0;
    for (const entry of this.#entries.values()) total += entry.bytes;
    return total;
  }

  #trim(): void {
    const now = this.#now();
    for (const [id, entry] of this.#entries) if (now - entry.at > this.#opts.ttlMs) this.#entries.delete(id);
    for (const id of this.#entries.keys()) {
      if (this.bytes <= this.#opts.maxBytes) break;
      this.#entries.delete(id);
    }
  }
}
