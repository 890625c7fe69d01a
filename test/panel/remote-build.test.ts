import { describe, expect, it } from "vitest";
import { pinEmoji, pinHexPairs } from "../../panel/src/common/fingerprint.ts";
import {
  formatCountdown,
  hostEndpoint,
  pairableHosts,
  pairingStatus,
  parseEndpoint,
  receiverPeers,
  windowSecondsLeft,
} from "../../panel/src/data/remote-build.ts";
import { INITIAL_STATE, reducer, Store, type Action, type AppState } from "../../panel/src/data/state.ts";
import type { OffloaderAlert, RemoteBuildProblem, SubscribedEvent } from "../../panel/src/data/types.ts";
import { host, initialState, pairing, PIN_A, PIN_B, PIN_SELF, receiverPeer, remoteSnapshot } from "./fixtures.ts";

const ev = (event: SubscribedEvent): Action => ({ type: "event", event });

function seeded(snapshot = remoteSnapshot()): AppState {
  return reducer(INITIAL_STATE, { type: "initial_state", state: initialState({ remote_build: snapshot }) });
}

function run(actions: Action[], from: AppState = seeded()): AppState {
  return actions.reduce(reducer, from);
}

function alert(overrides: Partial<OffloaderAlert> = {}): OffloaderAlert {
  return {
    pin_sha256: PIN_B,
    kind: "pin_mismatch",
    label: "Desktop",
    receiver_hostname: "192.168.1.20",
    receiver_port: 6055,
    observed_pin: "c3".repeat(32),
    message: "Desktop now presents a different key.",
    ...overrides,
  };
}

describe("remote build state: seeding", () => {
  it("is null without remote_build in initial_state, and events about it change nothing", () => {
    const state = reducer(INITIAL_STATE, { type: "initial_state", state: initialState() });
    expect(state.remote).toBeNull();
    expect(reducer(state, ev({ event: "offloader_settings_changed", data: { remote_builds_enabled: false, version_match_policy: "any" } }))).toBe(state);
  });

  it("seeds identity, receiver, pairings, alerts and hosts from initial_state.remote_build", () => {
    const state = seeded(
      remoteSnapshot({
        receiver: { enabled: true, version_policy: "exact", auto_provision_supported: true, ccache: true, pairing_window_open: true, expires_in_seconds: 120, peers: [receiverPeer(), receiverPeer({ dashboard_id: "e".repeat(32), status: "approved", connected: true })] },
        offloader: { remote_builds_enabled: false, version_match_policy: "release", pairings: [pairing()] },
        alerts: [alert()],
        hosts: [host({ name: "Esphome-Builder-X" })],
      }),
    );
    const remote = state.remote!;
    expect(remote.identity.pin_sha256).toBe(PIN_SELF);
    expect(remote.receiver.window).toEqual({ open: true, expires_in_seconds: 120 });
    expect(receiverPeers(remote).pending.map((p) => p.label)).toEqual(["Attic Pi"]);
    expect(receiverPeers(remote).approved.map((p) => p.connected)).toEqual([true]);
    expect(remote.offloader.remoteBuildsEnabled).toBe(false);
    expect(remote.receiver).toMatchObject({ versionPolicy: "exact", autoProvision: true, ccache: true });
    expect(remote.offloader.versionMatchPolicy).toBe("release");
    expect(remote.offloader.pairings.map((p) => p.pin_sha256)).toEqual([PIN_B]);
    expect(Object.keys(remote.alerts)).toEqual([PIN_B]);
    // mDNS names compare case-insensitively.
    expect(Object.keys(remote.hosts)).toEqual(["esphome-builder-x"]);
  });
});

describe("remote build state: the build server (receiver)", () => {
  it("follows a pairing request from received to approved to connected to removed", () => {
    const id = "d".repeat(32);
    let state = run([
      ev({ event: "remote_build_pairing_window_changed", data: { open: true, expires_in_seconds: 300 } }),
      ev({ event: "remote_build_pair_request_received", data: { dashboard_id: id, pin_sha256: PIN_A, label: "Attic Pi", peer_ip: "127.0.0.1" } }),
    ]);
    expect(state.remote!.receiver.peers[id]).toEqual({ dashboard_id: id, pin_sha256: PIN_A, label: "Attic Pi", peer_ip: "127.0.0.1", status: "pending", connected: false });
    state = run([ev({ event: "remote_build_pair_status_changed", data: { dashboard_id: id, status: "approved" } })], state);
    expect(state.remote!.receiver.peers[id]?.status).toBe("approved");
    state = run([ev({ event: "remote_build_peer_session_changed", data: { dashboard_id: id, connected: true, reason: "" } })], state);
    expect(state.remote!.receiver.peers[id]?.connected).toBe(true);
    // Closing the window keeps approved peers.
    state = run([ev({ event: "remote_build_pairing_window_changed", data: { open: false, expires_in_seconds: null } })], state);
    expect(state.remote!.receiver.peers[id]?.status).toBe("approved");
    state = run([ev({ event: "remote_build_pair_status_changed", data: { dashboard_id: id, status: "removed" } })], state);
    expect(state.remote!.receiver.peers).toEqual({});
  });

  it("drops pending requests when the pairing window closes", () => {
    const state = run([
      ev({ event: "remote_build_pair_request_received", data: { dashboard_id: "d".repeat(32), pin_sha256: PIN_A, label: "A", peer_ip: "10.0.0.2" } }),
      ev({ event: "remote_build_pairing_window_changed", data: { open: false, expires_in_seconds: null } }),
    ]);
    expect(receiverPeers(state.remote!).pending).toEqual([]);
  });

  it("ignores status and session events for unknown peers without a new state", () => {
    const state = seeded();
    expect(reducer(state, ev({ event: "remote_build_pair_status_changed", data: { dashboard_id: "x".repeat(32), status: "removed" } }))).toBe(state);
    expect(reducer(state, ev({ event: "remote_build_peer_session_changed", data: { dashboard_id: "x".repeat(32), connected: true, reason: "" } }))).toBe(state);
  });

  it("switching the build server off shows the listener off and the window closed", () => {
    let state = run([
      ev({ event: "remote_build_pairing_window_changed", data: { open: true, expires_in_seconds: 300 } }),
      ev({ event: "remote_build_receiver_changed", data: { enabled: false, peer_link_port: null } }),
    ]);
    expect(state.remote!.receiver.enabled).toBe(false);
    expect(state.remote!.receiver.window.open).toBe(false);
    expect(state.remote!.identity.listener_port).toBeNull();
    state = run([ev({ event: "remote_build_receiver_changed", data: { enabled: true, peer_link_port: 40001 } })], state);
    expect(state.remote!.identity.listener_port).toBe(40001);
  });

  it("computes the new fingerprint after a key rotation, and takes the identity a command returned", () => {
    let state = run([ev({ event: "remote_build_identity_rotated", data: { dashboard_id: "n".repeat(32), pin_sha256: PIN_A } })]);
    expect(state.remote!.identity).toMatchObject({
      dashboard_id: "n".repeat(32),
      pin_sha256: PIN_A,
      fingerprint_emoji: pinEmoji(PIN_A).map((e) => e.emoji),
      fingerprint_hex: pinHexPairs(PIN_A),
      label: "Home Assistant",
    });
    const identity = { ...state.remote!.identity, listener_port: 7000 };
    state = reducer(state, { type: "remote_identity", identity });
    expect(state.remote!.identity.listener_port).toBe(7000);
  });

  it("adds and removes builders found over mDNS", () => {
    let state = run([ev({ event: "remote_build_host_added", data: { host: host({ name: "Builder-1" }) } })]);
    expect(Object.keys(state.remote!.hosts)).toEqual(["builder-1"]);
    state = run([ev({ event: "remote_build_host_removed", data: { name: "BUILDER-1" } })], state);
    expect(state.remote!.hosts).toEqual({});
  });
});

describe("remote build state: sending builds (offloader)", () => {
  it("adds a pending pairing, approves it, connects, tracks the queue, and removes it", () => {
    let state = run([ev({ event: "offloader_pairing_changed", data: { pairing: pairing({ status: "pending" }) } })]);
    expect(state.remote!.offloader.pairings).toHaveLength(1);
    expect(pairingStatus(state.remote!.offloader.pairings[0]!, undefined).kind).toBe("pending");
    state = run(
      [
        ev({ event: "offloader_pairing_changed", data: { pairing: pairing({ status: "approved" }) } }),
        ev({ event: "offloader_peer_link_opened", data: { pin_sha256: PIN_B, receiver_hostname: "192.168.1.20", receiver_port: 6055, esphome_version: "2026.12.0" } }),
        ev({ event: "offloader_queue_status_changed", data: { pin_sha256: PIN_B, idle: false, running: true, queue_depth: 2 } }),
      ],
      state,
    );
    const p = state.remote!.offloader.pairings[0]!;
    expect(p).toMatchObject({ connected: true, idle: false, esphome_version: "2026.12.0" });
    expect(pairingStatus(p, state.remote!.offloader.queues[PIN_B])).toEqual({ kind: "busy", tone: "info", running: 1, waiting: 2 });
    state = run([ev({ event: "offloader_peer_link_closed", data: { pin_sha256: PIN_B, receiver_hostname: "h", receiver_port: 1, reason: "heartbeat_timeout", error_detail: "" } })], state);
    expect(state.remote!.offloader.pairings[0]).toMatchObject({ connected: false, idle: null });
    expect(state.remote!.offloader.queues).toEqual({});
    state = run([ev({ event: "offloader_pairing_removed", data: { pin_sha256: PIN_B, reason: "unpaired" } })], state);
    expect(state.remote!.offloader.pairings).toEqual([]);
    expect(state.remote!.offloader.removed).toEqual({ [PIN_B]: "unpaired" });
  });

  it("keeps pairings in the order they were made when one changes", () => {
    const state = run([
      ev({ event: "offloader_pairing_changed", data: { pairing: pairing({ pin_sha256: PIN_A, label: "First" }) } }),
      ev({ event: "offloader_pairing_changed", data: { pairing: pairing({ pin_sha256: PIN_B, label: "Second" }) } }),
      ev({ event: "offloader_pairing_changed", data: { pairing: pairing({ pin_sha256: PIN_A, label: "First", enabled: false }) } }),
    ]);
    expect(state.remote!.offloader.pairings.map((p) => [p.label, p.enabled])).toEqual([["First", false], ["Second", true]]);
  });

  it("follows the master switch", () => {
    const state = run([ev({ event: "offloader_settings_changed", data: { remote_builds_enabled: false, version_match_policy: "any" } })]);
    expect(state.remote!.offloader.remoteBuildsEnabled).toBe(false);
    expect(reducer(state, ev({ event: "offloader_settings_changed", data: { remote_builds_enabled: false, version_match_policy: "any" } }))).toBe(state);
  });

  it("keeps an alert while the pairing stays disconnected, and drops it on a new request, a session or an unpair", () => {
    const base = run([
      ev({ event: "offloader_pairing_changed", data: { pairing: pairing() } }),
      ev({ event: "offloader_alert", data: { alert: alert() } }),
      // The builder reports the pairing (not connected) right after the alert.
      ev({ event: "offloader_pairing_changed", data: { pairing: pairing({ last_connect_error: "pin mismatch" }) } }),
    ]);
    expect(Object.keys(base.remote!.alerts)).toEqual([PIN_B]);
    expect(run([ev({ event: "offloader_pairing_changed", data: { pairing: pairing({ status: "pending" }) } })], base).remote!.alerts).toEqual({});
    expect(run([ev({ event: "offloader_pairing_changed", data: { pairing: pairing({ connected: true }) } })], base).remote!.alerts).toEqual({});
    expect(run([ev({ event: "offloader_pairing_removed", data: { pin_sha256: PIN_B, reason: "unpaired" } })], base).remote!.alerts).toEqual({});
  });

  it("the store notifies on remote events", () => {
    const store = new Store(seeded());
    const seen: boolean[] = [];
    store.subscribe((s) => seen.push(s.remote!.offloader.remoteBuildsEnabled));
    store.dispatch(ev({ event: "offloader_settings_changed", data: { remote_builds_enabled: false, version_match_policy: "any" } }));
    expect(seen).toEqual([false]);
  });
});

describe("build server display rules", () => {
  it("names a paired build server's state", () => {
    expect(pairingStatus(pairing({ enabled: false, connected: true }), undefined).kind).toBe("off");
    expect(pairingStatus(pairing({ connected: true, idle: true }), undefined)).toMatchObject({ kind: "idle", tone: "success" });
    expect(pairingStatus(pairing({ connected: true, idle: null }), undefined).kind).toBe("connected");
    expect(pairingStatus(pairing({ connected: true, idle: true }), { idle: false, running: true, queue_depth: 0 })).toMatchObject({ kind: "busy", running: 1 });
    expect(pairingStatus(pairing({ last_connect_error: "ECONNREFUSED" }), undefined)).toMatchObject({ kind: "error", tone: "error" });
    expect(pairingStatus(pairing(), undefined).kind).toBe("connecting");
  });

  it("offers discovered builders that are not this one and not yet paired, by name", () => {
    const state = seeded(
      remoteSnapshot({
        offloader: { remote_builds_enabled: true, version_match_policy: "any", pairings: [pairing({ pin_sha256: PIN_B })] },
        hosts: [
          host({ name: "self", pin_sha256: PIN_SELF }),
          host({ name: "paired", pin_sha256: PIN_B }),
          host({ name: "zeta", friendly_name: "Zeta", pin_sha256: PIN_A }),
          host({ name: "alpha", friendly_name: "", pin_sha256: null }),
        ],
      }),
    );
    expect(pairableHosts(state.remote!).map((h) => h.name)).toEqual(["alpha", "zeta"]);
  });

  it("reaches a discovered builder at an IPv4 address and its peer-link port", () => {
    expect(hostEndpoint(host())).toEqual({ hostname: "192.168.1.20", port: 6055 });
    expect(hostEndpoint(host({ addresses: [] }))).toEqual({ hostname: "esphome-builder-0123abcd.local", port: 6055 });
    expect(hostEndpoint(host({ remote_build_port: null }))).toBeNull();
  });

  it("counts the pairing window down from when its event arrived", () => {
    const window = { open: true, expires_in_seconds: 300 };
    expect(windowSecondsLeft(window, 1000, 1000)).toBe(300);
    expect(windowSecondsLeft(window, 1000, 1000 + 55_500)).toBe(245);
    expect(windowSecondsLeft(window, 1000, 1000 + 400_000)).toBe(0);
    expect(windowSecondsLeft({ open: false, expires_in_seconds: null }, 0, 0)).toBe(0);
    expect(formatCountdown(245)).toBe("4:05");
    expect(formatCountdown(9)).toBe("0:09");
  });

  it("reads a typed host and port (6055 by default)", () => {
    expect(parseEndpoint(" desktop.local ", "")).toEqual({ hostname: "desktop.local", port: 6055 });
    expect(parseEndpoint("[fe80::1]", "7000")).toEqual({ hostname: "fe80::1", port: 7000 });
    expect(parseEndpoint("", "6055")).toEqual({ error: "host" });
    expect(parseEndpoint("/dev/ttyUSB0", "6055")).toEqual({ error: "host" });
    expect(parseEndpoint("host", "70000")).toEqual({ error: "port" });
    expect(parseEndpoint("host", "1.5")).toEqual({ error: "port" });
    expect(parseEndpoint("host", "0")).toEqual({ error: "port" });
  });
});

describe("remote build state: problems with the builder's files", () => {
  const problem = (id: string, kind: RemoteBuildProblem["kind"] = "receiver_peer"): RemoteBuildProblem => ({
    id,
    kind,
    file: "/config/.esphome/builder/receiver.json",
    kept_at: "/config/.esphome/builder/receiver.json.corrupt",
    message: `problem ${id}`,
  });

  it("seeds them by id from initial_state and drops one when it is dismissed", () => {
    const state = seeded(remoteSnapshot({ problems: [problem("receiver_peer:1"), problem("key_file", "key_file")] }));
    expect(Object.keys(state.remote!.problems)).toEqual(["receiver_peer:1", "key_file"]);
    const next = run([ev({ event: "remote_build_problem_dismissed", data: { id: "receiver_peer:1" } })], state);
    expect(Object.keys(next.remote!.problems)).toEqual(["key_file"]);
    // Dismissing one that is not there changes nothing.
    expect(run([ev({ event: "remote_build_problem_dismissed", data: { id: "nope" } })], next)).toBe(next);
  });
});

describe("remote build state: ESPHome version policies", () => {
  it("follows the build server's version policy and the offloader's version_match_policy", () => {
    let state = run([ev({ event: "remote_build_version_policy_changed", data: { version_policy: "exact", auto_provision_supported: true } })]);
    expect(state.remote!.receiver).toMatchObject({ versionPolicy: "exact", autoProvision: true });
    expect(reducer(state, ev({ event: "remote_build_version_policy_changed", data: { version_policy: "exact", auto_provision_supported: true } }))).toBe(state);
    state = reducer(state, ev({ event: "offloader_settings_changed", data: { remote_builds_enabled: true, version_match_policy: "exact_required" } }));
    expect(state.remote!.offloader).toMatchObject({ remoteBuildsEnabled: true, versionMatchPolicy: "exact_required" });
  });
});
