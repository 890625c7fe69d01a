/**
 * The ESPHome releases a package index offers. Without index settings that is
 * PyPI's JSON API (`https://pypi.org/pypi/esphome/json`); with pip's own index
 * setting (PIP_INDEX_URL, else `index-url` in pip's configuration files, the
 * same places pip reads) it is that index's simple API (PEP 691 JSON, else
 * the HTML page's file names), so the list matches what pip can install.
 */
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { z } from "zod";
import { BuilderError, ErrorCode, errorMessage } from "../errors.ts";
import { VERSION_PATTERN, compareVersionsDesc, isPrerelease } from "./release-numbers.ts";

export const PYPI_JSON_URL = "https://pypi.org/pypi/esphome/json";

export interface OfferedVersion {
  version: string;
  prerelease: boolean;
  /** Python versions it installs on, as the index says (">=3.12.0,<3.15"); null when not said. */
  requires_python: string | null;
}

export interface IndexAnswer {
  /** Where the list came from. */
  index: string;
  /** Newest first, yanked releases left out. */
  versions: OfferedVersion[];
}

const pypiJson = z.object({
  releases: z.record(
    z.string(),
    z.array(z.object({ requires_python: z.string().nullable().optional(), yanked: z.boolean().optional() }).loose()),
  ),
}).loose();

const simpleJson = z.object({
  versions: z.array(z.string()).optional(),
  files: z.array(z.object({ filename: z.string(), yanked: z.union([z.boolean(), z.string()]).optional(), "requires-python": z.string().nullable().optional() }).loose()),
}).loose();

/** pip's configuration files, lowest precedence first (pip: global, then user, then PIP_CONFIG_FILE). */
function pipConfigFiles(env: NodeJS.ProcessEnv): string[] {
  const home = env.HOME ?? os.homedir();
  const xdgDirs = (env.XDG_CONFIG_DIRS ?? "/etc/xdg").split(":").filter((d) => d !== "");
  const files = [...xdgDirs.reverse().map((d) => path.join(d, "pip", "pip.conf")), "/etc/pip.conf"];
  files.push(path.join(home, ".pip", "pip.conf"), path.join(env.XDG_CONFIG_HOME ?? path.join(home, ".config"), "pip", "pip.conf"));
  if (env.PIP_CONFIG_FILE !== undefined && env.PIP_CONFIG_FILE !== "" && env.PIP_CONFIG_FILE !== "os.devnull") files.push(env.PIP_CONFIG_FILE);
  return files;
}

/** `index-url` of a pip.conf's [global] or [install] section. */
export function indexUrlOfConfig(text: string): string | null {
  let section = "";
  let found: string | null = null;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    const head = /^\[(.+)\]$/.exec(line);
    if (head !== null) {
      section = (head[1] ?? "").trim().toLowerCase();
      continue;
    }
    const kv = /^(index-url|index_url)\s*[=:]\s*(\S+)/i.exec(line);
    if (kv !== null && (section === "global" || section === "install")) found = kv[2] ?? null;
  }
  return found;
}

/** The index pip would use: PIP_INDEX_URL, else pip's configuration, else null (PyPI). */
export async function pipIndexUrl(env: NodeJS.ProcessEnv = process.env): Promise<string | null> {
  const fromEnv = env.PIP_INDEX_URL?.trim();
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  let found: string | null = null;
  for (const file of pipConfigFiles(env)) {
    try {
      found = indexUrlOfConfig(await fs.readFile(file, "utf8")) ?? found;
    } catch {
      // no such file
    }
  }
  return found;
}

/** The version in a distribution file name of ESPHome (`esphome-2026.10.0.tar.gz`, `esphome-2026.10.0-py3-none-any.whl`). */
function versionOfFile(filename: string): string | null {
  const m = /^esphome-([^-]+?)(?:\.tar\.gz|\.zip|-py\d.*\.whl)$/i.exec(filename);
  return m?.[1] !== undefined && VERSION_PATTERN.test(m[1]) ? m[1] : null;
}

export interface VersionsOptions {
  env?: NodeJS.ProcessEnv;
  fetch?: typeof fetch;
  timeoutMs?: number;
}

/** Asks the index; an `index_unavailable` BuilderError naming the index and the reason when it cannot. */
export async function fetchEsphomeVersions(opts: VersionsOptions = {}): Promise<IndexAnswer> {
  const doFetch = opts.fetch ?? fetch;
  const indexUrl = await pipIndexUrl(opts.env ?? process.env);
  const raw = indexUrl === null ? PYPI_JSON_URL : `${indexUrl.replace(/\/+$/, "")}/esphome/`;
  const shown = raw.replace(/\/\/[^/@]*@/, "//");
  const headers: Record<string, string> = { Accept: indexUrl === null ? "application/json" : "application/vnd.pypi.simple.v1+json, text/html;q=0.1" };
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new BuilderError(ErrorCode.IndexUnavailable, `pip's index setting ${shown} is not a URL: fix PIP_INDEX_URL or index-url in pip.conf`);
  }
  // Credentials in an index URL (as pip allows) go in a header: fetch refuses them in the URL.
  if (url.username !== "" || url.password !== "") {
    headers.Authorization = `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString("base64")}`;
    url.username = "";
    url.password = "";
  }
  let response: Response;
  let body: string;
  try {
    response = await doFetch(url, {
      headers,
      signal: AbortSignal.timeout(opts.timeoutMs ?? 15_000),
    });
    body = await response.text();
  } catch (err) {
    throw new BuilderError(ErrorCode.IndexUnavailable, `The package index ${shown} could not be reached: ${errorMessage(err)}. Check the network or pip's index setting (PIP_INDEX_URL)`);
  }
  if (!response.ok) {
    throw new BuilderError(ErrorCode.IndexUnavailable, `The package index ${shown} answered ${response.status} ${response.statusText}. Check pip's index setting (PIP_INDEX_URL)`);
  }
  const found = new Map<string, OfferedVersion>();
  const add = (version: string, requires: string | null): void => {
    if (!VERSION_PATTERN.test(version)) return;
    const prev = found.get(version);
    found.set(version, { version, prerelease: isPrerelease(version), requires_python: prev?.requires_python ?? requires });
  };
  const contentType = response.headers.get("content-type") ?? "";
  try {
    if (indexUrl === null) {
      const parsed = pypiJson.parse(JSON.parse(body));
      for (const [version, files] of Object.entries(parsed.releases)) {
        const live = files.filter((f) => f.yanked !== true);
        if (live.length > 0) add(version, live[0]?.requires_python ?? null);
      }
    } else if (contentType.includes("json")) {
      const parsed = simpleJson.parse(JSON.parse(body));
      for (const file of parsed.files) {
        if (file.yanked !== undefined && file.yanked !== false) continue;
        const version = versionOfFile(file.filename);
        if (version !== null) add(version, file["requires-python"] ?? null);
      }
    } else {
      for (const m of body.matchAll(/<a\b([^>]*)>([^<]+)<\/a>/gi)) {
        if (/data-yanked/i.test(m[1] ?? "")) continue;
        const version = versionOfFile((m[2] ?? "").trim());
        const requires = /data-requires-python="([^"]*)"/i.exec(m[1] ?? "")?.[1]?.replace(/&gt;/g, ">").replace(/&lt;/g, "<") ?? null;
        if (version !== null) add(version, requires);
      }
    }
  } catch (err) {
    throw new BuilderError(ErrorCode.IndexUnavailable, `The package index ${shown} gave an answer that is not a package list: ${errorMessage(err).slice(0, 200)}`);
  }
  if (found.size === 0) throw new BuilderError(ErrorCode.IndexUnavailable, `The package index ${shown} lists no ESPHome release`);
  return { index: shown, versions: [...found.values()].sort((a, b) => compareVersionsDesc(a.version, b.version)) };
}
