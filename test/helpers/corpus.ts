/**
 * The upstream Device Builder's captured peer-link corpus, read where it lives
 * (`../shared/interop/` beside the project root), never copied into the
 * project. Outside CI a missing corpus skips the corpus tests with the reason;
 * in CI it fails them with a message that says where it must be.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { ROOT } from "./builder.ts";
import { IN_CI } from "./tools.ts";

export const INTEROP_DIR = path.resolve(ROOT, "..", "shared", "interop");
export const CORPUS_DIR = path.join(INTEROP_DIR, "upstream-2026-05-31");

/** True when the corpus tests should be skipped (only outside CI). */
export function corpusMissing(): boolean {
  if (existsSync(path.join(CORPUS_DIR, "frames.jsonl"))) return false;
  if (IN_CI) {
    throw new Error(
      `the upstream interop corpus is missing: expected ${CORPUS_DIR} (../shared/interop/upstream-2026-05-31 beside the project root, ` +
        "with frames.jsonl, the artifacts-*.tar.gz and bundle-*.tar.gz files and mdns-txt.json). CI must check it out there.",
    );
  }
  return true;
}

export interface CorpusRecord {
  dir: "upstream->peer" | "peer->upstream";
  context: string;
  frame: unknown;
  layer: string;
  session: string;
  note?: string;
}

let records: CorpusRecord[] | undefined;

/** Every record of frames.jsonl, in order. */
export function corpusFrames(): CorpusRecord[] {
  records ??= readFileSync(path.join(CORPUS_DIR, "frames.jsonl"), "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as CorpusRecord);
  return records;
}

/** Upstream's role in a record: the `[upN = build server | offloader, …]` prefix of its context. */
export function upstreamRole(r: CorpusRecord): "build server" | "offloader" {
  return /^\[up\d = build server/.test(r.context) ? "build server" : "offloader";
}

export function corpusFile(name: string): string {
  return path.join(CORPUS_DIR, name);
}

/** The `artifacts_start` header recorded beside an artifacts tarball (`artifacts-<platform>.txt`). */
export function artifactsHeader(platform: string): { device: string; total_bytes: number; num_chunks: number; artifacts_sha256: string; firmware_offset: string; members: string[] } {
  const text = readFileSync(corpusFile(`artifacts-${platform}.txt`), "utf8");
  const header = /artifacts_start: total_bytes=(\d+) num_chunks=(\d+) artifacts_sha256=([0-9a-f]{64}) firmware_offset=(0x[0-9a-f]+)/.exec(text);
  const device = /# device (\S+)\.yaml/.exec(text);
  if (header === null || device === null) throw new Error(`artifacts-${platform}.txt has no artifacts_start line`);
  const members = text.split("\n").filter((l) => l.startsWith("-")).map((l) => l.split(/\s+/).at(-1)!);
  return { device: device[1]!, total_bytes: Number(header[1]), num_chunks: Number(header[2]), artifacts_sha256: header[3]!, firmware_offset: header[4]!, members };
}

/** The `submit_job` header recorded beside a bundle (`bundle-<device>-<platform>.txt`). */
export function bundleHeader(file: string): { job_id: string; configuration_filename: string; total_bundle_bytes: number; num_chunks: number; bundle_sha256: string } {
  const text = readFileSync(corpusFile(file.replace(/\.tar\.gz$/, ".txt")), "utf8");
  const m = /job_id (\S+)\n# submit_job: configuration_filename=(\S+) target=compile total_bundle_bytes=(\d+) num_chunks=(\d+) bundle_sha256=([0-9a-f]{64})/.exec(text);
  if (m === null) throw new Error(`${file}: no submit_job line in its listing`);
  return { job_id: m[1]!, configuration_filename: m[2]!, total_bundle_bytes: Number(m[3]), num_chunks: Number(m[4]), bundle_sha256: m[5]! };
}

/** JSON type names as upstream's schemas see them (an integer is not a float, null is its own). */
export function jsonType(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}
