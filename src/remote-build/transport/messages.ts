/**
 * The peer link's wire vocabulary: handshake intents, intent responses and the
 * application messages of a session, each with its schema. Every frame from a
 * peer is parsed against these before anything acts on it; strings a peer
 * sends are length-capped.
 */
import { z } from "zod";
import { isValidDashboardId } from "./identity.ts";
import { isVersionPolicy, normalizeVersion } from "../../esphome/version-policy.ts";

export const PEER_LINK_PATH = "/remote-build/peer-link";
/** Largest inbound application frame (ciphertext), checked before decrypting. */
export const APP_FRAME_MAX_BYTES = 60 * 1024;
/** Largest one-shot control message (handshake messages, intent response). */
export const CONTROL_FRAME_MAX_BYTES = 64 * 1024;
/** Per handshake step: connect, msg1, msg2, msg3 and the intent response. */
export const HANDSHAKE_STEP_MS = 10_000;
export const HEARTBEAT_INTERVAL_MS = 30_000;
export const HEARTBEAT_TIMEOUT_MS = 90_000;

export const INTENTS = ["preview", "pair_request", "pair_status", "peer_link", "connect_back"] as const;
export type Intent = (typeof INTENTS)[number];

export const INTENT_RESPONSES = ["ok", "approved", "pending", "rejected", "no_pairing_window"] as const;
export type IntentResponseKind = (typeof INTENT_RESPONSES)[number];

export const REJECT_REASONS = ["no_approved_peer", "pin_mismatch", "pending_not_approved", "bad_dashboard_id", "bad_intent"] as const;

/** Why an offloader refuses a build server's `connect_back` (newer upstream's five; WIRE-FACTS "Newer upstream" C). */
export const CONNECT_BACK_REJECTS = ["no_approved_peer", "bad_endpoint", "already_connected", "rebind_in_progress", "probe_failed"] as const;
export type ConnectBackReject = (typeof CONNECT_BACK_REJECTS)[number];
export type RejectReason = (typeof REJECT_REASONS)[number];

/** Why a session ended, as sent in `terminate` or seen locally. */
export const TERMINATE_REASONS = [
  "superseded",
  "server_shutting_down",
  "heartbeat_timeout",
  "malformed_frame",
  "client_stopped",
  "revoked",
] as const;

const label = z.string().transform((s) => s.trim().slice(0, 128));
const shortText = (max: number) => z.string().max(max);
const dashboardId = z.string().refine((s) => isValidDashboardId(s), "not a valid dashboard_id");
const jobId = z.string().min(1).max(64).regex(/^[A-Za-z0-9_-]+$/);
const int = z.number().int();
/** A version from a peer: well-formed PEP 440 of at most 64 characters, anything else (or nothing) "" (upstream's rule). */
const peerVersion = z.unknown().optional().transform((v) => normalizeVersion(v));

/** msg1's plaintext payload. */
export const msg1Schema = z.object({ intent: z.string().max(64) });

/** msg3 payloads per intent (extra keys from newer peers are ignored). */
export const pairRequestSchema = z.object({
  dashboard_id: dashboardId,
  label: label.default(""),
  friendly_name: label.default(""),
  ha_addon: z.boolean().default(false),
  label_auto: z.boolean().default(false),
  /** Newer upstream: the key a headless build server printed (checked there, constant-time); not a string: none. */
  pairing_key: z.unknown().optional().transform((v) => (typeof v === "string" ? v : undefined)),
});
export const dashboardIdPayloadSchema = z.object({
  dashboard_id: dashboardId,
  friendly_name: label.default(""),
  ha_addon: z.boolean().default(false),
});

/**
 * `peer_link`'s msg3: `connect_back_port` (newer upstream) is the offloader's
 * own listener port, said only while it is bound. Anything but an integer in
 * 1-65535 counts as not said (0), so it never overwrites a stored port.
 */
export const peerLinkPayloadSchema = dashboardIdPayloadSchema.extend({
  connect_back_port: z.unknown().optional().transform((v) => (typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= 65535 ? v : 0)),
});

/** `connect_back`'s msg3 (the build server is the initiator): its own peer-link port. */
export const connectBackPayloadSchema = z.object({ peer_link_port: int.min(1).max(65535) });

export const intentResponseSchema = z.object({
  intent_response: z.enum(INTENT_RESPONSES),
  esphome_version: peerVersion,
  reason: z.string().max(64).optional(),
  friendly_name: label.default(""),
  ha_addon: z.boolean().default(false),
  /** Newer upstream: the build server takes `reset_build_env`; anything but `true` means it does not. */
  reset_build_env_supported: z.boolean().catch(false),
  /** The build server installs the version a `submit_job` asks for; missing or not a bool: false (upstream's rule). */
  auto_provision_supported: z.unknown().optional().transform((v) => v === true),
  /** Ours only: the build server's version policy (anything else: not said). */
  version_policy: z.unknown().optional().transform((v) => (isVersionPolicy(v) ? v : null)),
  /** Newer upstream, in a `preview` answer: a headless build server pairs only with the key it printed; anything but `true`: no. */
  requires_pairing_key: z.unknown().optional().transform((v) => v === true),
});
export type IntentResponse = z.infer<typeof intentResponseSchema>;

// ---- application messages ----

const chunk = {
  job_id: jobId,
  chunk_index: int.min(0),
  data_b64: z.string().max(APP_FRAME_MAX_BYTES),
  is_last: z.boolean(),
};

/**
 * A heartbeat nonce: upstream counts 1, 2, 3… but echoes whatever JSON value
 * a ping carried (`null` when it had none), and any pong resets the clock.
 */
const nonce = z.unknown().optional().transform((v) => (v === undefined ? null : v));
/** A terminate's reason; one that is not a short string still ends the session. */
const terminateReason = z.string().max(64).catch("unknown");

/** Frames a receiver (build server) accepts from an offloader. */
export const receiverInbound = {
  ping: z.object({ type: z.literal("ping"), nonce }),
  pong: z.object({ type: z.literal("pong"), nonce }),
  terminate: z.object({ type: z.literal("terminate"), reason: terminateReason }),
  submit_job: z.object({
    type: z.literal("submit_job"),
    job_id: jobId,
    configuration_filename: shortText(255),
    target: shortText(32),
    total_bundle_bytes: int,
    num_chunks: int,
    bundle_sha256: shortText(64),
    device_name: shortText(256).optional(),
    device_friendly_name: shortText(256).optional(),
    /** The sender's ESPHome version; anything but well-formed PEP 440 of <= 64 characters counts as "" (use the installed one). */
    target_esphome_version: peerVersion,
  }),
  submit_job_chunk: z.object({ type: z.literal("submit_job_chunk"), ...chunk }),
  cancel_job: z.object({ type: z.literal("cancel_job"), job_id: jobId }),
  /** `files` (optional, ignored by builders that do not know it) limits what is sent. */
  download_artifacts: z.object({ type: z.literal("download_artifacts"), job_id: jobId, files: z.array(z.string().max(64)).max(32).optional() }),
  /** Newer upstream: wipe the build environment this offloader's builds use here. */
  reset_build_env: z.object({ type: z.literal("reset_build_env"), job_id: jobId }),
} as const;

/** Why a build server refuses `reset_build_env` (upstream's four; others are tolerated). */
export const RESET_BUILD_ENV_REFUSALS = ["invalid_frame", "not_ready", "busy", "queue_rejected"] as const;

/** Frames an offloader accepts from a receiver. */
export const offloaderInbound = {
  ping: receiverInbound.ping,
  pong: receiverInbound.pong,
  terminate: receiverInbound.terminate,
  // `running` is a boolean on the wire (upstream's; WIRE-FACTS §3, §10).
  queue_status: z.object({ type: z.literal("queue_status"), idle: z.boolean(), running: z.boolean(), queue_depth: int.min(0) }),
  submit_job_ack: z.object({ type: z.literal("submit_job_ack"), job_id: jobId, accepted: z.boolean(), reason: shortText(64).optional() }),
  job_state_changed: z.object({
    type: z.literal("job_state_changed"),
    job_id: jobId,
    status: z.enum(["queued", "running", "completed", "failed", "cancelled"]),
    // Upstream sends "" for ordinary failures and cancellations: an empty message is fine.
    error_message: shortText(4096).default(""),
    /** "provision": the build server could not provide the ESPHome version asked for (build here instead); else "". */
    failure_reason: z.unknown().optional().transform((v) => (typeof v === "string" ? v.slice(0, 64) : "")),
  }),
  // A line as long as the frame allows (upstream sends lines of 20,000+ characters); the remote runner cuts it like local output.
  job_output: z.object({ type: z.literal("job_output"), job_id: jobId, stream: z.enum(["stdout", "stderr"]), line: shortText(APP_FRAME_MAX_BYTES) }),
  artifacts_start: z.object({
    type: z.literal("artifacts_start"),
    job_id: jobId,
    total_bytes: int,
    num_chunks: int,
    artifacts_sha256: shortText(64),
    firmware_offset: shortText(16).default("0x0"),
  }),
  artifacts_chunk: z.object({ type: z.literal("artifacts_chunk"), ...chunk }),
  // `detail` (newer upstream): a human-readable word on a refusal, e.g. the missing path.
  artifacts_end: z.object({ type: z.literal("artifacts_end"), job_id: jobId, accepted: z.boolean(), reason: shortText(64).optional(), detail: z.string().max(1024).catch("").optional() }),
  reset_build_env_ack: z.object({ type: z.literal("reset_build_env_ack"), job_id: jobId, accepted: z.boolean(), reason: shortText(64).optional() }),
} as const;

export type ReceiverInbound = { [K in keyof typeof receiverInbound]: z.infer<(typeof receiverInbound)[K]> };
export type OffloaderInbound = { [K in keyof typeof offloaderInbound]: z.infer<(typeof offloaderInbound)[K]> };

/**
 * What each role may send: exactly what the other role's schemas take (their
 * input side), so a frame that compiles is a frame the peer parses. Chunk
 * frames of big transfers go through `encodeChunkFrame` (chunks.ts) instead,
 * byte-identical to what `send` would write.
 */
type Outbound<T extends Record<string, z.ZodType>> = { [K in keyof T]: z.input<T[K]> & { type: K } }[keyof T];
export type OffloaderOutbound = Outbound<typeof receiverInbound>;
export type BuildServerOutbound = Outbound<typeof offloaderInbound>;
/** Any frame of the peer link, either direction. */
export type PeerLinkFrame = OffloaderOutbound | BuildServerOutbound;

export type ParsedMessage<M> = { [K in keyof M]: { type: K; message: M[K] } }[keyof M];

/**
 * Parses one decrypted frame: `unknown` for a type we do not know (ignored, for
 * forward compatibility), `malformed` for a known type with bad fields.
 */
export function parseMessage<T extends Record<string, z.ZodType>>(
  table: T,
  raw: Record<string, unknown>,
): { kind: "ok"; type: keyof T & string; message: unknown } | { kind: "unknown"; type: string } | { kind: "malformed"; type: string; error: string } {
  const type = typeof raw.type === "string" ? raw.type : "";
  const schema = Object.hasOwn(table, type) ? table[type] : undefined;
  if (schema === undefined) return { kind: "unknown", type };
  const result = schema.safeParse(raw);
  if (!result.success) return { kind: "malformed", type, error: result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ") };
  return { kind: "ok", type, message: result.data };
}
