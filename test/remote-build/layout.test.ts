/**
 * The dependency rule of docs/ARCHITECTURE.md "Remote builds", read from the
 * sources: src/domain imports nothing outside itself; the transport knows no
 * jobs and no roles; archives reach into no role, placement only reads the
 * offloader's state.
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(import.meta.dirname, "../..");

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    const rel = path.posix.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sources(rel));
    else if (entry.name.endsWith(".ts")) out.push(rel);
  }
  return out;
}

/** The repository paths a source file imports (relative imports only). */
function importsOf(file: string): string[] {
  const text = readFileSync(path.join(ROOT, file), "utf8");
  const found: string[] = [];
  for (const m of text.matchAll(/^(?:import|export)\b[^;]*?from\s+"(\.{1,2}\/[^"]+)"/gms)) {
    found.push(path.posix.normalize(path.posix.join(path.posix.dirname(file), m[1] ?? "")));
  }
  return found;
}

function violations(dir: string, allowed: (target: string) => boolean): string[] {
  return sources(dir).flatMap((file) => importsOf(file).filter((t) => !allowed(t)).map((t) => `${file} -> ${t}`));
}

describe("the dependency rule", () => {
  it("finds the imports it checks (the reader is not blind)", () => {
    expect(importsOf("src/remote-build/build-server/receiver.ts")).toContain("src/remote-build/build-server/pairing.ts");
  });

  it("src/domain imports nothing outside src/domain", () => {
    expect(violations("src/domain", (t) => t.startsWith("src/domain/"))).toEqual([]);
  });

  it("the transport knows no jobs and no roles", () => {
    const forbidden = ["src/remote-build/build-server/", "src/remote-build/offloader/", "src/remote-build/placement/", "src/remote-build/archives/", "src/firmware/", "src/domain/job.ts", "src/domain/events.ts"];
    expect(violations("src/remote-build/transport", (t) => !forbidden.some((f) => t.startsWith(f)))).toEqual([]);
  });

  it("archives reach into no role; placement reads the offloader's state but never the build server", () => {
    const roles = ["src/remote-build/build-server/", "src/remote-build/offloader/"];
    expect(violations("src/remote-build/archives", (t) => !roles.some((r) => t.startsWith(r)))).toEqual([]);
    expect(violations("src/remote-build/placement", (t) => !t.startsWith("src/remote-build/build-server/"))).toEqual([]);
  });
});
