/**
 * The ESPHome releases a package index offers: the real PyPI (its JSON API by
 * default, its simple API when pip's index setting names it), and every way a
 * configured index can fail, with a local index on the loopback.
 */
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BuilderError } from "../../src/errors.ts";
import { fetchEsphomeVersions, indexUrlOfConfig, pipIndexUrl } from "../../src/esphome/package-index.ts";
import { readPin } from "../../src/esphome/pinned.ts";
import { ROOT } from "../helpers/builder.ts";
import { tempDir } from "../helpers/tmp.ts";

const PIN = readPin(ROOT).version ?? "";
/** No pip configuration at all: HOME in a temp folder, no config file, no PIP_INDEX_URL. */
const bare = (home: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({ HOME: home, XDG_CONFIG_DIRS: path.join(home, "xdg"), PIP_CONFIG_FILE: path.join(home, "none.conf"), ...extra });

describe("ESPHome releases from the real PyPI", () => {
  it("JSON API: every release, newest first, the pinned one among them, pre-releases marked", async () => {
    const home = await tempDir("index-");
    const answer = await fetchEsphomeVersions({ env: bare(home), timeoutMs: 60_000 });
    expect(answer.index).toBe("https://pypi.org/pypi/esphome/json");
    const versions = answer.versions.map((v) => v.version);
    expect(versions).toContain(PIN);
    expect(versions).toContain("2026.9.1");
    expect(versions.indexOf(PIN)).toBeLessThan(versions.indexOf("2026.9.1"));
    expect(versions.indexOf("2026.9.1")).toBeLessThan(versions.indexOf("2025.12.0"));
    expect(answer.versions.find((v) => v.version === PIN)?.requires_python).toMatch(/>=3\.12/);
    const pre = answer.versions.filter((v) => v.prerelease);
    expect(pre.length).toBeGreaterThan(0);
    for (const v of pre) expect(v.version).toMatch(/(b|rc|a)\d+$|\.dev\d+$/);
  });

  it("simple API when PIP_INDEX_URL names an index: the same releases", async () => {
    const home = await tempDir("index-");
    const answer = await fetchEsphomeVersions({ env: bare(home, { PIP_INDEX_URL: "https://pypi.org/simple" }), timeoutMs: 60_000 });
    expect(answer.index).toBe("https://pypi.org/simple/esphome/");
    const versions = answer.versions.map((v) => v.version);
    expect(versions).toContain(PIN);
    expect(versions.indexOf(PIN)).toBeLessThan(versions.indexOf("2026.9.1"));
  });
});

describe("pip's index setting", () => {
  it("comes from PIP_INDEX_URL, else pip's configuration files ([global] or [install])", async () => {
    const home = await tempDir("index-");
    expect(await pipIndexUrl(bare(home))).toBeNull();
    const conf = path.join(home, "pip.conf");
    await writeFile(conf, "[global]\ntimeout = 60\nindex-url = http://127.0.0.1:9/simple\n");
    expect(await pipIndexUrl(bare(home, { PIP_CONFIG_FILE: conf }))).toBe("http://127.0.0.1:9/simple");
    expect(await pipIndexUrl(bare(home, { PIP_CONFIG_FILE: conf, PIP_INDEX_URL: "http://127.0.0.1:8/x" }))).toBe("http://127.0.0.1:8/x");
    expect(indexUrlOfConfig("[install]\nindex_url: http://a/simple\n")).toBe("http://a/simple");
    expect(indexUrlOfConfig("[freeze]\nindex-url = http://a/simple\n")).toBeNull();
  });
});

describe("a configured index that fails", () => {
  let server: Server;
  let base = "";
  let answer: (res: ServerResponse) => void = () => undefined;
  beforeAll(async () => {
    server = createServer((_req, res) => { answer(res); });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const ask = async (index: string): Promise<BuilderError> => {
    const home = await tempDir("index-");
    const err = await fetchEsphomeVersions({ env: bare(home, { PIP_INDEX_URL: index }), timeoutMs: 2000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BuilderError);
    expect((err as BuilderError).code).toBe("index_unavailable");
    return err as BuilderError;
  };

  it("an error status: names the index and the status, never the credentials in its URL", async () => {
    let auth: string | undefined;
    answer = (res) => {
      auth = res.req.headers.authorization;
      res.writeHead(503, "Service Unavailable").end();
    };
    const err = await ask(`http://user:secret@127.0.0.1:${base.split(":").pop() ?? ""}/simple`);
    // pip's URL credentials reach the index as HTTP Basic.
    expect(auth).toBe(`Basic ${Buffer.from("user:secret").toString("base64")}`);
    expect(err.message).toContain("answered 503");
    expect(err.message).not.toContain("secret");
    expect(err.message).toContain("PIP_INDEX_URL");
  });

  it("an answer that is not a package list", async () => {
    answer = (res) => { res.writeHead(200, { "content-type": "application/vnd.pypi.simple.v1+json" }).end("{not json"); };
    expect((await ask(`${base}/simple`)).message).toContain("not a package list");
  });

  it("a list without ESPHome releases", async () => {
    answer = (res) => { res.writeHead(200, { "content-type": "text/html" }).end("<html><body><a href='x'>other-1.0.tar.gz</a></body></html>"); };
    expect((await ask(`${base}/simple`)).message).toContain("lists no ESPHome release");
  });

  it("a setting that is not a URL", async () => {
    expect((await ask("not a url")).message).toContain("is not a URL");
  });

  it("nothing listening", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    expect((await ask(`http://127.0.0.1:${port}/simple`)).message).toContain("could not be reached");
  });

  it("an index that does not answer in time", async () => {
    answer = () => undefined;
    expect((await ask(`${base}/simple`)).message).toMatch(/could not be reached: .*(timeout|aborted)/i);
  });
});
