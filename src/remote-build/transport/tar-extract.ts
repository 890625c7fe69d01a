/**
 * `extractSafely` writes the entries `readTarGz` accepted into a destination
 * that must not exist yet: it builds a fresh temp folder beside it and renames
 * it into place, so nothing is ever written through a pre-existing symlink and
 * a failure leaves nothing behind.
 */
import { promises as fs, type Stats } from "node:fs";
import path from "node:path";
import { checkMemberPath, type TarEntry, tarSafetyError } from "./tar-policy.ts";

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

async function lstatOrNull(p: string): Promise<Stats | null> {
  try {
    return await fs.lstat(p);
  } catch (err) {
    if (errno(err) === "ENOENT") return null;
    throw err;
  }
}

/**
 * Writes entries (from `readTarGz`) as files under `destDir`, which must not
 * exist yet (`destination_exists` otherwise; a symlink there counts as
 * existing and is never followed). Its parent is created if needed. Files are
 * written into a fresh temp folder beside `destDir` (mode 0644, folders 0755)
 * and the folder is renamed into place at the end; on any failure the temp
 * folder is removed, so nothing is left behind. Every path is checked again
 * and resolved to verify it stays inside.
 */
export async function extractSafely(entries: readonly TarEntry[], destDir: string): Promise<string[]> {
  const dest = path.resolve(destDir);
  if ((await lstatOrNull(dest)) !== null) {
    throw tarSafetyError("destination_exists", `extraction target ${dest} already exists`);
  }
  const parent = path.dirname(dest);
  await fs.mkdir(parent, { recursive: true });
  const tmp = await fs.mkdtemp(path.join(parent, `.${path.basename(dest)}.extract-`));
  try {
    const written = await writeEntries(entries, tmp);
    await fs.chmod(tmp, 0o755);
    try {
      await fs.rename(tmp, dest);
    } catch (err) {
      const code = errno(err);
      if (code === "ENOTEMPTY" || code === "EEXIST" || code === "ENOTDIR" || code === "EISDIR") {
        throw tarSafetyError("destination_exists", `extraction target ${dest} appeared while extracting`, { cause: err });
      }
      throw err;
    }
    return written;
  } catch (err) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** Writes entries into `root`, a folder this process just created (so it holds no links). */
async function writeEntries(entries: readonly TarEntry[], root: string): Promise<string[]> {
  const seen = new Set<string>();
  const madeDirs = new Set<string>();
  const written: string[] = [];
  for (const entry of entries) {
    const checked = checkMemberPath(entry.path);
    if (checked.path === "" || checked.trailingSlash) {
      throw tarSafetyError("unsafe_path", `entry ${JSON.stringify(entry.path)} has no file name`);
    }
    const target = path.resolve(root, ...checked.path.split("/"));
    const rel = path.relative(root, target);
    if (rel === "" || rel.startsWith("..") || path.isAbsolute(rel)) {
      throw tarSafetyError("unsafe_path", `entry ${JSON.stringify(entry.path)} resolves outside the destination`);
    }
    if (seen.has(checked.path)) {
      throw tarSafetyError("duplicate", `${JSON.stringify(checked.path)} appears more than once`);
    }
    seen.add(checked.path);
    const dir = path.dirname(target);
    try {
      if (!madeDirs.has(dir)) {
        await fs.mkdir(dir, { recursive: true, mode: 0o755 });
        madeDirs.add(dir);
      }
      // "wx": never replace or follow whatever might already be there.
      await fs.writeFile(target, entry.data, { flag: "wx", mode: 0o644 });
    } catch (err) {
      const code = errno(err);
      if (code === "EEXIST" || code === "EISDIR" || code === "ENOTDIR") {
        throw tarSafetyError("duplicate", `${JSON.stringify(checked.path)} collides with another entry`, { cause: err });
      }
      throw err;
    }
    await fs.chmod(target, 0o644);
    written.push(checked.path);
  }
  return written;
}
