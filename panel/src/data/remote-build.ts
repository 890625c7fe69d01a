/**
 * Build servers: the panel's remote-build state, seeded from
 * `initial_state.remote_build` and kept by a pure reducer over the
 * `remote_build_*` and `offloader_*` events, plus the display rules the view
 * and the pair dialog use. Nothing here does I/O.
 */
import { pinEmoji, pinHexPairs } from "../common/fingerprint.ts";
import type {
  DiscoveredHost,
  OffloaderAlert,
  Pairing,
  PairingWindow,
  PeerQueueStatus,
  ReceiverPeer,
  RemoteBuildProblem,
  RemoteBuildSnapshot,
  RemoteBuildEvent,
  RemoteIdentity,
  LocalBuilds,
  VersionPolicy,
} from "./types.ts";

export interface RemoteBuildState {
  identity: RemoteIdentity;
  receiver: {
    enabled: boolean;
    /** What it does with a compile for another ESPHome version. */
    versionPolicy: VersionPolicy;
    /** It can install other ESPHome versions. */
    autoProvision: boolean;
    ccache: boolean;
    window: PairingWindow;
    /** Pending requests and approved peers by dashboard_id, in arrival order. */
    peers: Readonly<Record<string, ReceiverPeer>>;
  };
  offloader: {
    remoteBuildsEnabled: boolean;
    /** Where this builder compiles its own jobs (`always` from builders that do not say). */
    localBuilds: LocalBuilds;
    /** Which build servers compiles may go to, by their ESPHome version. */
    versionMatchPolicy: VersionPolicy;
    /** In the order they were made (the order the router tries them). */
    pairings: readonly Pairing[];
    /** The last queue status each connected build server reported. */
    queues: Readonly<Record<string, PeerQueueStatus>>;
    /** Why a pairing went away (a rejected request, an unpair), by pin. */
    removed: Readonly<Record<string, string>>;
  };
  /** Fingerprint changes and revocations, by the pairing's pin. */
  alerts: Readonly<Record<string, OffloaderAlert>>;
  /** State files the builder could not read at start-up, by problem id, until dismissed. */
  problems: Readonly<Record<string, RemoteBuildProblem>>;
  /** mDNS, by lowercased instance name. */
  hosts: Readonly<Record<string, DiscoveredHost>>;
}

function byKey<T>(items: readonly T[], key: (item: T) => string): Record<string, T> {
  const out: Record<string, T> = {};
  for (const item of items) out[key(item)] = item;
  return out;
}

function without<T>(record: Readonly<Record<string, T>>, key: string): Readonly<Record<string, T>> {
  if (!Object.hasOwn(record, key)) return record;
  return Object.fromEntries(Object.entries(record).filter(([k]) => k !== key));
}

export function seedRemoteBuild(snapshot: RemoteBuildSnapshot): RemoteBuildState {
  return {
    identity: snapshot.identity,
    receiver: {
      enabled: snapshot.receiver.enabled,
      versionPolicy: snapshot.receiver.version_policy,
      autoProvision: snapshot.receiver.auto_provision_supported,
      ccache: snapshot.receiver.ccache,
      window: { open: snapshot.receiver.pairing_window_open, expires_in_seconds: snapshot.receiver.expires_in_seconds },
      peers: byKey(snapshot.receiver.peers, (p) => p.dashboard_id),
    },
    offloader: {
      remoteBuildsEnabled: snapshot.offloader.remote_builds_enabled,
      localBuilds: (snapshot as Partial<RemoteBuildSnapshot>).local_builds ?? "always",
      versionMatchPolicy: snapshot.offloader.version_match_policy,
      pairings: snapshot.offloader.pairings,
      queues: {},
      removed: {},
    },
    alerts: byKey(snapshot.alerts, (a) => a.pin_sha256),
    problems: byKey(snapshot.problems, (p) => p.id),
    hosts: byKey(snapshot.hosts, (h) => h.name.toLowerCase()),
  };
}

/** The identity after a command returned it (rotate, get_identity). */
export function withIdentity(state: RemoteBuildState, identity: RemoteIdentity): RemoteBuildState {
  return { ...state, identity };
}

function withPeer(state: RemoteBuildState, id: string, update: (peer: ReceiverPeer) => ReceiverPeer): RemoteBuildState {
  const peer = state.receiver.peers[id];
  if (peer === undefined) return state;
  const next = update(peer);
  if (next === peer) return state;
  return { ...state, receiver: { ...state.receiver, peers: { ...state.receiver.peers, [id]: next } } };
}

function withPairing(state: RemoteBuildState, pin: string, update: (pairing: Pairing) => Pairing): RemoteBuildState {
  const index = state.offloader.pairings.findIndex((p) => p.pin_sha256 === pin);
  const current = state.offloader.pairings[index];
  if (current === undefined) return state;
  const next = update(current);
  if (next === current) return state;
  const pairings = state.offloader.pairings.slice();
  pairings[index] = next;
  return { ...state, offloader: { ...state.offloader, pairings } };
}

/** A new pending request or a live session makes an alert about that pin obsolete. */
function clearsAlert(pairing: Pairing): boolean {
  return pairing.status === "pending" || pairing.connected;
}

/** The state after one event; the same object when the event changes nothing here. */
export function applyRemoteEvent(state: RemoteBuildState, e: RemoteBuildEvent): RemoteBuildState {
  switch (e.event) {
    // ---- build server (receiver) ----
    case "remote_build_receiver_changed": {
      const { enabled, peer_link_port } = e.data;
      return {
        ...state,
        identity: { ...state.identity, listener_port: peer_link_port },
        receiver: {
          ...state.receiver,
          enabled,
          // Switching off closes the listener; nobody can reach the pairing window then.
          window: enabled ? state.receiver.window : { open: false, expires_in_seconds: null },
        },
      };
    }
    case "remote_build_version_policy_changed": {
      const { version_policy, auto_provision_supported } = e.data;
      if (state.receiver.versionPolicy === version_policy && state.receiver.autoProvision === auto_provision_supported) return state;
      return { ...state, receiver: { ...state.receiver, versionPolicy: version_policy, autoProvision: auto_provision_supported } };
    }
    case "remote_build_pairing_window_changed": {
      const window = { open: e.data.open, expires_in_seconds: e.data.expires_in_seconds };
      // Closing the window drops every pending request (the builder says so per request too).
      const peers = window.open
        ? state.receiver.peers
        : byKey(Object.values(state.receiver.peers).filter((p) => p.status === "approved"), (p) => p.dashboard_id);
      return { ...state, receiver: { ...state.receiver, window, peers } };
    }
    case "remote_build_pair_request_received": {
      const { dashboard_id, pin_sha256, label, peer_ip } = e.data;
      const known = state.receiver.peers[dashboard_id];
      // A known peer asking again stays approved until someone removes it.
      const peer: ReceiverPeer = { dashboard_id, pin_sha256, label, peer_ip, status: "pending", connected: false };
      if (known?.status === "approved" && known.pin_sha256 === pin_sha256) return state;
      const peers = { ...without(state.receiver.peers, dashboard_id), [dashboard_id]: peer };
      return { ...state, receiver: { ...state.receiver, peers } };
    }
    case "remote_build_pair_status_changed": {
      const { dashboard_id, status } = e.data;
      if (status === "removed") {
        const peers = without(state.receiver.peers, dashboard_id);
        return peers === state.receiver.peers ? state : { ...state, receiver: { ...state.receiver, peers } };
      }
      return withPeer(state, dashboard_id, (p) => (p.status === "approved" ? p : { ...p, status: "approved" }));
    }
    case "remote_build_peer_session_changed":
      return withPeer(state, e.data.dashboard_id, (p) => (p.connected === e.data.connected ? p : { ...p, connected: e.data.connected }));
    case "remote_build_identity_rotated": {
      const { dashboard_id, pin_sha256 } = e.data;
      if (pin_sha256 === state.identity.pin_sha256 && dashboard_id === state.identity.dashboard_id) return state;
      return {
        ...state,
        identity: {
          ...state.identity,
          dashboard_id,
          pin_sha256,
          fingerprint_emoji: pinEmoji(pin_sha256).map((x) => x.emoji),
          fingerprint_hex: pinHexPairs(pin_sha256),
        },
      };
    }
    case "remote_build_problem_dismissed": {
      const problems = without(state.problems, e.data.id);
      return problems === state.problems ? state : { ...state, problems };
    }
    case "remote_build_host_added":
      return { ...state, hosts: { ...state.hosts, [e.data.host.name.toLowerCase()]: e.data.host } };
    case "remote_build_host_removed": {
      const hosts = without(state.hosts, e.data.name.toLowerCase());
      return hosts === state.hosts ? state : { ...state, hosts };
    }

    // ---- sending builds (offloader) ----
    case "local_builds_changed":
      return state.offloader.localBuilds === e.data.local_builds ? state : { ...state, offloader: { ...state.offloader, localBuilds: e.data.local_builds } };
    case "offloader_settings_changed":
      return state.offloader.remoteBuildsEnabled === e.data.remote_builds_enabled && state.offloader.versionMatchPolicy === e.data.version_match_policy
        ? state
        : { ...state, offloader: { ...state.offloader, remoteBuildsEnabled: e.data.remote_builds_enabled, versionMatchPolicy: e.data.version_match_policy } };
    case "offloader_pairing_changed": {
      const pairing = e.data.pairing;
      const pin = pairing.pin_sha256;
      const exists = state.offloader.pairings.some((p) => p.pin_sha256 === pin);
      const pairings = exists
        ? state.offloader.pairings.map((p) => (p.pin_sha256 === pin ? pairing : p))
        : [...state.offloader.pairings, pairing];
      const queues = pairing.connected ? state.offloader.queues : without(state.offloader.queues, pin);
      return {
        ...state,
        offloader: { ...state.offloader, pairings, queues, removed: without(state.offloader.removed, pin) },
        alerts: clearsAlert(pairing) ? without(state.alerts, pin) : state.alerts,
      };
    }
    case "offloader_pairing_removed": {
      const pin = e.data.pin_sha256;
      return {
        ...state,
        offloader: {
          ...state.offloader,
          pairings: state.offloader.pairings.filter((p) => p.pin_sha256 !== pin),
          queues: without(state.offloader.queues, pin),
          removed: { ...state.offloader.removed, [pin]: e.data.reason },
        },
        alerts: without(state.alerts, pin),
      };
    }
    case "offloader_peer_link_opened":
      return withPairing(state, e.data.pin_sha256, (p) =>
        p.connected ? p : { ...p, connected: true, last_connect_error: "", esphome_version: e.data.esphome_version || p.esphome_version },
      );
    case "offloader_peer_link_closed": {
      const pin = e.data.pin_sha256;
      const next = withPairing(state, pin, (p) => (p.connected ? { ...p, connected: false, idle: null } : p));
      const queues = without(next.offloader.queues, pin);
      return queues === next.offloader.queues ? next : { ...next, offloader: { ...next.offloader, queues } };
    }
    case "offloader_queue_status_changed": {
      const { pin_sha256, idle, running, queue_depth } = e.data;
      const next = withPairing(state, pin_sha256, (p) => (p.idle === idle ? p : { ...p, idle }));
      return { ...next, offloader: { ...next.offloader, queues: { ...next.offloader.queues, [pin_sha256]: { idle, running, queue_depth } } } };
    }
    case "offloader_alert":
      return { ...state, alerts: { ...state.alerts, [e.data.alert.pin_sha256]: e.data.alert } };
  }
}

// ---- display rules ----

/** Pending requests and approved peers of this build server, each in arrival order. */
export function receiverPeers(state: RemoteBuildState): { pending: ReceiverPeer[]; approved: ReceiverPeer[] } {
  const peers = Object.values(state.receiver.peers);
  return { pending: peers.filter((p) => p.status === "pending"), approved: peers.filter((p) => p.status === "approved") };
}

export type PairingStatusKind = "pending" | "off" | "busy" | "idle" | "connected" | "connecting" | "error";

export interface PairingStatus {
  kind: PairingStatusKind;
  tone: "success" | "info" | "warning" | "error" | "neutral";
  /** Compiles running and waiting there, when it reported them. */
  running: number;
  waiting: number;
}

/** What a paired build server's badge says. */
export function pairingStatus(pairing: Pairing, queue: PeerQueueStatus | undefined): PairingStatus {
  // A build server says whether a compile runs there, not how many.
  const running = queue?.running === true ? 1 : 0;
  const waiting = queue?.queue_depth ?? 0;
  const base = { running, waiting };
  if (pairing.status === "pending") return { kind: "pending", tone: "warning", ...base };
  if (!pairing.enabled) return { kind: "off", tone: "neutral", ...base };
  if (pairing.connected) {
    const idle = queue?.idle ?? pairing.idle;
    if (idle === false) return { kind: "busy", tone: "info", ...base };
    if (idle === true) return { kind: "idle", tone: "success", ...base };
    return { kind: "connected", tone: "success", ...base };
  }
  if (pairing.last_connect_error !== "") return { kind: "error", tone: "error", ...base };
  return { kind: "connecting", tone: "neutral", ...base };
}

/**
 * Builders found on the LAN that can be paired with: not this builder, not
 * one already paired, and with their build server on.
 */
export function pairableHosts(state: RemoteBuildState): DiscoveredHost[] {
  const paired = new Set(state.offloader.pairings.map((p) => p.pin_sha256));
  return Object.values(state.hosts)
    .filter((h) => h.pin_sha256 !== state.identity.pin_sha256 && (h.pin_sha256 === null || !paired.has(h.pin_sha256)))
    .sort((a, b) => hostTitle(a).localeCompare(hostTitle(b)));
}

export function hostTitle(host: DiscoveredHost): string {
  return host.friendly_name !== "" ? host.friendly_name : host.name;
}

/** Where to reach a discovered builder's build server: an IPv4 address first (".local" needs mDNS resolving), else its host name. */
export function hostEndpoint(host: DiscoveredHost): { hostname: string; port: number } | null {
  if (host.remote_build_port === null) return null;
  const v4 = host.addresses.find((a) => /^\d{1,3}(?:\.\d{1,3}){3}$/.test(a));
  return { hostname: v4 ?? host.addresses[0] ?? host.hostname, port: host.remote_build_port };
}

/** Seconds left in the pairing window at `now`, from when the last window event arrived. */
export function windowSecondsLeft(window: PairingWindow, receivedAt: number, now: number): number {
  if (!window.open || window.expires_in_seconds === null) return 0;
  return Math.max(0, Math.ceil(window.expires_in_seconds - (now - receivedAt) / 1000));
}

/** "4:05" */
export function formatCountdown(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

export const DEFAULT_PEER_LINK_PORT = 6055;

/** A host and port as typed: trimmed host (brackets of an IPv6 literal dropped), port 1-65535. */
export function parseEndpoint(host: string, port: string): { hostname: string; port: number } | { error: "host" | "port" } {
  const hostname = host.trim().replace(/^\[(.*)\]$/, "$1");
  if (hostname === "" || /[\s/]/.test(hostname)) return { error: "host" };
  const text = port.trim();
  const n = text === "" ? DEFAULT_PEER_LINK_PORT : Number(text);
  if (!/^\d*$/.test(text) || !Number.isInteger(n) || n < 1 || n > 65535) return { error: "port" };
  return { hostname, port: n };
}
