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
      `split + progress + trim + fan-out to 20 subscribers: ${int(r.pipeline_lines_per_s)} lines/s = ${fmt((r.pipeline_vs_bare ?? 0) * 100, 1)} % of the bare split`,
      `the whole queue path (also the job's log file and state): ${int(r.ingest_lines_per_s)} lines/s = ${fmt((r.ingest_vs_bare ?? 0) * 100, 1)} %`,
      `retained lines: ${int(r.retained_lines)}`,
      `peak RSS: ${fmt(r.peak_rss_mib, 0)} MiB (baseline ${fmt(r.rss_baseline_mib, 0)} MiB holding the ${fmt(r.input_mib, 0)} MiB input; growth ${fmt(r.peak_rss_growth_mib, 0)} MiB)`,
    ],
    pass: (r) => (r.pipeline_lines_per_s ?? 0) >= 500_000 && (r.pipeline_vs_bare ?? 0) >= 0.25 && (r.ingest_lines_per_s ?? 0) >= 500_000,
  },
  {
    file: "peer-link.ts",
    title: "Peer link: handshake, cancel latency, artifact download (~1, 16, 64 MiB)",
    goal: "cancel under 20 ms; download at least 50% of a plain loopback WebSocket",
    report: (r) => [
      `handshake (connect + Noise XX + preview answer): median ${fmt(r.handshake_median_ms)} ms, p90 ${fmt(r.handshake_p90_ms)} ms`,
      `cancel round trip (cancelJob → build server SIGTERMs its process → cancelled frame back): median ${fmt(r.cancel_round_trip_median_ms)} ms, max ${fmt(r.cancel_round_trip_max_ms)} ms`,
      ...[1, 16, 64].map(
        (m) =>
          `${m} MiB (${int(r[`download_${m}_mib_bytes`])} bytes): peer link ${fmt(r[`download_${m}_mib_ms`], 0)} ms (chunk + encrypt + verify; the build server packed at completion) vs plain WebSocket ${fmt(r[`plain_${m}_mib_ms`], 1)} ms = ${fmt((r[`download_${m}_mib_vs_plain`] ?? 0) * 100, 1)} %; the wire format's own floor (no I/O) ${fmt(r[`floor_sender_${m}_mib_ms`], 1)} ms on the build server's side, ${fmt(r[`floor_receiver_${m}_mib_ms`], 1)} ms on ours, so at best ${fmt((r[`floor_${m}_mib_vs_plain`] ?? 0) * 100, 0)} % of plain with a core each; the peer link reaches ${fmt((r[`download_${m}_mib_vs_floor`] ?? 0) * 100, 0)} % of that floor`,
      ),
    ],
    pass: (r) => (r.cancel_round_trip_max_ms ?? Infinity) < 20 && [1, 16, 64].every((m) => (r[`download_${m}_mib_vs_plain`] ?? 0) >= 0.5),
  },
  {
    file: "tar-reader.ts",
    title: "Tar reader: ours vs node-tar's Parser under the same policy (artifacts of ~16 and 64 MiB, a bundle, 26 hostile archives)",
    goal: "ours within 1.5x of the parser on artifacts; ours gives the expected verdict on every hostile archive",
    report: (r) => [
      ...[16, 64].map(
        (m) =>
          `artifacts ~${m} MiB (${int(r[`artifacts_${m}_mib_bytes`])} bytes packed): ours ${fmt(r[`artifacts_${m}_mib_ours_ms`], 1)} ms, node-tar ${fmt(r[`artifacts_${m}_mib_node_tar_ms`], 1)} ms = ${fmt(r[`artifacts_${m}_mib_node_tar_vs_ours`])}x ours`,
      ),
      `bundle (${int(r.bundle_bytes)} bytes, 124 files): ours ${fmt(r.bundle_ours_ms, 1)} ms, node-tar ${fmt(r.bundle_node_tar_ms, 1)} ms = ${fmt(r.bundle_node_tar_vs_ours)}x ours`,
      `hostile and awkward archives: ours as expected on ${int(r.cases_ours_as_expected)} of ${int(r.cases)}; node-tar on ${int(r.cases_node_tar_as_expected)}, accepting ${int(r.cases_node_tar_accepted_wrongly)} it should have refused or read differently (the table is printed on stderr)`,
    ],
    pass: (r) =>
      (r.cases_ours_as_expected ?? 0) === (r.cases ?? -1) &&
      [16, 64].every((m) => (r[`artifacts_${m}_mib_ours_ms`] ?? Infinity) <= 1.5 * (r[`artifacts_${m}_mib_node_tar_ms`] ?? 0)),
  },
  {
    file: "remote-install.ts",
    title: "Transparent install: remote overhead (1.5 MiB firmware) and bulk speedup (12 devices)",
    goal: "remote overhead under 150 ms; pooled bulk install at most 0.45 of local-only",
    report: (r) => [
      `local install: ${fmt(r.local_install_ms, 0)} ms; remote install: ${fmt(r.remote_install_ms, 0)} ms; overhead: ${fmt(r.remote_overhead_ms, 0)} ms`,
      `12 installs, 1 s compiles: local only ${fmt((r.local_only_ms ?? 0) / 1000, 1)} s, with two build servers ${fmt((r.pooled_ms ?? 0) / 1000, 1)} s = ${fmt(r.pooled_vs_local)} (here ${int(r.on_local)}, B ${int(r.on_b)}, C ${int(r.on_c)})`,
    ],
    pass: (r) => (r.remote_overhead_ms ?? Infinity) < 150 && (r.pooled_vs_local ?? 1) <= 0.45,
  },
  {
    file: "real-esphome.ts",
    title: "Real ESPHome 2026.10 (host platform): builder overhead, remote vs local install, the build server's warm tree",
    goal: "clean-compile overhead at most 3 %, no-op rebuild overhead at most 150 ms, a remote install at most 1.3x a local one, the second remote build reuses the warm tree",
    report: (r) => [
      `clean compile: esphome directly ${fmt((r.clean_direct_ms ?? 0) / 1000, 1)} s, through the builder ${fmt((r.clean_builder_ms ?? 0) / 1000, 1)} s: overhead ${fmt(r.clean_overhead_pct, 1)} %`,
      `no-op rebuild: esphome directly ${int(r.noop_direct_ms)} ms, through the builder ${int(r.noop_builder_ms)} ms: overhead ${int(r.noop_overhead_ms)} ms`,
      `install over the air from an empty build folder: local ${fmt((r.local_install_ms ?? 0) / 1000, 1)} s, remote ${fmt((r.remote_install_ms ?? 0) / 1000, 1)} s = ${fmt(r.remote_vs_local)}x`,
      `a second remote install of the same device: ${fmt((r.remote_warm_ms ?? 0) / 1000, 1)} s vs ${fmt((r.remote_first_ms ?? 0) / 1000, 1)} s for the first = ${fmt(r.warm_vs_first)} (warm tree ${r.warm_tree_reused === 1 ? "reused: ninja had no work" : "NOT reused"})`,
    ],
    pass: (r) =>
      (r.clean_overhead_pct ?? Infinity) <= 3 && (r.noop_overhead_ms ?? Infinity) <= 150 && (r.remote_vs_local ?? Infinity) <= 1.3 && r.warm_tree_reused === 1,
  },
  {
    file: "affinity.ts",
    title: "Warm-cache affinity (real ESPHome, host platform): 6 devices compiled twice over this builder and two build servers",
    goal: "the second round takes at most 0.5 of the first",
    report: (r) => [
      `round 1, empty build folders: ${fmt((r.round1_ms ?? 0) / 1000, 1)} s over ${int(r.round1_places)} machines`,
      `round 2, the same ${int(r.devices)} devices: ${fmt((r.round2_ms ?? 0) / 1000, 1)} s = ${fmt(r.round2_vs_round1)} of round 1; ${int(r.round2_same_place)} of ${int(r.devices)} went back where they were built, ${int(r.round2_no_work)} found nothing to rebuild`,
    ],
    pass: (r) => (r.round2_vs_round1 ?? Infinity) <= 0.5,
  },
  {
    file: "provisioning.ts",
    title: "Managed ESPHome: first-start provisioning of the pinned ESPHome",
    goal: "the API up within 2 s while it runs; provisioning at most 1.15x the same venv + pip install + check run by hand",
    report: (r) => [
      `the builder listens (API and panel up) ${int(r.listen_ms)} ms after start, while pip runs in the background`,
      `pinned ESPHome ready: through the builder ${fmt((r.provision_builder_ms ?? 0) / 1000, 1)} s, by hand ${fmt((r.provision_direct_ms ?? 0) / 1000, 1)} s = ${fmt(r.provision_vs_direct)}x (pip's cache warm for both, best of ${int(r.rounds)} each, Python 3.${int(r.python_minor)})`,
    ],
    pass: (r) => (r.listen_ms ?? Infinity) <= 2000 && (r.provision_vs_direct ?? Infinity) <= 1.15,
  },
  {
    file: "device-state.ts",
    title: "Device state: 300 device YAMLs and 300 simulated devices",
    goal: "steady probing at most 2 % of one core at the default 60 s interval and at most 3x the bare client's CPU per probe; every device learnt within 30 s of the start; the panel's first contentful paint under 500 ms",
    report: (r) => [
      `learning all ${int(r.devices)} devices (first probes spaced 50 ms apart, 8 at a time): ${fmt((r.learn_ms ?? 0) / 1000, 1)} s, ${int(r.learn_cpu_ms)} ms of CPU; ${int(r.outdated)} found outdated`,
      `CPU per probe: builder ${fmt(r.builder_cpu_ms_per_probe)} ms (probe, state, update check, last-seen file) vs the bare native-API client ${fmt(r.floor_cpu_ms_per_probe)} ms = ${fmt(r.builder_vs_floor)}x`,
      `steady share of one core at the default interval: ${fmt(r.steady_core_pct_at_default_interval)} %`,
      `panel: first contentful paint ${int(r.panel_fcp_ms)} ms with ${int(r.devices)} devices (${int(r.panel_empty_fcp_ms)} ms with none, same run); the first device row visible after ${int(r.panel_first_row_ms)} ms and all ${int(r.devices)} rows in the list after ${int(r.panel_list_ms)} ms from navigation (drawn in steps of 20 per frame)`,
    ],
    pass: (r) =>
      (r.steady_core_pct_at_default_interval ?? Infinity) <= 2 &&
      (r.builder_vs_floor ?? Infinity) <= 3 &&
      (r.learn_ms ?? Infinity) <= 30_000 &&
      (r.panel_fcp_ms ?? Infinity) < 500,
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
  const lastLine = out.split("\n").find((l) => l.startsWith("{")) ?? "{}";
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
