/**
 * The tar reader: ours (src/remote-build/transport/tar-reader.ts) against the
 * same policy on node-tar's Parser (bench/tar-reader/node-tar-reader.ts).
 *
 * (a) Speed on the hot path: reading an artifacts tarball of ~16 and ~64 MiB
 *     (packed as the build server packs them: `createTarGz(files, "auto")`,
 *     read with the options `readArtifacts` uses) and a config bundle (120
 *     YAML files and a few larger assets, ~3 MiB, read as `readBundle` does).
 *     Median of 9 alternating runs after 2 warm-ups, a GC before each.
 * (b) Verdicts on the hostile archives of test/remote-build/tar-safety.test.ts
 *     (and two lossy-decoding cases): which ones each reader refuses, and with
 *     which code. Printed as a table on stderr; counted in the result.
 */
import { randomBytes } from "node:crypto";
import { gzipSync } from "node:zlib";
import { type ReadTarOptions, type TarEntry, isTarSafetyError } from "../src/remote-build/transport/tar-policy.ts";
import { readTarGz } from "../src/remote-build/transport/tar-reader.ts";
import { createTarGz } from "../src/remote-build/transport/tar-writer.ts";
import { MiB, file, gnuLongName, paxEntry, tgzOf } from "../test/remote-build/transport/tar-fixtures.ts";
import { readTarGzNodeTar } from "./tar-reader/node-tar-reader.ts";

type Reader = (bytes: Buffer, opts: ReadTarOptions) => Promise<TarEntry[]>;
const READERS: [string, Reader][] = [
  ["ours", readTarGz],
  ["node_tar", readTarGzNodeTar],
];

/** Firmware-like data: an incompressible image and an ELF that shrinks to about a third. */
function artifactFiles(totalMiB: number): { path: string; data: Buffer }[] {
  const bin = randomBytes(Math.round(totalMiB * MiB * 0.25));
  const elfSize = Math.round(totalMiB * MiB * 0.75);
  const elf = Buffer.alloc(elfSize);
  const noise = randomBytes(64 * 1024);
  for (let at = 0; at < elfSize; at += 4096) {
    // Alternating runs of noise and repetition, roughly what a debug ELF looks like to deflate.
    if ((at / 4096) % 3 === 0) noise.copy(elf, at, at % (noise.length - 4096), Math.min(at % (noise.length - 4096) + 4096, noise.length));
    else elf.fill(at & 0xff, at, Math.min(at + 4096, elfSize));
  }
  return [
    { path: "storage.json", data: Buffer.from(JSON.stringify({ firmware_bin_path: "firmware.bin" })) },
    { path: "idedata.json", data: Buffer.from(JSON.stringify({ prog_path: "firmware.elf", extra: {} })) },
    { path: "firmware.bin", data: bin },
    { path: "firmware.elf", data: elf },
    { path: "bootloader.bin", data: randomBytes(26 * 1024) },
    { path: "partitions.bin", data: randomBytes(3 * 1024) },
  ];
}

function bundleFiles(): { path: string; data: Buffer }[] {
  const files: { path: string; data: Buffer }[] = [{ path: "manifest.json", data: Buffer.from('{"version":1}') }];
  for (let i = 0; i < 120; i++) {
    const yaml = `esphome:\n  name: device-${i}\n` + "sensor:\n  - platform: template\n    name: value\n".repeat(40);
    files.push({ path: `config/packages/device-${i}.yaml`, data: Buffer.from(yaml) });
  }
  files.push({ path: "config/fonts/roboto.ttf", data: randomBytes(1200 * 1024) });
  files.push({ path: "config/images/logo.png", data: randomBytes(900 * 1024) });
  files.push({ path: "config/secrets.yaml", data: Buffer.from("wifi_ssid: x\nwifi_password: y\n") });
  return files;
}

/** Median time of each reader on the same bytes: 2 warm-ups, then 9 rounds alternating the readers. */
async function medians(bytes: Buffer, opts: ReadTarOptions): Promise<Record<string, number>> {
  for (let i = 0; i < 2; i++) for (const [, read] of READERS) await read(bytes, opts);
  const samples = new Map<string, number[]>(READERS.map(([name]) => [name, []]));
  for (let round = 0; round < 9; round++) {
    for (const [name, read] of round % 2 === 0 ? READERS : [...READERS].reverse()) {
      globalThis.gc?.();
      const t = performance.now();
      await read(bytes, opts);
      samples.get(name)?.push(performance.now() - t);
    }
  }
  return Object.fromEntries([...samples].map(([name, times]) => [name, times.sort((a, b) => a - b)[4] ?? NaN]));
}

const result: Record<string, number> = {};

for (const mib of [16, 64]) {
  const bytes = await createTarGz(artifactFiles(mib), "auto");
  const opts: ReadTarOptions = { maxMemberBytes: 256 * MiB, maxTotalBytes: 256 * MiB, maxMembers: 64, directories: "reject", bufferBytes: 256 * 1024 };
  result[`artifacts_${mib}_mib_bytes`] = bytes.length;
  for (const [name, ms] of Object.entries(await medians(bytes, opts))) result[`artifacts_${mib}_mib_${name}_ms`] = ms;
  result[`artifacts_${mib}_mib_node_tar_vs_ours`] = (result[`artifacts_${mib}_mib_node_tar_ms`] ?? 0) / (result[`artifacts_${mib}_mib_ours_ms`] ?? 1);
}
{
  const bytes = await createTarGz(bundleFiles());
  const opts: ReadTarOptions = { maxMemberBytes: 32 * MiB, maxTotalBytes: 32 * MiB, directories: "skip" };
  result.bundle_bytes = bytes.length;
  for (const [name, ms] of Object.entries(await medians(bytes, opts))) result[`bundle_${name}_ms`] = ms;
  result.bundle_node_tar_vs_ours = (result.bundle_node_tar_ms ?? 0) / (result.bundle_ours_ms ?? 1);
}

// (b) Hostile and awkward archives.
const caps: ReadTarOptions = { maxMemberBytes: MiB, maxTotalBytes: 4 * MiB, maxMembers: 100 };
const good = tgzOf([file("a", "x".repeat(5000))]);
const longUnicode = ("ü".repeat(100) + "/").repeat(3) + "f.txt"; // 604 bytes: a pax record over one block
const CASES: { label: string; expect: string; bytes: Buffer; opts?: Partial<ReadTarOptions> }[] = [
  { label: "not gzip", expect: "malformed", bytes: Buffer.from("plain text, not gzip") },
  { label: "gzip of JSON, not a tar", expect: "malformed", bytes: gzipSync(Buffer.from('{"json": true}'.repeat(100))) },
  { label: "gzip of nothing", expect: "malformed", bytes: gzipSync(Buffer.alloc(0)) },
  { label: "truncated gzip", expect: "malformed", bytes: good.subarray(0, good.length - 12) },
  { label: "bad header checksum", expect: "malformed", bytes: tgzOf([file("a", "x", { badChecksum: true })]) },
  { label: "size field with a non-octal digit", expect: "malformed", bytes: tgzOf([file("a", "x", { sizeField: Buffer.from("00000000009x") })]) },
  { label: "negative base-256 size", expect: "malformed", bytes: tgzOf([file("a", "x", { sizeField: Buffer.alloc(12, 0xff) })]) },
  { label: "data shorter than declared", expect: "malformed", bytes: tgzOf([file("a", "short", { declaredSize: 4000 })], { eof: false }) },
  { label: "pax record length past its data", expect: "malformed", bytes: tgzOf([{ name: "PaxHeader", type: "x", data: "99 path=a\n" }, file("a")]) },
  { label: "pax record length too short", expect: "malformed", bytes: tgzOf([{ name: "PaxHeader", type: "x", data: "5 path=a\n" }, file("a")]) },
  { label: "pax size not a number", expect: "malformed", bytes: tgzOf([paxEntry({ size: "12abc" }), file("a")]) },
  { label: "pax header, then end of archive", expect: "malformed", bytes: tgzOf([paxEntry({ path: "a" })]) },
  { label: "pax header of 10 MiB", expect: "malformed", bytes: tgzOf([{ name: "PaxHeader", type: "x", declaredSize: 10 * MiB }]) },
  { label: "pax global header", expect: "not_a_file", bytes: tgzOf([file("ok", "1"), { name: "entry", type: "g" }]) },
  { label: "symlink", expect: "not_a_file", bytes: tgzOf([{ name: "l", type: "2", linkname: "/etc/passwd" }]) },
  { label: "hard link", expect: "not_a_file", bytes: tgzOf([{ name: "l", type: "1", linkname: "/etc/passwd" }]) },
  { label: "empty name", expect: "unsafe_path", bytes: tgzOf([file("")]) },
  { label: "name './'", expect: "unsafe_path", bytes: tgzOf([file("./")]) },
  { label: "'..' in a pax path", expect: "unsafe_path", bytes: tgzOf([paxEntry({ path: "../evil" }), file("benign.txt")]) },
  { label: "NUL inside a pax path", expect: "unsafe_path", bytes: tgzOf([paxEntry({ path: "a\u0000../../x" }), file("x")]) },
  { label: "NUL inside a GNU long name", expect: "unsafe_path", bytes: tgzOf([{ ...gnuLongName(""), data: Buffer.from("evil\u0000../../x\u0000") }, file("x", "1", { magic: "gnu" })]) },
  { label: "name not UTF-8", expect: "unsafe_path", bytes: tgzOf([file(Buffer.from([0x61, 0xff, 0xfe]) as unknown as string)]) },
  { label: "declares 10 GiB, no data", expect: "member_too_large", bytes: tgzOf([file("big", "", { declaredSize: 10 * 1024 * MiB })], { eof: false }) },
  { label: "pax size over the cap", expect: "member_too_large", bytes: tgzOf([paxEntry({ size: String(2 * MiB) }), file("big", "")]) },
  { label: "base-256 size over 2^53", expect: "member_too_large", bytes: tgzOf([file("huge", "", { sizeField: Buffer.from([0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]) })]) },
  { label: "valid: 604-byte UTF-8 pax path, read in 1100-byte slices", expect: "accepted", bytes: tgzOf([paxEntry({ path: longUnicode }), file("x", "data")]), opts: { bufferBytes: 1100 } },
];

async function verdict(read: Reader, bytes: Buffer, opts: ReadTarOptions, expected: string): Promise<string> {
  try {
    const entries = await read(bytes, opts);
    if (expected === "accepted") return entries[0]?.path === longUnicode ? "accepted" : `accepted as ${JSON.stringify(entries[0]?.path.slice(0, 12))}…`;
    return "accepted";
  } catch (err) {
    return isTarSafetyError(err) ? err.code : `threw ${(err as Error).name}`;
  }
}

const rows = ["| case | expected | ours | node-tar Parser |", "|---|---|---|---|"];
let oursRight = 0;
let nodeTarRight = 0;
let nodeTarAccepted = 0;
for (const c of CASES) {
  const opts = { ...caps, ...c.opts };
  const ours = await verdict(readTarGz, c.bytes, opts, c.expect);
  const other = await verdict(readTarGzNodeTar, c.bytes, opts, c.expect);
  if (ours === c.expect) oursRight++;
  if (other === c.expect) nodeTarRight++;
  else if (other.startsWith("accepted")) nodeTarAccepted++;
  rows.push(`| ${c.label} | ${c.expect} | ${ours} | ${other} |`);
}
process.stderr.write(rows.join("\n") + "\n");
result.cases = CASES.length;
result.cases_ours_as_expected = oursRight;
result.cases_node_tar_as_expected = nodeTarRight;
result.cases_node_tar_accepted_wrongly = nodeTarAccepted;
process.stdout.write(JSON.stringify(result) + "\n");
