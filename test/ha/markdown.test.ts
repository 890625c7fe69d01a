/**
 * Peer-supplied text in Home Assistant's pairing notification is inert
 * Markdown: hostile labels (links, HTML, code, new blocks, control and bidi
 * characters, overlong) render as their literal text, and the only link in
 * the notification is the builder's own. Rendering uses a real CommonMark
 * renderer (markdown-it-py, in the test venv); GFM's autolinks, which Home
 * Assistant's frontend also applies, are checked on the source.
 */
import { execFileSync } from "node:child_process";
import { afterEach, beforeEach, describe, expect, it, onTestFinished, vi } from "vitest";
import WebSocket from "ws";
import { Builder } from "../../src/builder.ts";
import { markdownText, NOTIFICATION_TEXT_MAX } from "../../src/ha/markdown.ts";
import { pairNotification } from "../../src/ha/publisher.ts";
import { NoiseHandshake } from "../../src/remote-build/transport/noise.ts";
import { generateStaticKey } from "../../src/remote-build/transport/noise-primitives.ts";
import { configDir, testConfig } from "../helpers/builder.ts";
import { testPython } from "../helpers/python.ts";
import { waitFor } from "../helpers/tmp.ts";
import { FakeSupervisor } from "./fake-supervisor.ts";
import { freePort } from "./ha-core.ts";

const PANEL = "/hassio/ingress/abc_esphome_builder";
const PIN = "0f".repeat(32);

const HOSTILE: [string, string][] = [
  ["a Markdown link", "[Approve here](http://evil.example/phish)"],
  ["an image", "![x](http://evil.example/x.png)"],
  ["a reference link", "[x][1]\n\n[1]: http://evil.example"],
  ["an HTML anchor", '<a href="http://evil.example">Approve</a>'],
  ["an HTML comment and script", "<!-- x --><script>alert(1)</script>"],
  ["a bare URL (GFM autolink)", "see http://evil.example now"],
  ["a www address (GFM autolink)", "www.evil.example"],
  ["an e-mail address (GFM autolink)", "admin@evil.example"],
  ["an angle autolink", "<http://evil.example>"],
  ["backticks", "`code` and ```fence```"],
  ["emphasis and a heading after a newline", "**bold** _it_\n# Approve now"],
  ["a list and a quote after newlines", "ok\r\n- item\n> quote"],
  ["a table", "| a | b |\n|---|---|\n| 1 | 2 |"],
  ["an entity", "&lt;b&gt; &#x41;"],
  ["backslashes", "a\\]b\\\\"],
  ["control characters", "bell\u0007 esc\u001b[31m nul\u0000 del\u007f c1\u0085"],
  ["bidi overrides", "\u202eevil.exe\u202c \u2066iso\u2069"],
  ["line separators", "one\u2028two\u2029three"],
  ["a very long label", "A".repeat(200)],
];

/** Renders Markdown sources with markdown-it-py (CommonMark, HTML allowed, as Home Assistant allows some). */
function render(sources: string[]): string[] {
  const script = "import json,sys\nfrom markdown_it import MarkdownIt\nmd=MarkdownIt('commonmark')\nprint(json.dumps([md.render(s) for s in json.load(sys.stdin)]))";
  return JSON.parse(execFileSync(testPython(), ["-c", script], { input: JSON.stringify(sources), encoding: "utf8" })) as string[];
}

/** The rendered HTML's tags, and its text with tags removed and entities decoded. */
function inspect(html: string): { tags: string[]; hrefs: string[]; text: string } {
  const tags = [...html.matchAll(/<\/?([a-zA-Z0-9]+)/g)].map((m) => m[1]!.toLowerCase());
  const hrefs = [...html.matchAll(/href="([^"]*)"/g)].map((m) => m[1]!);
  const text = html
    .replace(/<[^>]*>/g, "")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&amp;/g, "&");
  return { tags, hrefs, text };
}

/** What GFM would turn into a link on its own: a scheme, `www.` or an address, unescaped. */
function gfmAutolinkTriggers(source: string): string[] {
  return [...source.matchAll(/(?<!\\)(?:https?|ftp):\/\/|(?<![\\\w])www\.|[\w.+-]+@[\w-]+\.\w/g)].map((m) => m[0]);
}

/** What a reader should see of a hostile label: no control or bidi characters, one space for each run of white space. */
function visible(label: string): string {
  // eslint-disable-next-line no-control-regex
  return label.replace(/[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu, " ").replace(/\s+/gu, " ").trim();
}

describe("markdownText", () => {
  it("escapes every ASCII punctuation character and leaves letters, digits, spaces and emoji", () => {
    expect(markdownText("Kitchen Pi 2 \u{1F916}")).toBe("Kitchen Pi 2 \u{1F916}");
    expect(markdownText("[x](y)")).toBe("\\[x\\]\\(y\\)");
    expect(markdownText("a_b*c`d<e>f&g")).toBe("a\\_b\\*c\\`d\\<e\\>f\\&g");
  });

  it("removes control, separator and bidi characters and folds white space", () => {
    expect(markdownText("  a\n\n\tb\u0000c\u202ed\u2028e  ")).toBe("a b c d e");
    expect(markdownText("\n\u0007\u202e ")).toBe("");
  });

  it(`cuts to ${NOTIFICATION_TEXT_MAX} code points with an ellipsis, never splitting a surrogate pair`, () => {
    expect(markdownText("A".repeat(200))).toBe(`${"A".repeat(NOTIFICATION_TEXT_MAX - 1)}…`);
    const emoji = markdownText("\u{1F916}".repeat(100));
    expect(Array.from(emoji)).toHaveLength(NOTIFICATION_TEXT_MAX);
    expect(emoji).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/);
    expect(markdownText("A".repeat(NOTIFICATION_TEXT_MAX))).toBe("A".repeat(NOTIFICATION_TEXT_MAX));
  });
});

describe("the pairing notification with a hostile label", () => {
  const notes = HOSTILE.map(([, label]) => pairNotification({ dashboard_id: "evil_ID-1", pin_sha256: PIN, label, peer_ip: "192.0.2.7" }, PANEL));
  const rendered = render(notes.map((n) => String(n.message)));

  it.each(HOSTILE.map(([what, label], i) => [what, label, i] as const))("%s renders as literal text; the only link is the builder's", (_what, label, i) => {
    const source = String(notes[i]!.message);
    const { tags, hrefs, text } = inspect(rendered[i]!);
    expect(hrefs).toEqual([PANEL]);
    expect(new Set(tags)).toEqual(new Set(["p", "strong", "a"]));
    expect(tags.filter((t) => t === "p")).toHaveLength(6); // three paragraphs, as without a label
    expect(gfmAutolinkTriggers(source)).toEqual([]);
    const shown = visible(label);
    const expected = Array.from(shown).length > NOTIFICATION_TEXT_MAX ? `${Array.from(shown).slice(0, NOTIFICATION_TEXT_MAX - 1).join("")}…` : shown;
    expect(text.startsWith(`${expected} (192.0.2.7) asks to use this builder`)).toBe(true);
  });

  it("falls back to the (escaped) dashboard_id when the label is empty after cleaning", () => {
    const note = pairNotification({ dashboard_id: "a_b_c", pin_sha256: PIN, label: "\u202e\n", peer_ip: "::1" }, null);
    expect(note.message).toMatch(/^\*\*a\\_b\\_c\*\* \(\\:\\:1\)/);
    expect(inspect(render([String(note.message)])[0]!).text).toContain("a_b_c (::1) asks");
  });
});

describe("through a builder and the Supervisor's Core proxy", () => {
  beforeEach(() => { vi.stubEnv("ESPHOME_STANDIN_FAIL", ""); });
  afterEach(() => { vi.unstubAllEnvs(); });

  it("a pair request over the real peer link raises a notification whose label cannot link anywhere", { timeout: 30_000 }, async () => {
    const supervisor = new FakeSupervisor("sv-token", await freePort());
    await supervisor.start();
    onTestFinished(async () => { await supervisor.stop(); });
    const builder = new Builder(
      testConfig(await configDir(), { addon: true, supervisorToken: "sv-token", supervisorUrl: supervisor.url, portFromSupervisor: true, ingressAddresses: ["127.0.0.2"] }),
      { haTimings: { retryMinMs: 100, retryMaxMs: 500, debounceMs: 50, publishRetryMinMs: 100 } },
    );
    await builder.start();
    onTestFinished(async () => { await builder.stop(); });
    await builder.remote.receiver.setEnabled(true);
    builder.remote.receiver.setPairingWindow("test", true);

    const label = "[Approve](http://evil.x)\n<a href=http://evil.x>x</a> `y`";
    const ws = new WebSocket(`ws://127.0.0.1:${builder.remote.receiver.port!}/remote-build/peer-link`);
    const inbound: Buffer[] = [];
    ws.on("message", (d: Buffer) => inbound.push(d));
    await new Promise((r) => ws.once("open", r));
    const hs = NoiseHandshake.initiator(generateStaticKey());
    ws.send(hs.writeMessage(Buffer.from(JSON.stringify({ intent: "pair_request" }))));
    await waitFor(() => inbound.length > 0, 5000, "handshake message 2");
    hs.readMessage(inbound.shift()!);
    ws.send(hs.writeMessage(Buffer.from(JSON.stringify({ dashboard_id: "evilPeer_0001", label }))));
    await new Promise((r) => ws.once("close", r));

    const created = () => supervisor.requests.find((r) => r.path === "/core/api/services/persistent_notification/create");
    await waitFor(() => created() !== undefined, 10_000, "the notification");
    const message = (created()!.body as { message: string }).message;
    const { hrefs, tags, text } = inspect(render([message])[0]!);
    // At most the builder's own link (the add-on's panel address, when known).
    expect(hrefs.filter((h) => h.includes("evil"))).toEqual([]);
    expect(hrefs.length).toBeLessThanOrEqual(1);
    expect(tags.filter((t) => !["p", "strong", "a"].includes(t))).toEqual([]);
    expect(gfmAutolinkTriggers(message)).toEqual([]);
    expect(text).toContain(`${visible(label)} (127.0.0.1) asks to use this builder`);
  });
});
