/**
 * Discovery without any network: TXT encoding and validation, service
 * parsing, and the Discovery state machine over an in-memory mDNS link.
 *
 * The fake bonjour factory hands out bonjour-service's REAL `Service` and
 * `Browser` classes; only multicast-dns (the socket) is replaced by an
 * in-memory link that answers PTR queries and delivers announcements and
 * goodbyes asynchronously, like a socket would. So the service objects
 * Discovery sees are exactly what the library produces from the wire.
 */
import { EventEmitter } from "node:events";
import Bonjour from "bonjour-service";
import { describe, expect, it } from "vitest";
import { type BonjourFactory, type BonjourLike, type BonjourOptions, type BonjourPublishConfig } from "../../../src/mdns/bonjour.ts";
import { type DiscoveredHost, Discovery, type DiscoveryDeps, type DiscoveryEvent } from "../../../src/remote-build/discovery/discovery.ts";
import { decodeTxt, type DiscoveryTxt, encodeTxt, hostFromService, MAX_DISCOVERED_HOSTS } from "../../../src/remote-build/discovery/txt.ts";
import { BuilderError } from "../../../src/errors.ts";
import { waitFor } from "../../helpers/tmp.ts";

const PIN = "0123456789abcdef".repeat(4);
const PIN2 = "fedcba9876543210".repeat(4);
const TYPE_PTR = "_esphomebuilder._tcp.local";

// ---------------------------------------------------------------------------
// The in-memory link

interface Rr {
  name: string;
  type: "PTR" | "SRV" | "TXT" | "A" | "AAAA";
  ttl: number;
  data: unknown;
}

/** Stands in for multicast-dns: the `mdns` object bonjour-service's Browser talks to. */
class FakeLink extends EventEmitter {
  /** Records answered for each published instance (fqdn -> records, source address). */
  readonly zone = new Map<string, { records: Rr[]; from: string }>();
  queries = 0;

  /** Browser API: `mdns.query(name, type)`. Answers asynchronously from the zone. */
  query(name: string, type: string): void {
    this.queries++;
    setImmediate(() => {
      for (const { records, from } of this.zone.values()) {
        if (type === "PTR" && records.some((r) => r.type === "PTR" && r.name === name)) this.deliver(records, from);
      }
    });
  }

  /** Put an instance on the link (announce) and keep answering for it. */
  announce(records: Rr[], from: string): void {
    const ptr = records.find((r) => r.type === "PTR" && r.name === TYPE_PTR);
    if (ptr === undefined) throw new Error("no PTR");
    this.zone.set(ptr.data as string, { records, from });
    setImmediate(() => {
      this.deliver(records, from);
    });
  }

  /** Take an instance off the link with a goodbye (TTL 0), then call back. */
  goodbye(fqdn: string, callback?: () => void): void {
    const entry = this.zone.get(fqdn);
    this.zone.delete(fqdn);
    setImmediate(() => {
      if (entry !== undefined) this.deliver(entry.records.map((r) => ({ ...r, ttl: 0 })), entry.from);
      callback?.();
    });
  }

  /** Take an instance off the link silently (the host died). */
  vanish(fqdn: string): void {
    this.zone.delete(fqdn);
  }

  private deliver(records: Rr[], from: string): void {
    this.emit("response", { answers: records, additionals: [] }, { address: from, family: "IPv4", port: 5353, size: 300 });
  }
}

/** Records of an arbitrary (possibly hostile) instance, as a raw responder would send them. */
function rawRecords(opts: {
  name: string;
  port?: number;
  target?: string;
  txt?: (string | Buffer)[];
  addresses?: string[];
}): Rr[] {
  const fqdn = `${opts.name}.${TYPE_PTR}`;
  const target = opts.target ?? `${opts.name}.local`;
  return [
    { name: TYPE_PTR, type: "PTR", ttl: 4500, data: fqdn },
    { name: fqdn, type: "SRV", ttl: 120, data: { port: opts.port ?? 6052, target } },
    { name: fqdn, type: "TXT", ttl: 4500, data: (opts.txt ?? []).map((t) => (typeof t === "string" ? Buffer.from(t) : t)) },
    ...(opts.addresses ?? []).map((a): Rr => ({ name: target, type: "A", ttl: 120, data: a })),
  ];
}

/**
 * A bonjour-service stand-in with the library's API shapes: `publish(config)`
 * returns a real `Service` whose `stop(cb)` sends a goodbye; `find(config,
 * onup)` returns a real `Browser`; `destroy(cb)`.
 */
class FakeBonjour implements BonjourLike {
  readonly published: BonjourPublishConfig[] = [];
  readonly browsers: InstanceType<typeof Bonjour.Browser>[] = [];
  destroyed = false;
  live = 0;
  readonly link: FakeLink;
  readonly address: string;
  readonly opts: BonjourOptions;

  constructor(link: FakeLink, address: string, opts: BonjourOptions) {
    this.link = link;
    this.address = address;
    this.opts = opts;
  }

  publish(config: BonjourPublishConfig): InstanceType<typeof Bonjour.Service> {
    this.published.push(config);
    const service: InstanceType<typeof Bonjour.Service> = new Bonjour.Service(
      config,
      () => {
        // The library's records, with this fake host's address instead of the machine's.
        const records = (service.records() as Rr[]).filter((r) => r.type !== "A" && r.type !== "AAAA");
        records.push({ name: service.host, type: "A", ttl: 120, data: this.address });
        this.link.announce(records, this.address);
        this.live++;
      },
      (callback?: () => void) => {
        this.live--;
        this.link.goodbye(service.fqdn, callback);
      },
    );
    (service.start as () => void)();
    return service;
  }

  find(config: { type: string; protocol: "tcp" }, onup: (service: unknown) => void): InstanceType<typeof Bonjour.Browser> {
    const browser = new Bonjour.Browser(this.link, config, onup);
    this.browsers.push(browser);
    return browser;
  }

  destroy(callback?: () => void): void {
    this.destroyed = true;
    setImmediate(() => callback?.());
  }
}

interface Harness {
  discovery: Discovery;
  events: DiscoveryEvent[];
  bonjours: FakeBonjour[];
  clock: { t: number };
}

let nextAddress = 10;

function harness(link: FakeLink, deps: Partial<DiscoveryDeps> = {}): Harness {
  const events: DiscoveryEvent[] = [];
  const bonjours: FakeBonjour[] = [];
  const clock = { t: 1_000_000 };
  const address = `192.0.2.${nextAddress++}`;
  const factory: BonjourFactory = (opts) => {
    const b = new FakeBonjour(link, address, opts);
    bonjours.push(b);
    return b;
  };
  const discovery = new Discovery({
    bonjourFactory: factory,
    onChange: (e) => events.push(e),
    now: () => clock.t,
    refreshIntervalMs: 3_600_000,
    ...deps,
  });
  return { discovery, events, bonjours, clock };
}

function txt(friendly: string, pin?: string, port?: number): DiscoveryTxt {
  return {
    server_version: "0.1.0",
    esphome_version: "2026.6.5",
    friendly_name: friendly,
    ...(pin === undefined ? {} : { pin_sha256: pin }),
    ...(port === undefined ? {} : { remote_build_port: port }),
  };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await tick();
}

function added(events: DiscoveryEvent[], name?: string): DiscoveredHost[] {
  return events.flatMap((e) => (e.type === "added" && (name === undefined || e.host.name === name) ? [e.host] : []));
}
function removed(events: DiscoveryEvent[]): string[] {
  return events.flatMap((e) => (e.type === "removed" ? [e.name] : []));
}

// ---------------------------------------------------------------------------

describe("encodeTxt / decodeTxt", () => {
  it("round-trips with and without the peer-link listener", () => {
    const on = encodeTxt(txt("Kitchen builder", PIN, 6055));
    expect(on).toEqual({
      server_version: "0.1.0",
      esphome_version: "2026.6.5",
      friendly_name: "Kitchen builder",
      pin_sha256: PIN,
      remote_build_port: "6055",
    });
    expect(decodeTxt(on)).toEqual({ ...txt("Kitchen builder", PIN, 6055) });

    const off = encodeTxt(txt("Kitchen builder"));
    expect(Object.keys(off)).toEqual(["server_version", "esphome_version", "friendly_name"]);
    expect(decodeTxt(off)).toEqual({ ...txt("Kitchen builder"), pin_sha256: null, remote_build_port: null });
  });

  it("round-trips through raw TXT entries (key=value byte strings)", () => {
    const raw = Object.entries(encodeTxt(txt("Büro \u{1F527}", PIN, 1))).map(([k, v]) => Buffer.from(`${k}=${v}`));
    expect(decodeTxt(raw)).toEqual(txt("Büro \u{1F527}", PIN, 1));
  });

  it("refuses to advertise a bad pin or port, or one without the other", () => {
    expect(() => encodeTxt(txt("x", PIN.toUpperCase(), 6055))).toThrow(BuilderError);
    expect(() => encodeTxt(txt("x", PIN.slice(1), 6055))).toThrow(/64 lowercase hex/);
    expect(() => encodeTxt(txt("x", PIN, 0))).toThrow(/1\.\.65535/);
    expect(() => encodeTxt(txt("x", PIN, 65536))).toThrow(/1\.\.65535/);
    expect(() => encodeTxt(txt("x", PIN, 60.5))).toThrow(/1\.\.65535/);
    expect(() => encodeTxt({ ...txt("x"), pin_sha256: PIN })).toThrow(/go together/);
    expect(() => encodeTxt({ ...txt("x"), remote_build_port: 6055 })).toThrow(/go together/);
  });

  it("caps advertised strings to 128 code points and 255 bytes per entry, without control characters", () => {
    expect(encodeTxt(txt("a".repeat(500))).friendly_name).toBe("a".repeat(128));
    const emoji = encodeTxt(txt("\u{1F527}".repeat(100))).friendly_name!;
    expect(Buffer.byteLength(`friendly_name=${emoji}`)).toBeLessThanOrEqual(255);
    expect(Array.from(emoji).every((c) => c === "\u{1F527}")).toBe(true);
    expect(encodeTxt(txt("line\none\u0007\u009b")).friendly_name).toBe("lineone");
  });

  it("caps overlong strings from the network", () => {
    const decoded = decodeTxt({ server_version: "9".repeat(10_000), esphome_version: "\u{1F527}".repeat(300), friendly_name: "ok" });
    expect(decoded.server_version).toBe("9".repeat(128));
    expect(Array.from(decoded.esphome_version)).toHaveLength(128);
    expect(decoded.esphome_version.startsWith("\u{1F527}")).toBe(true);
    expect(decodeTxt({ friendly_name: "evil\u001b[31mred\r\n" }).friendly_name).toBe("evil[31mred");
  });

  it("reads a pin by the one pin rule: 64 hex digits, lowercased", () => {
    for (const bad of [PIN.slice(2), PIN + "00", "g".repeat(64), ` ${PIN.slice(1)}`, `${PIN.slice(1)}\n`, ""]) {
      expect(decodeTxt({ pin_sha256: bad, remote_build_port: "6055" }).pin_sha256).toBeNull();
    }
    expect(decodeTxt({ pin_sha256: PIN }).pin_sha256).toBe(PIN);
    expect(decodeTxt({ pin_sha256: PIN.toUpperCase() }).pin_sha256).toBe(PIN);
  });

  it("accepts only 1..65535 as a port", () => {
    for (const bad of ["0", "65536", "-1", "12a", "1e3", " 80", "80 ", "0x50", "6055.0", "", "999999"]) {
      expect(decodeTxt({ remote_build_port: bad }).remote_build_port).toBeNull();
    }
    expect(decodeTxt({ remote_build_port: "1" }).remote_build_port).toBe(1);
    expect(decodeTxt({ remote_build_port: "65535" }).remote_build_port).toBe(65535);
    expect(decodeTxt({ remote_build_port: 6055 }).remote_build_port).toBeNull(); // not a TXT string
  });

  it("treats values that are not UTF-8 as absent", () => {
    const bad = Buffer.from([0xff, 0xfe, 0xc3]);
    const raw = [
      Buffer.concat([Buffer.from("friendly_name="), bad]),
      Buffer.concat([Buffer.from("pin_sha256="), Buffer.from(PIN.slice(0, 60)), bad]),
      Buffer.concat([Buffer.from("remote_build_port="), bad]),
      Buffer.concat([bad, Buffer.from("=x")]),
      Buffer.from("server_version=1.2.3"),
    ];
    expect(decodeTxt(raw)).toEqual({
      server_version: "1.2.3",
      esphome_version: "",
      friendly_name: "",
      pin_sha256: null,
      remote_build_port: null,
    });
    // The same as Buffer values of a decoded object (bonjour-service's binary mode).
    expect(decodeTxt({ friendly_name: bad, server_version: Buffer.from("2.0") })).toMatchObject({ friendly_name: "", server_version: "2.0" });
  });

  it("reads keys case-insensitively, first occurrence wins, bare keys have no value", () => {
    const raw = ["Friendly_Name=first", "friendly_name=second", "PIN_SHA256", `pin_sha256=${PIN}`, "remote_build_port=", "=orphan"];
    expect(decodeTxt(raw)).toMatchObject({ friendly_name: "first", pin_sha256: null, remote_build_port: null });
  });

  it("never throws on junk", () => {
    const empty = { server_version: "", esphome_version: "", friendly_name: "", pin_sha256: null, remote_build_port: null };
    for (const junk of [null, undefined, 42, "friendly_name=x", [null, 7, {}, []], { __proto__: { friendly_name: "inherited" } }, new Map()]) {
      expect(decodeTxt(junk)).toEqual(empty);
    }
    expect(decodeTxt(JSON.parse('{"__proto__":{"x":1},"friendly_name":"own"}'))).toMatchObject({ friendly_name: "own" });
    const many = Array.from({ length: 100_000 }, (_, i) => `k${i}=v`);
    expect(decodeTxt([...many, "friendly_name=late"]).friendly_name).toBe("");
  });
});

// ---------------------------------------------------------------------------

/** What bonjour-service's Browser emits for a service (see its buildServicesFor). */
function browserService(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const rawTxt = Object.entries(encodeTxt(txt("Garage", PIN, 6055))).map(([k, v]) => Buffer.from(`${k}=${v}`));
  return {
    addresses: ["192.168.1.20", "fe80::1", "2001:db8::20"],
    subtypes: [],
    ttl: 4500,
    lastSeen: 1_700_000_000_000,
    name: "esphome-builder-Abc_12-x",
    fqdn: "esphome-builder-Abc_12-x._esphomebuilder._tcp.local",
    host: "esphome-builder-Abc_12-x.local",
    referer: { address: "192.168.1.20", family: "IPv4", port: 5353, size: 310 },
    port: 6052,
    type: "esphomebuilder",
    protocol: "tcp",
    rawTxt,
    txt: Object.fromEntries(rawTxt.map((b) => b.toString().split(/=(.+)/).slice(0, 2))),
    ...overrides,
  };
}

describe("hostFromService", () => {
  it("maps a bonjour-service browser service", () => {
    expect(hostFromService(browserService())).toEqual({
      name: "esphome-builder-Abc_12-x",
      hostname: "esphome-builder-Abc_12-x.local",
      port: 6052,
      addresses: ["192.168.1.20", "2001:db8::20"],
      server_version: "0.1.0",
      esphome_version: "2026.6.5",
      friendly_name: "Garage",
      pin_sha256: PIN,
      remote_build_port: 6055,
    });
  });

  it("uses the decoded txt object when there is no rawTxt, and prefers rawTxt otherwise", () => {
    expect(hostFromService(browserService({ rawTxt: undefined, txt: { friendly_name: "From object" } }))?.friendly_name).toBe("From object");
    expect(hostFromService(browserService({ txt: { friendly_name: "ignored" } }))?.friendly_name).toBe("Garage");
  });

  it("keeps only usable unicast addresses, deduplicated and capped, falling back to the packet source", () => {
    const hostile = ["127.0.0.1", "0.0.0.0", "169.254.1.1", "224.0.0.251", "255.255.255.255", "::1", "::", "fe80::2", "ff02::fb",
      "::ffff:127.0.0.1", "not-an-ip", 42, null, "10.0.0.1", "10.0.0.1"];
    expect(hostFromService(browserService({ addresses: hostile }))?.addresses).toEqual(["10.0.0.1"]);
    const many = Array.from({ length: 40 }, (_, i) => `10.1.0.${i + 1}`);
    expect(hostFromService(browserService({ addresses: many }))?.addresses).toHaveLength(16);
    expect(hostFromService(browserService({ addresses: [] }))?.addresses).toEqual(["192.168.1.20"]);
    expect(hostFromService(browserService({ addresses: ["127.0.0.1"], referer: { address: "127.0.0.1" } }))?.addresses).toEqual([]);
    expect(hostFromService(browserService({ addresses: undefined, referer: undefined }))?.addresses).toEqual([]);
  });

  it("strips the trailing dot and junk from the SRV target", () => {
    expect(hostFromService(browserService({ host: "builder.local." }))?.hostname).toBe("builder.local");
    expect(hostFromService(browserService({ host: 7 }))?.hostname).toBe("");
    expect(hostFromService(browserService({ host: "x".repeat(1000) }))?.hostname).toHaveLength(255);
  });

  it("rejects what is not a usable builder advertisement", () => {
    for (const junk of [null, undefined, "svc", 5, []]) expect(hostFromService(junk)).toBeNull();
    for (const overrides of [
      { name: undefined },
      { name: "" },
      { name: "a.b" },
      { name: "x".repeat(64) },
      { name: "\u{1F527}".repeat(16) }, // 64 bytes
      { name: "bad\u0000name" },
      { port: 0 },
      { port: 65536 },
      { port: "6052" },
      { port: 1.5 },
      { type: "http" },
      { protocol: "udp" },
    ]) {
      expect(hostFromService(browserService(overrides)), JSON.stringify(overrides)).toBeNull();
    }
    expect(hostFromService(browserService({ name: "x".repeat(63) }))).not.toBeNull();
  });
});

// ---------------------------------------------------------------------------

describe("Discovery", () => {
  it("does no I/O before start() and passes the interface options to bonjour", async () => {
    const link = new FakeLink();
    const h = harness(link, { interface: "127.0.0.1" });
    await h.discovery.advertise({ instanceName: "esphome-builder-aaaa", port: 6052, txt: txt("A") });
    expect(h.bonjours).toHaveLength(0);
    expect(h.discovery.running).toBe(false);
    await h.discovery.start();
    expect(h.bonjours).toHaveLength(1);
    expect(h.bonjours[0]!.opts).toEqual({ interface: "127.0.0.1", bind: "0.0.0.0" });
    expect(h.bonjours[0]!.published).toEqual([
      {
        name: "esphome-builder-aaaa",
        type: "esphomebuilder",
        protocol: "tcp",
        port: 6052,
        host: "esphome-builder-aaaa.local",
        txt: { server_version: "0.1.0", esphome_version: "2026.6.5", friendly_name: "A" },
        probe: false,
      },
    ]);
    await h.discovery.stop();
    expect(h.bonjours[0]!.destroyed).toBe(true);

    const all = harness(link);
    await all.discovery.start();
    expect(all.bonjours[0]!.opts).toEqual({});
    await all.discovery.stop();

    const bound = harness(link, { interface: "127.0.0.1", bind: "224.0.0.251" });
    await bound.discovery.start();
    expect(bound.bonjours[0]!.opts).toEqual({ interface: "127.0.0.1", bind: "224.0.0.251" });
    await bound.discovery.stop();
  });

  it("refuses an interface address this host does not have, or that is not IPv4", async () => {
    const link = new FakeLink();
    const missing = harness(link, { interface: "203.0.113.254" });
    await expect(missing.discovery.start()).rejects.toMatchObject({ code: "unavailable" });
    expect(missing.bonjours).toHaveLength(0);
    await expect(harness(link, { interface: "::1" }).discovery.start()).rejects.toMatchObject({ code: "invalid_args" });
    await expect(harness(link, { interface: "eth0" }).discovery.start()).rejects.toMatchObject({ code: "invalid_args" });
  });

  it("validates what it advertises", async () => {
    const h = harness(new FakeLink());
    for (const instanceName of ["", "a.b", "x".repeat(64), "nul\u0000"]) {
      await expect(h.discovery.advertise({ instanceName, port: 6052, txt: txt("A") })).rejects.toMatchObject({ code: "invalid_args" });
    }
    await expect(h.discovery.advertise({ instanceName: "ok", port: 0, txt: txt("A") })).rejects.toMatchObject({ code: "invalid_args" });
    await expect(h.discovery.advertise({ instanceName: "ok", port: 6052, txt: txt("A", "nothex", 1) })).rejects.toMatchObject({
      code: "invalid_args",
    });
    await expect(h.discovery.updateTxt(txt("A"))).rejects.toMatchObject({ code: "unavailable" });
  });

  it("two builders find each other, never themselves", async () => {
    const link = new FakeLink();
    const a = harness(link);
    const b = harness(link);
    await a.discovery.advertise({ instanceName: "esphome-builder-aaaa", port: 6052, txt: txt("A", PIN, 6055) });
    await b.discovery.advertise({ instanceName: "esphome-builder-bbbb", port: 7052, txt: txt("B") });
    await a.discovery.start();
    await b.discovery.start();
    await waitFor(() => a.events.length > 0 && b.events.length > 0, 2_000, "both to discover");
    await settle();
    const bAddr = b.bonjours[0]!.address;
    expect(a.events).toEqual([
      {
        type: "added",
        host: {
          name: "esphome-builder-bbbb",
          hostname: "esphome-builder-bbbb.local",
          port: 7052,
          addresses: [bAddr],
          server_version: "0.1.0",
          esphome_version: "2026.6.5",
          friendly_name: "B",
          pin_sha256: null,
          remote_build_port: null,
        },
      },
    ]);
    expect(added(b.events)).toEqual([expect.objectContaining({ name: "esphome-builder-aaaa", pin_sha256: PIN, remote_build_port: 6055 })]);
    expect(a.discovery.hosts().map((host) => host.name)).toEqual(["esphome-builder-bbbb"]);
    expect(b.discovery.hosts().map((host) => host.name)).toEqual(["esphome-builder-aaaa"]);
    // The snapshot is a copy.
    a.discovery.hosts()[0]!.addresses.push("6.6.6.6");
    expect(a.discovery.hosts()[0]!.addresses).toEqual([bAddr]);
    await a.discovery.stop();
    await b.discovery.stop();
  });

  it("ignores an advertisement under its own name, case-insensitively", async () => {
    const link = new FakeLink();
    const a = harness(link);
    await a.discovery.start();
    link.announce(rawRecords({ name: "Esphome-Builder-Self", txt: ["friendly_name=impostor"], addresses: ["192.0.2.99"] }), "192.0.2.99");
    await waitFor(() => a.events.length === 1, 2_000, "the row");
    // Advertising under that name drops the row: it is us now.
    await a.discovery.advertise({ instanceName: "esphome-builder-self", port: 6052, txt: txt("me") });
    expect(removed(a.events)).toEqual(["Esphome-Builder-Self"]);
    a.discovery.refresh();
    await settle();
    expect(added(a.events)).toHaveLength(1);
    expect(a.discovery.hosts()).toEqual([]);
    await a.discovery.stop();
  });

  it("re-advertises on a TXT change (goodbye, then the new records) and not on an unchanged one", async () => {
    const link = new FakeLink();
    const a = harness(link);
    const b = harness(link);
    await a.discovery.advertise({ instanceName: "esphome-builder-aaaa", port: 6052, txt: txt("A") });
    await a.discovery.start();
    await b.discovery.start();
    await waitFor(() => b.events.length === 1, 2_000, "B to see A");
    expect(added(b.events)[0]).toMatchObject({ pin_sha256: null, remote_build_port: null });

    // The listener comes up: pin and port appear.
    await a.discovery.updateTxt(txt("A", PIN, 6055));
    await waitFor(() => b.events.length === 3, 2_000, "B to see the update");
    expect(b.events[1]).toEqual({ type: "removed", name: "esphome-builder-aaaa" });
    expect(b.events[2]).toMatchObject({ type: "added", host: { pin_sha256: PIN, remote_build_port: 6055 } });

    // Identity rotated and the port fell forward.
    await a.discovery.updateTxt(txt("A", PIN2, 6056));
    await waitFor(() => b.events.length === 5, 2_000, "B to see the rotation");
    expect(b.discovery.hosts()).toEqual([expect.objectContaining({ pin_sha256: PIN2, remote_build_port: 6056 })]);

    // Unchanged: nothing is sent.
    await a.discovery.updateTxt(txt("A", PIN2, 6056));
    await settle();
    expect(a.bonjours[0]!.published).toHaveLength(3);
    expect(b.events).toHaveLength(5);

    await a.discovery.stop();
    await b.discovery.stop();
  });

  it("sees a TXT change without a goodbye (another implementation's update) as an update", async () => {
    const link = new FakeLink();
    const b = harness(link);
    await b.discovery.start();
    link.announce(rawRecords({ name: "other", txt: ["friendly_name=one"], addresses: ["192.0.2.50"] }), "192.0.2.50");
    await waitFor(() => b.events.length === 1, 2_000, "added");
    link.announce(rawRecords({ name: "other", txt: ["friendly_name=two", `pin_sha256=${PIN}`, "remote_build_port=6055"], addresses: ["192.0.2.50"] }), "192.0.2.50");
    await waitFor(() => b.events.length === 2, 2_000, "updated");
    expect(b.events[1]).toMatchObject({ type: "added", host: { name: "other", friendly_name: "two", pin_sha256: PIN, remote_build_port: 6055 } });
    // A re-announcement with the same data is not news.
    link.announce(rawRecords({ name: "other", txt: ["friendly_name=two", `pin_sha256=${PIN}`, "remote_build_port=6055"], addresses: ["192.0.2.50"] }), "192.0.2.50");
    b.discovery.refresh();
    await settle();
    expect(b.events).toHaveLength(2);
    await b.discovery.stop();
  });

  it("unadvertise is a removal for the others; browsing goes on", async () => {
    const link = new FakeLink();
    const a = harness(link);
    const b = harness(link);
    await a.discovery.advertise({ instanceName: "esphome-builder-aaaa", port: 6052, txt: txt("A", PIN, 6055) });
    await b.discovery.advertise({ instanceName: "esphome-builder-bbbb", port: 6052, txt: txt("B") });
    await a.discovery.start();
    await b.discovery.start();
    await waitFor(() => a.events.length === 1 && b.events.length === 1, 2_000, "discovery");
    await a.discovery.unadvertise();
    await waitFor(() => b.events.length === 2, 2_000, "removal");
    expect(b.events[1]).toEqual({ type: "removed", name: "esphome-builder-aaaa" });
    expect(a.discovery.hosts().map((h) => h.name)).toEqual(["esphome-builder-bbbb"]);
    await a.discovery.stop();
    await b.discovery.stop();
  });

  it("sanitises a hostile advertisement", async () => {
    const link = new FakeLink();
    const b = harness(link);
    await b.discovery.start();
    link.announce(
      rawRecords({
        name: "evil",
        port: 80,
        target: "evil.local",
        txt: [
          `friendly_name=${"A".repeat(300)}`,
          `server_version=\u001b[2J${"9".repeat(200)}`,
          Buffer.concat([Buffer.from("esphome_version="), Buffer.from([0xc0, 0xaf])]),
          `pin_sha256=${PIN.slice(0, 63)}x`,
          "remote_build_port=99999",
        ],
        addresses: ["127.0.0.1", "192.0.2.66"],
      }),
      "192.0.2.66",
    );
    await waitFor(() => b.events.length === 1, 2_000, "added");
    const host = added(b.events)[0]!;
    expect(host).toEqual({
      name: "evil",
      hostname: "evil.local",
      port: 80,
      addresses: ["192.0.2.66"],
      server_version: "[2J" + "9".repeat(125),
      esphome_version: "",
      friendly_name: "A".repeat(128),
      pin_sha256: null,
      remote_build_port: null,
    });
    await b.discovery.stop();
  });

  it(`keeps at most ${MAX_DISCOVERED_HOSTS} hosts; a freed slot takes a new one`, async () => {
    const link = new FakeLink();
    const b = harness(link);
    await b.discovery.start();
    for (let i = 0; i < MAX_DISCOVERED_HOSTS + 6; i++) {
      link.announce(rawRecords({ name: `flood-${i}`, addresses: [`198.51.100.${i + 1}`] }), `198.51.100.${i + 1}`);
    }
    await waitFor(() => b.events.length >= MAX_DISCOVERED_HOSTS, 2_000, "the flood");
    await settle();
    expect(b.discovery.hosts()).toHaveLength(MAX_DISCOVERED_HOSTS);
    expect(added(b.events)).toHaveLength(MAX_DISCOVERED_HOSTS);
    expect(b.discovery.hosts().map((h) => h.name)).not.toContain(`flood-${MAX_DISCOVERED_HOSTS}`);

    // Known hosts still update while full.
    link.announce(rawRecords({ name: "flood-0", txt: ["friendly_name=renamed"], addresses: ["198.51.100.1"] }), "198.51.100.1");
    await waitFor(() => added(b.events, "flood-0").length === 2, 2_000, "the update");

    link.goodbye(`flood-1.${TYPE_PTR}`);
    await waitFor(() => removed(b.events).length === 1, 2_000, "the goodbye");
    link.announce(rawRecords({ name: "late", addresses: ["198.51.100.200"] }), "198.51.100.200");
    await waitFor(() => added(b.events, "late").length === 1, 2_000, "the newcomer");
    expect(b.discovery.hosts()).toHaveLength(MAX_DISCOVERED_HOSTS);
    await b.discovery.stop();
  });

  it("re-queries on refresh and drops builders not heard from for staleAfterMs", async () => {
    const link = new FakeLink();
    const b = harness(link, { refreshIntervalMs: 60_000, staleAfterMs: 180_000 });
    await b.discovery.start();
    link.announce(rawRecords({ name: "alive", addresses: ["192.0.2.1"] }), "192.0.2.1");
    link.announce(rawRecords({ name: "dies", addresses: ["192.0.2.2"] }), "192.0.2.2");
    await waitFor(() => b.events.length === 2, 2_000, "both");
    link.vanish(`dies.${TYPE_PTR}`); // no goodbye: the host lost power

    for (let round = 1; round <= 3; round++) {
      b.clock.t += 60_000;
      const queries = link.queries;
      b.discovery.refresh();
      expect(link.queries).toBe(queries + 1);
      await settle();
      expect(removed(b.events)).toEqual([]);
    }
    b.clock.t += 60_001;
    b.discovery.refresh();
    await settle();
    expect(removed(b.events)).toEqual(["dies"]);
    expect(b.discovery.hosts().map((h) => h.name)).toEqual(["alive"]);
    expect(added(b.events)).toHaveLength(2); // answers to re-queries are not news
    await b.discovery.stop();
  });

  it("runs the refresh on its own timer", async () => {
    const link = new FakeLink();
    const b = harness(link, { refreshIntervalMs: 20 });
    await b.discovery.start();
    const queries = link.queries;
    await waitFor(() => link.queries >= queries + 2, 2_000, "timed re-queries");
    await b.discovery.stop();
    const after = link.queries;
    await new Promise((r) => setTimeout(r, 60));
    expect(link.queries).toBe(after);
  });

  it("browse: false only advertises", async () => {
    const link = new FakeLink();
    const a = harness(link, { browse: false });
    await a.discovery.advertise({ instanceName: "quiet", port: 6052, txt: txt("Q") });
    await a.discovery.start();
    link.announce(rawRecords({ name: "other", addresses: ["192.0.2.3"] }), "192.0.2.3");
    await settle();
    expect(a.bonjours[0]!.browsers).toHaveLength(0);
    expect(a.events).toEqual([]);
    expect(link.zone.has(`quiet.${TYPE_PTR}`)).toBe(true);
    await a.discovery.stop();
  });

  it("stop() says goodbye, forgets every host and can start again", async () => {
    const link = new FakeLink();
    const a = harness(link);
    const b = harness(link);
    await a.discovery.advertise({ instanceName: "esphome-builder-aaaa", port: 6052, txt: txt("A") });
    await a.discovery.start();
    await b.discovery.advertise({ instanceName: "esphome-builder-bbbb", port: 6052, txt: txt("B") });
    await b.discovery.start();
    await waitFor(() => a.events.length === 1 && b.events.length === 1, 2_000, "discovery");

    await a.discovery.stop();
    expect(a.discovery.running).toBe(false);
    expect(a.bonjours[0]!.destroyed).toBe(true);
    expect(a.bonjours[0]!.live).toBe(0);
    expect(removed(a.events)).toEqual(["esphome-builder-bbbb"]);
    expect(a.discovery.hosts()).toEqual([]);
    await waitFor(() => removed(b.events).length === 1, 2_000, "B to see the goodbye");
    await a.discovery.stop(); // idempotent

    await a.discovery.start();
    expect(a.bonjours).toHaveLength(2);
    await waitFor(() => added(b.events).length === 2 && added(a.events).length === 2, 2_000, "rediscovery");
    await a.discovery.start(); // idempotent
    expect(a.bonjours).toHaveLength(2);
    await a.discovery.stop();
    await b.discovery.stop();
  });

  it("a throwing onChange listener does not break discovery", async () => {
    const link = new FakeLink();
    let calls = 0;
    const b = harness(link, {
      onChange: () => {
        calls++;
        throw new Error("listener bug");
      },
    });
    await b.discovery.start();
    link.announce(rawRecords({ name: "one", addresses: ["192.0.2.4"] }), "192.0.2.4");
    link.announce(rawRecords({ name: "two", addresses: ["192.0.2.5"] }), "192.0.2.5");
    await waitFor(() => calls === 2, 2_000, "both calls");
    expect(b.discovery.hosts()).toHaveLength(2);
    await b.discovery.stop();
  });
});
