/**
 * `npm run bench`: runs each benchmark in its own process (so memory figures
 * are its own), prints the results, and writes them into docs/PERFORMANCE.md
 * between the RESULTS markers together with the machine they ran on.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

interface Bench {
  file: string;
  title: string;
  goal: string;
  report: (r: Record<string, number>) => string[];
  pass: (r: Record<string, number>) => boolean;
}

const fmt = (n: number | undefined, digits = 2): string => (n === undefined ? "?" : n.toFixed(digits));
const int = (n: number | undefined): string => (n === undefined ? "?" : Math.round(n).toLocaleString("en-US"));

const BENCHES: Bench[] = [
  {
    file: "queue-overhead.ts",
    title: "(a) Queue overhead: 200 compiles with an instant stand-in",
    goal: "overhead under 5 ms per job",
    report: (r) => [
      `direct spawn: ${fmt(r.direct_ms_per_job)} ms/job`,
      `through the queue: ${fmt(r.queue_ms_per_job)} ms/job`,
      `overhead: ${fmt(r.overhead_ms_per_job)} ms/job`,
    ],
    pass: (r) => (r.overhead_ms_per_job ?? Infinity) < 5,
  },
  {
    file: "ingest.ts",
    title: "(b, c) Output ingest: 1,000,000 lines, 20 subscribers",
    goal: "at least 500k lines/s and 25% of a bare split; memory bounded",
    report: (r) => [
      `bare split (decode + cut into lines): ${int(r.bare_split_lines_per_s)} lines/s`,
      `ingest (split, history, progress, log file, 20 subscribers): ${int(r.ingest_lines_per_s)} lines/s`,
      `ingest / bare split: ${fmt((r.ingest_vs_bare ?? 0) * 100, 1)} %`,
      `retained lines: ${int(r.retained_lines)}`,
      `peak RSS: ${fmt(r.peak_rss_mib, 0)} MiB (baseline ${fmt(r.rss_baseline_mib, 0)} MiB holding the ${fmt(r.input_mib, 0)} MiB input; growth ${fmt(r.peak_rss_growth_mib, 0)} MiB)`,
    ],
    pass: (r) => (r.ingest_lines_per_s ?? 0) >= 500_000 && (r.ingest_vs_bare ?? 0) >= 0.25,
  },
];

const only = process.argv.slice(2);
const sections: string[] = [];
let allPass = true;
for (const bench of BENCHES) {
  if (only.length > 0 && !only.some((o) => bench.file.includes(o))) continue;
  process.stdout.write(`running ${bench.file} ...\n`);
  const out = execFileSync(process.execPath, ["--expose-gc", path.join(root, "bench", bench.file)], {
    cwd: root,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lastLine = out.trim().split("\n").at(-1) ?? "{}";
  const result = JSON.parse(lastLine) as Record<string, number>;
  const ok = bench.pass(result);
  allPass &&= ok;
  const lines = [`### ${bench.title}`, "", `Goal: ${bench.goal}. Result: **${ok ? "met" : "not met"}**.`, "", ...bench.report(result).map((l) => `- ${l}`), ""];
  process.stdout.write(lines.join("\n") + "\n");
  sections.push(lines.join("\n"));
}

const cpu = os.cpus()[0]?.model ?? "unknown CPU";
const machine = `${os.cpus().length} × ${cpu}, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, ${os.type()} ${os.release()}, Node ${process.version}`;
const block = [`<!-- RESULTS:START -->`, `Measured ${new Date().toISOString().slice(0, 10)} on ${machine}.`, "", ...sections, `<!-- RESULTS:END -->`].join("\n");
if (only.length === 0) {
  const docPath = path.join(root, "docs", "PERFORMANCE.md");
  const doc = readFileSync(docPath, "utf8");
  const next = doc.replace(/<!-- RESULTS:START -->[\s\S]*<!-- RESULTS:END -->/, block);
  writeFileSync(docPath, next);
  process.stdout.write(`results written to ${path.relative(root, docPath)}\n`);
}
process.exitCode = allPass ? 0 : 1;
