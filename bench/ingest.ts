/**
 * Benchmark (b)+(c): output ingest against a bare line split of the same
 * bytes, and the peak memory while doing it. Two ingest figures:
 *  - the pipeline the goal names: split + progress + trim (the bounded
 *    history) + event fan-out to 20 subscribers, with the production classes;
 *  - the whole queue path, which also writes the job's log file and keeps the
 *    job's state (what a running builder does per line).
 * Prints one JSON object.
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { EventBus } from "../src/events.ts";
import { LineSplitter, OutputHistory, ProgressParser } from "../src/firmware/output.ts";
import { FirmwareQueue } from "../src/firmware/queue.ts";
import type { JobRunner, PhaseContext, PhaseResult } from "../src/firmware/runner.ts";
import { resolvePaths } from "../src/paths.ts";

const LINES = Number(process.env.BENCH_INGEST_LINES ?? 1_000_000);
const SUBSCRIBERS = Number(process.env.BENCH_SUBSCRIBERS ?? 20);
const CHUNK = 64 * 1024;

function makeOutput(lines: number): Buffer {
  const chunks: Buffer[] = [];
  let part = "";
  for (let i = 0; i < lines; i++) {
    const pct = Math.floor((i * 100) / lines);
    if (i % 10 === 0) part += `[${String(pct).padStart(3)}%] Compiling .pioenvs/kitchen/src/esphome/components/sensor/sensor_${i}.cpp.o\n`;
    else if (i % 10 === 5) part += `Uploading: [${"=".repeat(pct % 60).padEnd(60)}] ${pct}% \r`;
    else part += `Compiling .pioenvs/kitchen/lib/lib${i % 97}/src/file_${i}.cpp.o\n`;
    if (part.length > 1 << 20) {
      chunks.push(Buffer.from(part, "utf8"));
      part = "";
    }
  }
  chunks.push(Buffer.from(part, "utf8"));
  return Buffer.concat(chunks);
}

/**
 * The limit to compare with: a bare line split of the same bytes, that is,
 * decode each chunk and cut it into line strings (every ingest must at least
 * do this), with nothing else done per line.
 */
export let sink = 0;
function bareSplit(bytes: Buffer): number {
  let count = 0;
  for (let off = 0; off < bytes.length; off += CHUNK) {
    const text = bytes.toString("utf8", off, Math.min(bytes.length, off + CHUNK));
    const lines: string[] = [];
    let start = 0;
    let nl = text.indexOf("\n");
    let cr = text.indexOf("\r");
    while (nl !== -1 || cr !== -1) {
      const end = nl === -1 ? cr : cr === -1 ? nl : Math.min(nl, cr);
      lines.push(text.slice(start, end + 1));
      start = end + 1;
      if (nl === end) nl = text.indexOf("\n", start);
      if (cr === end) cr = text.indexOf("\r", start);
    }
    count += lines.length;
    sink += lines[lines.length - 1]?.length ?? 0;
  }
  return count;
}

class ReplayRunner implements JobRunner {
  readonly bytes: Buffer;
  seconds = 0;
  constructor(bytes: Buffer) {
    this.bytes = bytes;
  }
  async runPhase(ctx: PhaseContext): Promise<PhaseResult> {
    const splitter = new LineSplitter();
    const t0 = performance.now();
    for (let off = 0; off < this.bytes.length; off += CHUNK) {
      for (const line of splitter.push(this.bytes.subarray(off, off + CHUNK))) ctx.onLine(line);
      // Yield like a real pipe read would, so timers and writes interleave.
      if ((off / CHUNK) % 16 === 0) await new Promise((r) => setImmediate(r));
    }
    for (const line of splitter.end()) ctx.onLine(line);
    this.seconds = (performance.now() - t0) / 1000;
    return { exitCode: 0, error: null };
  }
}

const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
const bytes = makeOutput(LINES);

let bareSeconds = Infinity;
let bareCount = 0;
for (let i = 0; i < 5; i++) {
  const t = performance.now();
  bareCount = bareSplit(bytes);
  bareSeconds = Math.min(bareSeconds, (performance.now() - t) / 1000);
}

/** The named pipeline: split, history with trimming, progress, fan-out; best of three. */
function pipeline(bytes: Buffer): { seconds: number; deliveries: number } {
  let best = Infinity;
  let deliveries = 0;
  for (let round = 0; round < 3; round++) {
    const bus = new EventBus();
    let delivered = 0;
    for (let i = 0; i < SUBSCRIBERS; i++) bus.on("job_output", () => { delivered++; });
    const splitter = new LineSplitter();
    const history = new OutputHistory();
    const progress = new ProgressParser();
    const ingest = (line: string): void => {
      history.append(line);
      bus.emit("job_output", { job_id: "bench", line });
      const p = progress.feed(line);
      if (p !== null) bus.emit("job_progress", { job_id: "bench", progress: p });
    };
    const t = performance.now();
    for (let off = 0; off < bytes.length; off += CHUNK) {
      for (const line of splitter.push(bytes.subarray(off, off + CHUNK))) ingest(line);
    }
    for (const line of splitter.end()) ingest(line);
    best = Math.min(best, (performance.now() - t) / 1000);
    deliveries = delivered;
  }
  return { seconds: best, deliveries };
}

const named = pipeline(bytes);

const dir = await mkdtemp(path.join(os.tmpdir(), "bench-ingest-"));
const bus = new EventBus();
let delivered = 0;
for (let i = 0; i < SUBSCRIBERS; i++) bus.on("job_output", () => { delivered++; });
const runner = new ReplayRunner(bytes);
const queue = new FirmwareQueue({ bus, paths: resolvePaths({ configDir: dir }), runner });
await queue.start();
gc();
const rssBefore = process.memoryUsage().rss;
let peakRss = rssBefore;
const sampler = setInterval(() => { peakRss = Math.max(peakRss, process.memoryUsage().rss); }, 2);
let ingestSeconds = Infinity;
let retained = 0;
for (let i = 0; i < 3; i++) {
  const job = await queue.enqueue({ configuration: `kitchen${i}.yaml`, job_type: "compile" });
  await new Promise<void>((resolve) => {
    const off = bus.on("job_completed", () => { off(); resolve(); });
  });
  ingestSeconds = Math.min(ingestSeconds, runner.seconds);
  retained = (await queue.output(job.job_id)).length;
}
await queue.stop();
clearInterval(sampler);
await rm(dir, { recursive: true, force: true });

const bareRate = bareCount / bareSeconds;
const ingestRate = bareCount / ingestSeconds;
process.stdout.write(
  JSON.stringify({
    lines: bareCount,
    input_mib: bytes.length / 2 ** 20,
    subscribers: SUBSCRIBERS,
    deliveries: delivered,
    bare_split_lines_per_s: Math.round(bareRate),
    pipeline_lines_per_s: Math.round(bareCount / named.seconds),
    pipeline_vs_bare: bareCount / named.seconds / bareRate,
    pipeline_deliveries: named.deliveries,
    ingest_lines_per_s: Math.round(ingestRate),
    ingest_vs_bare: ingestRate / bareRate,
    retained_lines: retained,
    rss_baseline_mib: rssBefore / 2 ** 20,
    peak_rss_mib: peakRss / 2 ** 20,
    peak_rss_growth_mib: (peakRss - rssBefore) / 2 ** 20,
  }) + "\n",
);
