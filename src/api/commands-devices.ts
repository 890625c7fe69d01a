/** The panel API's device commands: the YAML list, live state, addresses, probes and log streams. */
import { z } from "zod";
import { notFound } from "../errors.ts";
import { resolveConfigurationPath } from "../esphome/configuration.ts";
import { streamDeviceLogs } from "../devices/device-logs.ts";
import { type Command, configuration, deviceAddress, none, reply, requireConfiguration, stream } from "./command-kit.ts";

/** Open `devices/logs` streams by `<client>\0<configuration>`: how to stop each. */
const LOG_STREAMS = new Map<string, () => void>();

export const DEVICE_COMMANDS = {
  "devices/list": reply(none, (_args, s) => s.devices.list()),

  "devices/states": reply(none, (_args, s) => s.deviceStates.list()),

  "devices/set_address": reply(z.strictObject({ configuration, address: deviceAddress.nullable() }), (args, s) =>
    s.deviceStates.setAddress(args.configuration, args.address),
  ),

  "devices/probe": reply(z.strictObject({ configuration }), (args, s) => {
    if (s.deviceStates.get(args.configuration) === undefined) throw notFound(`No device with configuration ${args.configuration}`);
    s.deviceStates.probeNow(args.configuration);
    return { probing: true };
  }),

  "devices/logs": stream(z.strictObject({ configuration }), async (args, s, sink, client) => {
    await requireConfiguration(s, args.configuration);
    const state = s.deviceStates.get(args.configuration);
    if (state === undefined) throw notFound(`No device with configuration ${args.configuration}`);
    const abort = new AbortController();
    // One log stream per device and connection: a new one replaces the old; `devices/logs_stop` ends it.
    const key = `${client.clientId}\u0000${args.configuration}`;
    LOG_STREAMS.get(key)?.();
    const stop = (): void => {
      abort.abort();
      sink.end();
    };
    LOG_STREAMS.set(key, stop);
    sink.onEnd(() => {
      abort.abort();
      if (LOG_STREAMS.get(key) === stop) LOG_STREAMS.delete(key);
    });
    sink.send("started", { address: state.address });
    const file = resolveConfigurationPath(s.paths.configDir, args.configuration);
    void streamDeviceLogs(
      s.deviceLogs,
      file,
      state.address,
      { line: (text) => { sink.send("line", { line: text }, { paced: true }); }, backlogged: () => sink.backlogged() },
      abort.signal,
    ).then((result) => {
      if (abort.signal.aborted) return;
      sink.send("ended", result);
      sink.end();
    });
  }),

  "devices/logs_stop": reply(z.strictObject({ configuration }), (args, _s, client) => {
    const stop = LOG_STREAMS.get(`${client.clientId}\u0000${args.configuration}`);
    stop?.();
    return { stopped: stop !== undefined };
  }),
} satisfies Record<string, Command>;
