/**
 * Archives we write are read by the upstream Device Builder with Python's
 * tarfile: check that Python (and GNU tar) read ours, per-member gzip included.
 */
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { gunzipSync } from "node:zlib";
import { createTarGz, storedGzipSize, writeStoredGzip } from "../../../src/remote-build/transport/tar-writer.ts";
import { testPython } from "../../helpers/python.ts";
import { tempDir } from "../../helpers/tmp.ts";

describe("tarballs with a gzip member per file", () => {
  it("store incompressible images, compress the rest, and read back in Python and GNU tar", async () => {
    const firmware = randomBytes(300_000);
    const elf = Buffer.from("ELF section text ".repeat(20_000));
    const auto = await createTarGz([{ path: "firmware.bin", data: firmware }, { path: "firmware.elf", data: elf }], "auto");
    // The stored image costs its size; the text shrinks a lot.
    expect(auto.length).toBeLessThan(firmware.length + elf.length / 5);
    expect(auto.length).toBeGreaterThan(firmware.length);
    const file = path.join(await tempDir(), "artifacts.tar.gz");
    await writeFile(file, auto);
    const script = "import sys,tarfile,hashlib\nt=tarfile.open(sys.argv[1],'r:gz')\nprint(';'.join(f'{m.name}:{m.size}:{hashlib.sha256(t.extractfile(m).read()).hexdigest()}' for m in t.getmembers()))";
    const py = execFileSync(testPython(), ["-c", script, file], { encoding: "utf8" }).trim();
    const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex");
    expect(py).toBe(`firmware.bin:${firmware.length}:${sha(firmware)};firmware.elf:${elf.length}:${sha(elf)}`);
    expect(execFileSync("tar", ["-tzf", file], { encoding: "utf8" }).trim().split("\n")).toEqual(["firmware.bin", "firmware.elf"]);
  });
});

describe("stored gzip members", () => {
  it.each([0, 1, 65_534, 65_535, 65_536, 3 * 65_535, 200_001])("hold %i bytes that gunzip (Node, GNU gzip) back unchanged", async (size) => {
    const data = randomBytes(size);
    // Split across parts at odd places, as a tar member's header, data and padding are.
    const parts = [data.subarray(0, Math.min(size, 7)), data.subarray(Math.min(size, 7), Math.floor(size / 2)), Buffer.alloc(0), data.subarray(Math.floor(size / 2))];
    const out = Buffer.alloc(storedGzipSize(size) + 3, 0xee);
    expect(writeStoredGzip(parts, size, out, 3)).toBe(out.length);
    const member = out.subarray(3);
    expect(gunzipSync(member).equals(data)).toBe(true);
    const file = path.join(await tempDir(), "m.gz");
    await writeFile(file, member);
    execFileSync("gzip", ["-t", file]);
  });
});
