import { promises as fs } from "node:fs";
import path from "node:path";
import * as tar from "tar";
import { describe, expect, it } from "vitest";
import { gzipSync } from "node:zlib";
import { type ReadTarOptions, type TarEntry, isTarSafetyError, type TarSafetyError } from "../../../src/remote-build/transport/tar-policy.ts";
import { readTarGz, readTarGzStream } from "../../../src/remote-build/transport/tar-reader.ts";
import { extractSafely } from "../../../src/remote-build/transport/tar-extract.ts";
import { createTarGz } from "../../../src/remote-build/transport/tar-writer.ts";
import { tempDir } from "../../helpers/tmp.ts";
import {
  MiB,
  file,
  gnuLongName,
  paxEntry,
  tarOf,
  tgzOf,
  trailingZeroBomb,
  zeroMemberBomb,
  type RawEntry,
} from "./tar-fixtures.ts";

const caps: ReadTarOptions = { maxMemberBytes: MiB, maxTotalBytes: 4 * MiB, maxMembers: 100 };

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (isTarSafetyError(err)) return err.code;
    throw err;
  }
  throw new Error("expected a TarSafetyError");
}

const read = (entries: RawEntry[], opts: Partial<ReadTarOptions> = {}) => readTarGz(tgzOf(entries), { ...caps, ...opts });

/** Every file under dir, relative, plus symlinks, sorted. */
async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string): Promise<void> => {
    for (const ent of await fs.readdir(d, { withFileTypes: true })) {
      const r = rel === "" ? ent.name : `${rel}/${ent.name}`;
      if (ent.isDirectory()) await walk(path.join(d, ent.name), r);
      else out.push(r);
    }
  };
  await walk(dir, "");
  return out.sort();
}

describe("readTarGz: accepted archives", () => {
  it("reads regular files with their data and mode, in order", async () => {
    const entries = await read([file("a.yaml", "A"), file("sub/b.txt", "BB", { mode: 0o600 }), file("c", "", { type: "\0" })]);
    expect(entries.map((e) => [e.path, e.data.toString(), e.mode])).toEqual([
      ["a.yaml", "A", 0o644],
      ["sub/b.txt", "BB", 0o600],
      ["c", "", 0o644],
    ]);
  });

  it("treats contiguous files ('7') as regular and reads v7 and GNU headers", async () => {
    const entries = await read([
      file("a", "1", { type: "7" }),
      file("b", "2", { magic: "v7" }),
      file("c", "3", { magic: "gnu" }),
    ]);
    expect(entries.map((e) => e.path)).toEqual(["a", "b", "c"]);
  });

  it("joins the ustar prefix, and prefers pax and GNU long names", async () => {
    const long = "d/".repeat(70) + "deep.txt";
    const entries = await read([
      file("name.txt", "p", { prefix: "some/dir" }),
      paxEntry({ path: long }),
      file("truncated", "x"),
      gnuLongName("g/".repeat(60) + "gnu.txt"),
      file("short", "y", { magic: "gnu" }),
    ]);
    expect(entries.map((e) => e.path)).toEqual(["some/dir/name.txt", long, "g/".repeat(60) + "gnu.txt"]);
  });

  it("reads a pax path over one block with multi-byte UTF-8, however the input is sliced", async () => {
    // 604 bytes of record: it crosses a block and, in some slicings, a slice inside a character.
    const long = ("ü".repeat(100) + "/").repeat(3) + "f.txt";
    const bytes = tgzOf([paxEntry({ path: long }), file("truncated-ustar-name", "data")]);
    for (const bufferBytes of [600, 1000, 1100, 1537, 16 * 1024]) {
      const entries = await readTarGz(bytes, { ...caps, bufferBytes });
      expect(entries.map((e) => [e.path, e.data.toString()])).toEqual([[long, "data"]]);
    }
  });

  it("normalises ./ and repeated slashes", async () => {
    const entries = await read([file("./a//b/./c.txt")]);
    expect(entries[0]?.path).toBe("a/b/c.txt");
  });

  it("round-trips createTarGz output (deterministic, long and non-ASCII names)", async () => {
    const files = [
      { path: "manifest.json", data: Buffer.from("{}") },
      { path: "x/" + "y".repeat(150) + ".yaml", data: Buffer.from("long") },
      { path: "ü/ñ.txt", data: Buffer.from("utf8") },
      { path: "empty", data: Buffer.alloc(0) },
      { path: "block", data: Buffer.alloc(1024, 7) },
    ];
    const a = await createTarGz(files);
    const b = await createTarGz(files);
    expect(a.equals(b)).toBe(true);
    const entries = await readTarGz(a, caps);
    expect(entries.map((e) => [e.path, e.data])).toEqual(files.map((f) => [f.path, f.data]));
    expect(entries.every((e) => e.mode === 0o644)).toBe(true);
  });

  it("reads node-tar archives; directories are skipped only when asked", async () => {
    const dir = await tempDir();
    await fs.mkdir(path.join(dir, "src/sub"), { recursive: true });
    await fs.writeFile(path.join(dir, "src/a.yaml"), "a");
    await fs.writeFile(path.join(dir, "src/sub/" + "n".repeat(120)), "long");
    const out = path.join(dir, "out.tgz");
    await tar.create({ gzip: true, file: out, cwd: path.join(dir, "src"), portable: true }, ["."]);
    const bytes = await fs.readFile(out);
    const entries = await readTarGz(bytes, { ...caps, directories: "skip" });
    expect(entries.map((e) => e.path).sort()).toEqual(["a.yaml", "sub/" + "n".repeat(120)]);
    expect(await codeOf(readTarGz(bytes, caps))).toBe("not_a_file");
  });

  it("treats an old-style folder entry (v7, trailing slash) as a directory", async () => {
    const entries: RawEntry[] = [{ name: "olddir/", type: "\0", magic: "v7" }, file("olddir/a", "1", { magic: "v7" })];
    expect((await read(entries, { directories: "skip" })).map((e) => e.path)).toEqual(["olddir/a"]);
    expect(await codeOf(read(entries))).toBe("not_a_file");
  });

  it("accepts an empty archive (end-of-archive record only)", async () => {
    expect(await readTarGz(gzipSync(Buffer.alloc(1024)), caps)).toEqual([]);
  });

  it("accepts an archive without the end-of-archive record", async () => {
    expect((await read([file("a")], {})).length).toBe(1);
    expect((await readTarGz(tgzOf([file("a")], { eof: false }), caps)).length).toBe(1);
  });
});

describe("readTarGz: rejections", () => {
  it("malformed: not gzip, corrupt gzip, not a tar, truncated", async () => {
    expect(await codeOf(readTarGz(Buffer.from("plain text, not gzip"), caps))).toBe("malformed");
    expect(await codeOf(readTarGz(Buffer.alloc(0), caps))).toBe("malformed");
    expect(await codeOf(readTarGz(gzipSync(Buffer.from("{\"json\": true}".repeat(100))), caps))).toBe("malformed");
    expect(await codeOf(readTarGz(gzipSync(Buffer.alloc(0)), caps))).toBe("malformed");
    const good = tgzOf([file("a", "x".repeat(5000))]);
    expect(await codeOf(readTarGz(good.subarray(0, good.length - 12), caps))).toBe("malformed");
    const flipped = Buffer.from(good);
    flipped[flipped.length - 6] = (flipped[flipped.length - 6] ?? 0) ^ 0xff; // CRC / length trailer
    expect(await codeOf(readTarGz(flipped, caps))).toBe("malformed");
    const garbled = Buffer.from(good);
    garbled.fill(0x55, 12, 40);
    expect(await codeOf(readTarGz(garbled, caps))).toBe("malformed");
  });

  it("malformed: bad header checksum, bad size field, data shorter than declared, bad pax record", async () => {
    expect(await codeOf(read([file("a", "x", { badChecksum: true })]))).toBe("malformed");
    expect(await codeOf(read([file("a", "x", { sizeField: Buffer.from("00000000009x") })]))).toBe("malformed");
    expect(await codeOf(read([file("a", "x", { sizeField: Buffer.alloc(12, 0xff) })]))).toBe("malformed");
    expect(await codeOf(readTarGz(tgzOf([file("a", "short", { declaredSize: 4000 })], { eof: false }), caps))).toBe(
      "malformed",
    );
    expect(await codeOf(read([{ name: "PaxHeader", type: "x", data: "99 path=a\n" }, file("a")]))).toBe("malformed");
    expect(await codeOf(read([{ name: "PaxHeader", type: "x", data: "5 path=a\n" }, file("a")]))).toBe("malformed");
    expect(await codeOf(read([paxEntry({ size: "12abc" }), file("a")]))).toBe("malformed");
    expect(await codeOf(read([paxEntry({ path: "a" })]))).toBe("malformed");
    expect(await codeOf(read([{ name: "PaxHeader", type: "x", declaredSize: 10 * MiB }]))).toBe("malformed");
  });

  it.each([
    ["hard link", "1"],
    ["symlink", "2"],
    ["character device", "3"],
    ["block device", "4"],
    ["directory", "5"],
    ["FIFO", "6"],
    ["pax global header", "g"],
    ["GNU sparse file", "S"],
    ["GNU volume header", "V"],
    ["vendor extension", "A"],
  ])("not_a_file: %s", async (_label, type) => {
    expect(await codeOf(read([file("ok", "1"), { name: "entry", type, linkname: "/etc/passwd" }]))).toBe("not_a_file");
  });

  it("not_a_file: links stay rejected when directories are skipped", async () => {
    expect(await codeOf(read([{ name: "link", type: "2", linkname: "../../x" }], { directories: "skip" }))).toBe("not_a_file");
    expect(await codeOf(read([{ name: "dir/", type: "5" }, { name: "dir/h", type: "1", linkname: "a" }], { directories: "skip" }))).toBe(
      "not_a_file",
    );
  });

  it.each([
    ["parent traversal", "../x"],
    ["nested traversal", "a/../../x"],
    ["trailing ..", "a/.."],
    ["absolute", "/etc/passwd"],
    ["Windows drive", "C:/Windows/x"],
    ["Windows drive-relative", "C:x"],
    ["backslash", "a\\b"],
    ["backslash traversal", "..\\x"],
    ["control character", "a\nb"],
    ["empty", ""],
    ["only dots", "./"],
    ["over-long segment", "x".repeat(256)],
  ])("unsafe_path: %s", async (_label, name) => {
    const entries: RawEntry[] = Buffer.byteLength(name) > 100 ? [paxEntry({ path: name }), file("x")] : [file(name)];
    expect(await codeOf(read(entries))).toBe("unsafe_path");
  });

  it("unsafe_path: traversal hidden in the ustar prefix, a pax path or a GNU long name", async () => {
    expect(await codeOf(read([file("x", "1", { prefix: ".." })]))).toBe("unsafe_path");
    expect(await codeOf(read([file("x", "1", { prefix: "/etc" })]))).toBe("unsafe_path");
    expect(await codeOf(read([paxEntry({ path: "../evil" }), file("benign.txt")]))).toBe("unsafe_path");
    expect(await codeOf(read([gnuLongName("../../evil"), file("benign.txt", "1", { magic: "gnu" })]))).toBe("unsafe_path");
  });

  it("unsafe_path: NUL in a pax path or GNU long name, and names that are not UTF-8", async () => {
    expect(await codeOf(read([paxEntry({ path: "a\u0000../../x" }), file("x")]))).toBe("unsafe_path");
    expect(
      await codeOf(read([{ ...gnuLongName(""), data: Buffer.from("evil\u0000../../x\u0000") }, file("x", "1", { magic: "gnu" })])),
    ).toBe("unsafe_path");
    expect(await codeOf(read([file(Buffer.from([0x61, 0xff, 0xfe]) as unknown as string)]))).toBe("unsafe_path");
  });

  it("unsafe_path: a directory entry with traversal, even when directories are skipped", async () => {
    expect(await codeOf(read([{ name: "../d/", type: "5" }], { directories: "skip" }))).toBe("unsafe_path");
  });

  it("member_too_large: judged from the declared size before any data is read", async () => {
    // Declares 10 GiB but carries no data at all: rejected from the header alone.
    expect(await codeOf(readTarGz(tgzOf([file("big", "", { declaredSize: 10 * 1024 * MiB })], { eof: false }), caps))).toBe(
      "member_too_large",
    );
    expect(await codeOf(read([file("big", Buffer.alloc(MiB + 1))]))).toBe("member_too_large");
    expect(await codeOf(read([paxEntry({ size: String(2 * MiB) }), file("big", "")]))).toBe("member_too_large");
    // GNU base-256 size field, larger than 2^53.
    expect(await codeOf(read([file("huge", "", { sizeField: Buffer.from([0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]) })]))).toBe(
      "member_too_large",
    );
  });

  it("too_large: cumulative member sizes over the cap", async () => {
    const entries = [file("a", Buffer.alloc(MiB)), file("b", Buffer.alloc(MiB)), file("c", Buffer.alloc(MiB)), file("d", Buffer.alloc(MiB)), file("e", "1")];
    expect(await codeOf(read(entries))).toBe("too_large");
    expect(await read(entries.slice(0, 4))).toHaveLength(4);
  });

  it("duplicate: the same path twice, also after normalisation, and a file used as a folder", async () => {
    expect(await codeOf(read([file("a.yaml"), file("a.yaml")]))).toBe("duplicate");
    expect(await codeOf(read([file("a.yaml"), file("./a.yaml")]))).toBe("duplicate");
    expect(await codeOf(read([file("a"), file("a/b")]))).toBe("duplicate");
    expect(await codeOf(read([file("a/b"), file("a")]))).toBe("duplicate");
    expect(await codeOf(read([{ name: "a/", type: "5" }, file("a")], { directories: "skip" }))).toBe("duplicate");
  });

  it("too_many_members", async () => {
    const entries = Array.from({ length: 6 }, (_, i) => file(`f${i}`));
    expect(await codeOf(read(entries, { maxMembers: 5 }))).toBe("too_many_members");
    expect(await read(entries, { maxMembers: 6 })).toHaveLength(6);
  });
});

describe("readTarGz: gzip bombs", () => {
  it("a 200 MiB member: member_too_large from its header, or too_large against the total cap", async () => {
    const bomb = await zeroMemberBomb("zeros.bin", 200 * MiB);
    expect(bomb.length).toBeLessThan(512 * 1024);
    expect(await codeOf(readTarGz(bomb, caps))).toBe("member_too_large");
    const started = performance.now();
    expect(await codeOf(readTarGz(bomb, { maxMemberBytes: 1024 * MiB, maxTotalBytes: 4 * MiB }))).toBe("too_large");
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it("zeros after the end-of-archive record: stopped by counting inflated bytes, without inflating the rest", async () => {
    const bomb = await trailingZeroBomb([file("a.yaml", "ok")], 200 * MiB);
    let error: unknown;
    try {
      await readTarGz(bomb, { maxMemberBytes: MiB, maxTotalBytes: MiB, maxMembers: 4 });
    } catch (err) {
      error = err;
    }
    expect(isTarSafetyError(error)).toBe(true);
    expect((error as TarSafetyError).code).toBe("too_large");
    const stoppedAfter = Number(/stopped after (\d+) inflated bytes/.exec((error as Error).message)?.[1]);
    expect(stoppedAfter).toBeLessThan(4 * MiB);

    // Fed as a stream, only a small part of the compressed input is even pulled.
    let pulled = 0;
    async function* source(): AsyncGenerator<Buffer> {
      for (let pos = 0; pos < bomb.length; pos += 1024) {
        pulled += Math.min(1024, bomb.length - pos);
        yield bomb.subarray(pos, pos + 1024);
      }
      await Promise.resolve();
    }
    expect(await codeOf(readTarGzStream(source(), { maxMemberBytes: MiB, maxTotalBytes: MiB, maxMembers: 4 }))).toBe("too_large");
    expect(pulled).toBeLessThan(bomb.length / 4);
  });

  it("many small members adding up past the total cap", async () => {
    const entries = Array.from({ length: 40 }, (_, i) => file(`z${i}`, Buffer.alloc(256 * 1024)));
    expect(await codeOf(read(entries, { maxMemberBytes: MiB, maxTotalBytes: 8 * MiB }))).toBe("too_large");
  });
});

describe("extractSafely", () => {
  it("writes files under a new folder, 0644, creating parents", async () => {
    const root = await tempDir();
    const dest = path.join(root, "nested", "dest");
    const entries = await read([file("a.yaml", "A", { mode: 0o755 }), file("sub/deeper/b.txt", "B")]);
    const written = await extractSafely(entries, dest);
    expect(written).toEqual(["a.yaml", "sub/deeper/b.txt"]);
    expect(await fs.readFile(path.join(dest, "a.yaml"), "utf8")).toBe("A");
    expect(await fs.readFile(path.join(dest, "sub/deeper/b.txt"), "utf8")).toBe("B");
    expect((await fs.stat(path.join(dest, "a.yaml"))).mode & 0o777).toBe(0o644);
    expect(await fs.readdir(path.join(root, "nested"))).toEqual(["dest"]);
  });

  it("destination_exists: never writes into an existing folder or through a symlink", async () => {
    const root = await tempDir();
    const outside = path.join(root, "outside");
    await fs.mkdir(outside);
    const entries = await read([file("a.yaml", "evil")]);

    await fs.symlink(outside, path.join(root, "link"));
    expect(await codeOf(extractSafely(entries, path.join(root, "link")))).toBe("destination_exists");
    const existing = path.join(root, "existing");
    await fs.mkdir(path.join(existing, "sub"), { recursive: true });
    await fs.symlink(outside, path.join(existing, "sub", "escape"));
    expect(await codeOf(extractSafely(entries, existing))).toBe("destination_exists");

    expect(await fs.readdir(outside)).toEqual([]);
    expect((await fs.readdir(root)).sort()).toEqual(["existing", "link", "outside"]);
  });

  it.each([
    ["traversal", "../escape.txt"],
    ["an absolute path", "/tmp/escape.txt"],
    ["a backslash", "..\\escape.txt"],
    ["an empty name", ""],
  ])("unsafe_path: entries handed in directly with %s, leaving nothing behind", async (_label, name) => {
    const root = await tempDir();
    const entries: TarEntry[] = [
      { path: "fine.txt", data: Buffer.from("1"), mode: 0o644 },
      { path: name, data: Buffer.from("2"), mode: 0o644 },
    ];
    expect(await codeOf(extractSafely(entries, path.join(root, "dest")))).toBe("unsafe_path");
    expect(await listTree(root)).toEqual([]);
  });

  it("duplicate: colliding entries fail and leave nothing behind", async () => {
    const root = await tempDir();
    const entries: TarEntry[] = [
      { path: "a", data: Buffer.from("1"), mode: 0o644 },
      { path: "./a", data: Buffer.from("2"), mode: 0o644 },
    ];
    expect(await codeOf(extractSafely(entries, path.join(root, "dest")))).toBe("duplicate");
    const clash: TarEntry[] = [
      { path: "a", data: Buffer.from("1"), mode: 0o644 },
      { path: "a/b", data: Buffer.from("2"), mode: 0o644 },
    ];
    expect(await codeOf(extractSafely(clash, path.join(root, "dest")))).toBe("duplicate");
    expect(await fs.readdir(root)).toEqual([]);
  });

  it("end to end: a hostile archive is refused before anything is written", async () => {
    const root = await tempDir();
    const bytes = tarOf([file("ok.txt"), { name: "evil", type: "2", linkname: "/etc" }, file("evil/passwd", "x")]);
    expect(await codeOf(readTarGz(gzipSync(bytes), caps).then((e) => extractSafely(e, path.join(root, "d"))))).toBe(
      "not_a_file",
    );
    expect(await fs.readdir(root)).toEqual([]);
  });
});

describe("createTarGz", () => {
  it("refuses unsafe or duplicate paths", async () => {
    expect(await codeOf(createTarGz([{ path: "../x", data: Buffer.alloc(1) }]))).toBe("unsafe_path");
    expect(await codeOf(createTarGz([{ path: "dir/", data: Buffer.alloc(1) }]))).toBe("unsafe_path");
    expect(
      await codeOf(
        createTarGz([
          { path: "a", data: Buffer.alloc(1) },
          { path: "a", data: Buffer.alloc(1) },
        ]),
      ),
    ).toBe("duplicate");
  });

  it("writes headers other tools read: uid/gid 0, mtime 0, mode 0644", async () => {
    const root = await tempDir();
    const tgz = path.join(root, "x.tgz");
    await fs.writeFile(tgz, await createTarGz([{ path: "a/b.txt", data: Buffer.from("hello") }]));
    const seen: { path: string; mode: number | undefined; mtime: number | undefined; uid: number | undefined }[] = [];
    await tar.list({
      file: tgz,
      onReadEntry: (entry) => {
        seen.push({ path: entry.path, mode: entry.mode, mtime: entry.mtime?.getTime(), uid: entry.uid });
      },
    });
    expect(seen).toEqual([{ path: "a/b.txt", mode: 0o644, mtime: 0, uid: 0 }]);
  });
});
