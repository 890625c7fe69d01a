/**
 * A real mDNS round trip between two builders' Discovery instances, and
 * between two whole builder processes, each in its own network namespace
 * (two LAN hosts joined by a veth pair). Nothing
 * is sent in the root namespace: each peer process binds inside its
 * namespace and multicasts only on its veth. Needs root and `ip netns`
 * (iproute2); skipped with the reason otherwise.
 */
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AdvertiseInfo, DiscoveredHost } from "../../../src/remote-build/discovery/discovery.ts";
import type { DiscoveryTxt } from "../../../src/remote-build/discovery/txt.ts";
import { createLanPair, type LanPair, NODE_BIN, netnsUnavailableReason, spawnInNetns } from "../../helpers/netns.ts";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import { STAND_IN } from "../../helpers/config.ts";
import { JsonLines } from "../../helpers/json-lines.ts";
import { missingTool } from "../../helpers/tools.ts";

const PEER_SCRIPT = path.resolve(import.meta.dirname, "../../helpers/netns-discovery-peer.ts");
const WATCH_SCRIPT = path.resolve(import.meta.dirname, "../../helpers/netns-api-watch.ts");
const MAIN = path.resolve(import.meta.dirname, "../../../src/main.ts");
const skipReason = netnsUnavailableReason();

type PeerEvent =
  | { event: "started" }
  | { event: "added"; host: DiscoveredHost }
  | { event: "removed"; name: string }
  | { event: "done"; op: string; error?: string };

/** A Discovery in a child process inside a namespace, driven over stdin/stdout JSON lines. */
class Peer {
  readonly events: PeerEvent[] = [];
  stderr = "";
  readonly #child: ChildProcessWithoutNullStreams;
  #exited = false;
  #waiters: (() => void)[] = [];

  constructor(ns: string, config: object) {
    this.#child = spawnInNetns(ns, [NODE_BIN, PEER_SCRIPT, JSON.stringify(config)]);
    let buffered = "";
    this.#child.stdout.setEncoding("utf8");
    this.#child.stdout.on("data", (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf("\n")) !== -1) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.trim() !== "") this.events.push(JSON.parse(line) as PeerEvent);
      }
      this.#wake();
    });
    this.#child.stderr.setEncoding("utf8");
    this.#child.stderr.on("data", (chunk: string) => {
      this.stderr += chunk;
    });
    this.#child.on("exit", () => {
      this.#exited = true;
      this.#wake();
    });
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /** The first event at index >= `from` matching `predicate`; its index is returned too. */
  async waitFor<T extends PeerEvent>(
    predicate: (e: PeerEvent) => e is T,
    what: string,
    from = 0,
    timeoutMs = 15_000,
  ): Promise<{ event: T; index: number }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (let i = from; i < this.events.length; i++) {
        const e = this.events[i]!;
        if (predicate(e)) return { event: e, index: i };
      }
      if (this.#exited) throw new Error(`peer exited while waiting for ${what}\n${this.stderr}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; events: ${JSON.stringify(this.events)}\n${this.stderr}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  send(command: object): void {
    this.#child.stdin.write(JSON.stringify(command) + "\n");
  }

  /** Run one command and wait for its `done` line. */
  async command(command: { op: string; [key: string]: unknown }): Promise<void> {
    const from = this.events.length;
    this.send(command);
    const { event } = await this.waitFor(
      (e): e is Extract<PeerEvent, { event: "done" }> => e.event === "done" && e.op === command.op,
      `done ${command.op}`,
      from,
    );
    expect(event.error).toBeUndefined();
  }

  kill(): void {
    if (!this.#exited) this.#child.kill("SIGKILL");
  }

  get exited(): boolean {
    return this.#exited;
  }
}

const isAdded =
  (name: string, check: (h: DiscoveredHost) => boolean = () => true) =>
  (e: PeerEvent): e is Extract<PeerEvent, { event: "added" }> =>
    e.event === "added" && e.host.name === name && check(e.host);
const isRemoved =
  (name: string) =>
  (e: PeerEvent): e is Extract<PeerEvent, { event: "removed" }> =>
    e.event === "removed" && e.name === name;
const isStarted = (e: PeerEvent): e is Extract<PeerEvent, { event: "started" }> => e.event === "started";

const PIN_A = "a1".repeat(32);
const PIN_A2 = "c3".repeat(32);
const PIN_B = "b2".repeat(32);
const NAME_A = "esphome-builder-aaaa1111";
const NAME_B = "esphome-builder-bbbb2222";

function txt(friendly: string, pin?: string, port?: number): DiscoveryTxt {
  return {
    server_version: "0.1.0",
    esphome_version: "2026.6.5",
    friendly_name: friendly,
    ...(pin === undefined ? {} : { pin_sha256: pin }),
    ...(port === undefined ? {} : { remote_build_port: port }),
  };
}

if (missingTool(skipReason === null, `network namespaces (${skipReason})`)) {
  describe("discovery over multicast between two network namespaces", () => {
    it.skip(`skipped: ${skipReason}`, () => undefined);
  });
} else {
  describe("discovery over multicast between two network namespaces", () => {
    let lan: LanPair | undefined;
    let a: Peer | undefined;
    let b: Peer | undefined;

    beforeAll(async () => {
      lan = createLanPair();
      const advA: AdvertiseInfo = { instanceName: NAME_A, port: 6052, txt: txt("Builder A", PIN_A, 6055) };
      const advB: AdvertiseInfo = { instanceName: NAME_B, port: 16052, txt: txt("Builder B \u{1F527}", PIN_B, 16055) };
      a = new Peer(lan.nsA, { interface: lan.addrA, refreshIntervalMs: 2_000, advertise: advA });
      b = new Peer(lan.nsB, { interface: lan.addrB, refreshIntervalMs: 2_000, advertise: advB });
      await a.waitFor(isStarted, "peer A to start");
      await b.waitFor(isStarted, "peer B to start");
    });

    afterAll(() => {
      a?.kill();
      b?.kill();
      lan?.destroy();
    });

    it("each side discovers the other with its TXT, and never itself", async () => {
      const { event: seenByA } = await a!.waitFor(isAdded(NAME_B), "A to discover B");
      const { event: seenByB } = await b!.waitFor(isAdded(NAME_A), "B to discover A");
      expect(seenByA.host).toEqual({
        name: NAME_B,
        hostname: `${NAME_B}.local`,
        port: 16052,
        addresses: [lan!.addrB],
        server_version: "0.1.0",
        esphome_version: "2026.6.5",
        friendly_name: "Builder B \u{1F527}",
        pin_sha256: PIN_B,
        remote_build_port: 16055,
      });
      expect(seenByB.host).toEqual({
        name: NAME_A,
        hostname: `${NAME_A}.local`,
        port: 6052,
        addresses: [lan!.addrA],
        server_version: "0.1.0",
        esphome_version: "2026.6.5",
        friendly_name: "Builder A",
        pin_sha256: PIN_A,
        remote_build_port: 6055,
      });
      // Let a refresh round pass: answers to re-queries are not new events, and
      // our own advertisement (looped back) never shows up.
      await new Promise((r) => setTimeout(r, 2_500));
      expect(a!.events.filter((e) => e.event === "added" && e.host.name === NAME_A)).toEqual([]);
      expect(b!.events.filter((e) => e.event === "added" && e.host.name === NAME_B)).toEqual([]);
      expect(b!.events.filter((e) => e.event === "added" && e.host.name === NAME_A)).toHaveLength(1);
      // The real bonjour-service factory found multicast-dns's emitter to catch socket errors on.
      expect(a!.stderr).not.toContain("internals changed");
      expect(a!.stderr).toContain(`mDNS discovery started on ${lan!.addrA}`);
    });

    it("a new pin and listener port are re-advertised and seen by the other side", async () => {
      const from = b!.events.length;
      await a!.command({ op: "update", txt: txt("Builder A", PIN_A2, 6099) });
      const { event } = await b!.waitFor(isAdded(NAME_A, (h) => h.pin_sha256 === PIN_A2), "B to see A's new pin", from);
      expect(event.host.remote_build_port).toBe(6099);
      expect(event.host.friendly_name).toBe("Builder A");
    });

    it("the listener going down drops pin and port from the TXT", async () => {
      const from = b!.events.length;
      await a!.command({ op: "update", txt: txt("Builder A") });
      const { event } = await b!.waitFor(isAdded(NAME_A, (h) => h.pin_sha256 === null), "B to see A without a pin", from);
      expect(event.host.remote_build_port).toBeNull();
    });

    it("unadvertising is seen as removal; advertising again as an addition", async () => {
      let from = b!.events.length;
      await a!.command({ op: "unadvertise" });
      await b!.waitFor(isRemoved(NAME_A), "B to see A removed", from);
      from = b!.events.length;
      await a!.command({
        op: "advertise",
        info: { instanceName: NAME_A, port: 6052, txt: txt("Builder A", PIN_A, 6055) },
      });
      const { event } = await b!.waitFor(isAdded(NAME_A), "B to see A again", from);
      expect(event.host.pin_sha256).toBe(PIN_A);
    });

    it("stopping sends a goodbye the other side sees as removal", async () => {
      const from = a!.events.length;
      await b!.command({ op: "stop" });
      await a!.waitFor(isRemoved(NAME_B), "A to see B removed", from);
    });
  });
}


type Snapshot = { identity: { pin_sha256: string; listener_port: number | null }; hosts: DiscoveredHost[] };

if (skipReason === null) {
  describe("two whole builders, each in its own network namespace", () => {
    it("discover each other over mDNS: name, address, pin and peer-link port", async () => {
      const lan = createLanPair();
      const children: ChildProcessWithoutNullStreams[] = [];
      try {
        const start = async (ns: string, addr: string, label: string): Promise<{ port: number; watch: JsonLines }> => {
          const dir = await mkdtemp(path.join(os.tmpdir(), "netns-builder-"));
          const builder = new JsonLines(
            spawnInNetns(ns, [NODE_BIN, MAIN, "--config-dir", dir, "--host", addr, "--port", "0", "--peer-link-host", addr, "--peer-link-port", "0", "--esphome", STAND_IN, "--label", label]),
          );
          children.push(builder.child);
          const listening = await builder.find((l) => l.event === "listening" || "peer_link_port" in l, `${label} to listen`);
          const watch = new JsonLines(spawnInNetns(ns, [NODE_BIN, WATCH_SCRIPT, addr, String(listening.port)]));
          children.push(watch.child);
          return { port: listening.port as number, watch };
        };
        const a = await start(lan.nsA, lan.addrA, "Builder A");
        const b = await start(lan.nsB, lan.addrB, "Builder B");
        const snapshotOf = async (w: JsonLines): Promise<Snapshot> => {
          const init = await w.find((f) => f.event === "initial_state", "initial_state");
          return (init.data as { remote_build: Snapshot }).remote_build;
        };
        const aState = await snapshotOf(a.watch);
        const bState = await snapshotOf(b.watch);
        // From the initial state or a later remote_build_host_added event, whichever has it.
        const hostsIn = (f: Record<string, unknown>): DiscoveredHost[] =>
          f.event === "initial_state" ? (f.data as { remote_build: Snapshot }).remote_build.hosts : f.event === "remote_build_host_added" ? [(f.data as { host: DiscoveredHost }).host] : [];
        const discovered = async (w: JsonLines, pin: string, what: string): Promise<DiscoveredHost> => {
          const frame = await w.find((f) => hostsIn(f).some((h) => h.pin_sha256 === pin), what);
          return hostsIn(frame).find((h) => h.pin_sha256 === pin)!;
        };
        const bByA = await discovered(a.watch, bState.identity.pin_sha256, "A to discover B");
        const aByB = await discovered(b.watch, aState.identity.pin_sha256, "B to discover A");
        expect(bByA).toMatchObject({ addresses: [lan.addrB], port: b.port, friendly_name: "Builder B", remote_build_port: bState.identity.listener_port });
        expect(aByB).toMatchObject({ addresses: [lan.addrA], port: a.port, friendly_name: "Builder A", remote_build_port: aState.identity.listener_port });
        // Neither lists itself.
        expect(a.watch.items.flatMap(hostsIn).filter((h) => h.pin_sha256 === aState.identity.pin_sha256)).toEqual([]);
        expect(b.watch.items.flatMap(hostsIn).filter((h) => h.pin_sha256 === bState.identity.pin_sha256)).toEqual([]);
      } finally {
        for (const c of children) c.kill("SIGTERM");
        await new Promise((r) => setTimeout(r, 300));
        lan.destroy();
      }
    }, 60_000);
  });
}
