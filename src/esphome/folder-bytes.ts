/** Disk use of a folder tree (the managed ESPHome environments' sizes). */
import { promises as fs } from "node:fs";
import path from "node:path";

/** Bytes a folder takes on disk (allocated blocks; hard links counted once). */
export async function folderBytes(dir: string): Promise<number> {
  const seen = new Set<string>();
  let total = 0;
  const walk = async (d: string): Promise<void> => {
    let entries;
    try {
      entries = await fs.readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const full = path.join(d, entry.name);
      try {
        const stat = await fs.lstat(full);
        const id = `${stat.dev}:${stat.ino}`;
        if (seen.has(id)) continue;
        seen.add(id);
        total += stat.blocks * 512;
        if (entry.isDirectory()) await walk(full);
      } catch {
        // gone meanwhile
      }
    }
  };
  await walk(dir);
  return total;
}
