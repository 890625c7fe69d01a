/**
 * The floor of an artifact download: the wire format's own work for a tarball
 * of `size` bytes that is already packed and hashed (the build server packs
 * when the compile completes), with no I/O and nothing but the cheapest
 * primitives, so what any implementation of the format must spend at least.
 * The build server (sender), per 32 KiB chunk: base64, the JSON frame around
 * it, ChaCha20-Poly1305. The offloader (receiver), per frame:
 * ChaCha20-Poly1305, the base64 text taken from where the frame has it (no
 * JSON parser, no checks), decoded into one freshly allocated buffer of the
 * whole size, SHA-256 over it.
 *
 * Measured two ways:
 * - `formatFloor`: each side alone in this process, one after the other, best
 *   of five: what the hardware gives a side with a core to itself.
 * - `concurrentFormatFloor`: both sides in two processes of their own at the
 *   same time (started by one "go"), as they run in a real download: what the
 *   hardware gives when the two share the machine (on a 2-vCPU VM with other
 *   work on it they compete for the cores, the memory bus and the caches).
 *
 * Run as a script (`node bench/format-floor.ts sender|receiver SIZE`) it is
 * one side of the concurrent measure: it prepares its input, prints "ready",
 * and on each "go" line on stdin does its work once and prints the ms it took.
 */
import { spawn, type ChildProcessByStdio } from "node:child_process";
import type { Readable, Writable } from "node:stream";
import { createCipheriv, createDecipheriv, createHash, createSecretKey, randomBytes, type KeyObject } from "node:crypto";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { CHUNK_SIZE, encodeChunkFrame } from "../src/remote-build/transport/chunks.ts";

interface Frame {
  ct: Buffer;
  tag: Buffer;
  /** Where the base64 text starts in the decrypted frame. */
  head: number;
}

const HEAD = encodeChunkFrame("artifacts_chunk", "job", 0, Buffer.alloc(0), false).indexOf('"data_b64":"') + '"data_b64":"'.length;

/** The sender's work once: frame and encrypt every chunk of `tarball`. */
function send(tarball: Buffer, key: KeyObject, nonce: Buffer): Frame[] {
  const frames: Frame[] = [];
  for (let off = 0, i = 0; off < tarball.length; off += CHUNK_SIZE, i++) {
    const frame = encodeChunkFrame("artifacts_chunk", "job", i, tarball.subarray(off, off + CHUNK_SIZE), off + CHUNK_SIZE >= tarball.length);
    const enc = createCipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
    const ct = enc.update(frame);
    enc.final();
    frames.push({ ct, tag: enc.getAuthTag(), head: HEAD + String(i).length - 1 });
  }
  return frames;
}

/** The receiver's work once: decrypt every frame, decode its text into one buffer, hash it. */
function receive(frames: Frame[], size: number, key: KeyObject, nonce: Buffer): void {
  const target = Buffer.allocUnsafe(size);
  const hash = createHash("sha256");
  let at = 0;
  for (const { ct, tag, head } of frames) {
    const dec = createDecipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
    dec.setAuthTag(tag);
    const plain = dec.update(ct);
    dec.final();
    const n = target.write(plain.toString("latin1", head, plain.indexOf(0x22, head)), at, "base64");
    hash.update(target.subarray(at, at + n));
    at += n;
  }
  hash.digest();
  if (at !== size) throw new Error(`floor decoded ${at} of ${size} bytes`);
}

function inputs(size: number): { tarball: Buffer; key: KeyObject; nonce: Buffer } {
  return { tarball: randomBytes(size), key: createSecretKey(randomBytes(32)), nonce: Buffer.alloc(12) };
}

/** Each side alone, in this process, best of five; with a core each a transfer cannot beat the slower one. */
export function formatFloor(size: number): { sender: number; receiver: number } {
  const { tarball, key, nonce } = inputs(size);
  let sender = Infinity;
  let frames: Frame[] = [];
  for (let round = 0; round < 5; round++) {
    const t = performance.now();
    frames = send(tarball, key, nonce);
    sender = Math.min(sender, performance.now() - t);
  }
  let receiver = Infinity;
  for (let round = 0; round < 5; round++) {
    const t = performance.now();
    receive(frames, size, key, nonce);
    receiver = Math.min(receiver, performance.now() - t);
  }
  return { sender, receiver };
}

/** One side as a process of its own; resolves once it is ready. */
async function side(role: "sender" | "receiver", size: number): Promise<{ child: ChildProcessByStdio<Writable, Readable, null>; next: () => Promise<number> }> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), role, String(size)], { stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async (): Promise<number> => {
    const line = await lines.next();
    if (line.done === true) throw new Error(`the floor's ${role} process ended early`);
    return Number(line.value);
  };
  const ready = await lines.next();
  if (ready.value !== "ready") throw new Error(`the floor's ${role} process said ${String(ready.value)}`);
  return { child, next };
}

/**
 * Both sides at once, each in its own process, `rounds` times: per round the
 * floor is the slower side's time (a download is done when both are). Best and
 * median over the rounds, and each side's time in the best round.
 */
export async function concurrentFormatFloor(size: number, rounds: number): Promise<{ best: number; median: number; sender: number; receiver: number }> {
  const [sender, receiver] = await Promise.all([side("sender", size), side("receiver", size)]);
  try {
    const samples: { both: number; sender: number; receiver: number }[] = [];
    for (let i = 0; i < rounds; i++) {
      sender.child.stdin.write("go\n");
      receiver.child.stdin.write("go\n");
      const [s, r] = await Promise.all([sender.next(), receiver.next()]);
      samples.push({ both: Math.max(s, r), sender: s, receiver: r });
    }
    const sorted = [...samples].sort((x, y) => x.both - y.both);
    const best = sorted[0]!;
    return { best: best.both, median: sorted[Math.floor(sorted.length / 2)]!.both, sender: best.sender, receiver: best.receiver };
  } finally {
    sender.child.kill("SIGTERM");
    receiver.child.kill("SIGTERM");
  }
}

/** A side of the concurrent floor: prepares (untimed), then works once per "go". */
async function runSide(role: string, size: number): Promise<void> {
  const { tarball, key, nonce } = inputs(size);
  // The receiver's input: the frames as the sender makes them (prepared before any round).
  const frames = send(tarball, key, nonce);
  process.stdout.write("ready\n");
  for await (const line of createInterface({ input: process.stdin })) {
    if (line !== "go") continue;
    const t = performance.now();
    if (role === "sender") send(tarball, key, nonce);
    else receive(frames, size, key, nonce);
    process.stdout.write(`${performance.now() - t}\n`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [role, size] = process.argv.slice(2);
  if ((role !== "sender" && role !== "receiver") || size === undefined) throw new Error("usage: format-floor.ts sender|receiver SIZE");
  await runSide(role, Number(size));
}
