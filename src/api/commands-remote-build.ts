/** The panel API's remote-build commands: identity, the build server's settings and peers, pairings and where compiles run. */
import { z } from "zod";
import { LOCAL_BUILDS, VERSION_POLICIES } from "./wire.ts";
import { BuilderError, ErrorCode, notFound } from "../errors.ts";
import { type Command, dashboardId, hostname, none, pin, reply, tcpPort } from "./command-kit.ts";
import { PAIRING_KEY_RULE, parsePairingKey } from "../remote-build/transport/pairing-key-text.ts";

/** A headless build server's printed key: case, spaces and dashes ignored; passed on in its grouped form. */
const pairingKey = z.string().transform((value, ctx) => {
  const key = parsePairingKey(value);
  if (key === null) {
    ctx.addIssue({ code: "custom", message: PAIRING_KEY_RULE });
    return z.NEVER;
  }
  return key;
});

export const REMOTE_BUILD_COMMANDS = {
  "remote_build/get_identity": reply(none, (_args, s) => s.remote.identityView()),

  "remote_build/rotate_identity": reply(none, (_args, s) => s.remote.rotateIdentity()),

  "remote_build/get_settings": reply(none, (_args, s) => s.remote.receiver.settings()),

  "remote_build/set_settings": reply(z.strictObject({ enabled: z.boolean().optional(), version_policy: z.enum(VERSION_POLICIES).optional() }), async (args, s) => {
    if (args.version_policy !== undefined) s.remote.receiver.setVersionPolicy(args.version_policy);
    if (args.enabled !== undefined) await s.remote.receiver.setEnabled(args.enabled);
    return s.remote.receiver.settings();
  }),

  "remote_build/set_pairing_window": reply(z.strictObject({ open: z.boolean() }), (args, s, client) => {
    const result = s.remote.receiver.setPairingWindow(client.clientId, args.open);
    if (args.open) client.onClose("pairing_window", () => { s.remote.receiver.clientGone(client.clientId); });
    return result;
  }),

  "remote_build/approve_peer": reply(z.strictObject({ dashboard_id: dashboardId }), async (args, s) => {
    const peer = s.remote.receiver.approve(args.dashboard_id);
    await s.remote.receiver.flush();
    return peer;
  }),

  "remote_build/remove_peer": reply(z.strictObject({ dashboard_id: dashboardId }), async (args, s) => {
    s.remote.receiver.remove(args.dashboard_id);
    await s.remote.receiver.flush();
    return { removed: true };
  }),

  "remote_build/dismiss_problem": reply(z.strictObject({ id: z.string().min(1).max(64) }), (args, s) => {
    s.remote.dismissProblem(args.id);
    return { dismissed: true };
  }),

  "remote_build/preview_pair": reply(z.strictObject({ hostname, port: tcpPort }), (args, s) => s.remote.offloader.previewPair(args.hostname, args.port)),

  "remote_build/request_pair": reply(
    z.strictObject({ hostname, port: tcpPort, pin_sha256: pin, label: z.string().max(128).optional(), pairing_key: pairingKey.optional() }),
    (args, s) => s.remote.offloader.requestPair(args.hostname, args.port, args.pin_sha256, args.label, args.pairing_key),
  ),

  "remote_build/get_offloader_settings": reply(none, (_args, s) => s.remote.offloader.settings()),

  "remote_build/set_offloader_settings": reply(z.strictObject({ remote_builds_enabled: z.boolean().optional(), version_match_policy: z.enum(VERSION_POLICIES).optional() }), (args, s) => {
    if (args.version_match_policy !== undefined) s.remote.offloader.setVersionMatchPolicy(args.version_match_policy);
    if (args.remote_builds_enabled !== undefined) s.remote.offloader.setRemoteBuildsEnabled(args.remote_builds_enabled);
    return s.remote.offloader.settings();
  }),

  "remote_build/set_local_builds": reply(z.strictObject({ local_builds: z.enum(LOCAL_BUILDS) }), (args, s) => {
    s.remote.placement.set(args.local_builds);
    return { local_builds: s.remote.placement.localBuilds };
  }),

  /** Wipes the folders this builder's builds use on a paired build server (`reset_build_env`), as a job here. */
  "remote_build/reset_build_env": reply(z.strictObject({ pin_sha256: pin }), (args, s) => {
    const pairing = s.remote.offloader.pairings().find((p) => p.pin_sha256 === args.pin_sha256);
    if (pairing === undefined) throw notFound(`No pairing with ${args.pin_sha256}`);
    if (!pairing.connected) throw new BuilderError(ErrorCode.Unavailable, `${pairing.label} is not connected; reset its build environment once it is`);
    if (!pairing.reset_build_env_supported) {
      throw new BuilderError(ErrorCode.Unavailable, `${pairing.label} does not support resetting its build environment remotely; update it, or clean it there`);
    }
    return s.queue.enqueue({ configuration: "", job_type: "clean_all", source: "remote", source_pin_sha256: pairing.pin_sha256, source_label: pairing.label });
  }),

  "remote_build/set_pairing_enabled": reply(z.strictObject({ pin_sha256: pin, enabled: z.boolean() }), (args, s) =>
    s.remote.offloader.setPairingEnabled(args.pin_sha256, args.enabled),
  ),

  "remote_build/unpair": reply(z.strictObject({ pin_sha256: pin }), (args, s) => {
    s.remote.offloader.unpair(args.pin_sha256);
    return { removed: true };
  }),

  "remote_build/edit_pairing_endpoint": reply(z.strictObject({ pin_sha256: pin, hostname, port: tcpPort }), (args, s) =>
    s.remote.offloader.editEndpoint(args.pin_sha256, args.hostname, args.port),
  ),
} satisfies Record<string, Command>;
