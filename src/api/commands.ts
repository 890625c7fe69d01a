/**
 * The panel API's command table: every command names its argument schema; the
 * dispatcher validates each inbound message against it before the handler
 * runs. The parts live beside it (command-kit.ts: the shared shapes and
 * schemas; commands-devices.ts, commands-firmware.ts, commands-remote-build.ts).
 */
import { z } from "zod";
import { SUBSCRIBED_EVENTS, type InitialState } from "./wire.ts";
import type { EventMap, EventName } from "../events.ts";
import { type Command, esphomeVersion, none, reply, stream } from "./command-kit.ts";
import { DEVICE_COMMANDS } from "./commands-devices.ts";
import { FIRMWARE_COMMANDS } from "./commands-firmware.ts";
import { REMOTE_BUILD_COMMANDS } from "./commands-remote-build.ts";

export type { ApiServices, ClientContext, Command, StreamSink } from "./command-kit.ts";
export { deviceName } from "./commands-firmware.ts";

const DROPPABLE = new Set<EventName>(["job_output", "job_progress"]);

export const COMMANDS = {
  ping: reply(none, () => ({ pong: true })),

  "config/info": reply(none, (_args, s) => s.info()),

  "config/serial_ports": reply(none, (_args, s) => s.serialPorts()),

  "problems/list": reply(none, (_args, s) => s.problems.list()),

  "problems/dismiss": reply(z.strictObject({ id: z.string().min(1).max(8192) }), (args, s) => ({ dismissed: s.problems.dismiss(args.id) })),

  "esphome/status": reply(none, (_args, s) => s.esphome.status()),

  "esphome/versions": reply(z.strictObject({ prereleases: z.boolean().optional() }), (args, s) => s.esphome.versions(args.prereleases === true)),

  "esphome/install": reply(z.strictObject({ version: esphomeVersion }), (args, s) => s.esphome.install(args.version)),

  "esphome/remove": reply(z.strictObject({ version: esphomeVersion }), (args, s) => s.esphome.remove(args.version)),

  "esphome/log": reply(none, (_args, s) => {
    const state = s.esphome.status().state;
    return { version: state.status === "idle" ? null : state.version, lines: s.esphome.provisionLog() };
  }),

  subscribe_events: stream(z.strictObject({ job_output: z.boolean().optional() }), (args, s, sink) => {
    const names = args.job_output === false ? SUBSCRIBED_EVENTS.filter((n) => n !== "job_output") : SUBSCRIBED_EVENTS;
    // Listeners first, then the snapshot: nothing that happens in between is lost.
    const buffered: [EventName, unknown][] = [];
    let ready = false;
    for (const name of names) {
      sink.onEnd(
        s.bus.on(name, (payload: EventMap[typeof name]) => {
          if (ready) sink.send(name, payload, { droppable: DROPPABLE.has(name) });
          else buffered.push([name, payload]);
        }),
      );
    }
    const state: InitialState = {
      jobs: s.queue.list(),
      devices: s.devices.list(),
      queue_status: s.queue.status(),
      server: s.info(),
      problems: s.problems.list(),
      remote_build: s.remote.snapshot(),
      esphome: s.esphome.status(),
      device_states: s.deviceStates.list(),
    };
    sink.send("initial_state", state);
    ready = true;
    for (const [name, payload] of buffered) sink.send(name, payload);
  }),
  ...DEVICE_COMMANDS,
  ...FIRMWARE_COMMANDS,
  ...REMOTE_BUILD_COMMANDS,
} satisfies Record<string, Command>;

export type CommandName = keyof typeof COMMANDS;

export const COMMAND_NAMES = Object.keys(COMMANDS) as CommandName[];

