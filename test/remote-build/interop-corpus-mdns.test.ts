/**
 * Our mDNS TXT beside the upstream Device Builder's records
 * (../shared/interop/upstream-2026-05-31/mdns-txt.json): upstream's keys,
 * with real values (the ESPHome version the builder probed, its pin and
 * peer-link port while the build server is on), and the pin and port gone
 * while it is off. `friendly_name` is newer upstream's addition.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { encodeTxt } from "../../src/remote-build/discovery/txt.ts";
import { startBuilder } from "../helpers/builder.ts";
import { corpusFile, corpusMissing } from "../helpers/corpus.ts";
import { waitFor } from "../helpers/tmp.ts";

interface Record {
  txt: { [key: string]: string };
}

describe.skipIf(corpusMissing())("the mDNS TXT record", () => {
  it("has upstream's keys with real values, with the build server on and off", async () => {
    const corpus = JSON.parse(readFileSync(corpusFile("mdns-txt.json"), "utf8")) as { listener_bound: Record[]; listener_unbound_after_set_settings_enabled_false: Record[] };
    const upstreamOn = Object.keys(corpus.listener_bound[0]!.txt).sort();
    const upstreamOff = Object.keys(corpus.listener_unbound_after_set_settings_enabled_false[0]!.txt).sort();
    expect(upstreamOn).toEqual(["esphome_version", "pin_sha256", "remote_build_port", "server_version"]);

    const { builder } = await startBuilder();
    // The version the ESPHome CLI (here the stand-in) reports, once the start-up probe answers; never "".
    await waitFor(() => builder.info().esphome_version !== null, 15_000, "the ESPHome version probe");
    const on = encodeTxt(builder.remote.txt());
    expect(Object.keys(on).sort()).toEqual([...upstreamOn, "friendly_name"].sort());
    expect(on).toMatchObject({
      esphome_version: builder.info().esphome_version!,
      server_version: builder.info().server_version,
      pin_sha256: builder.remote.identityView().pin_sha256,
      remote_build_port: String(builder.remote.receiver.port),
    });
    expect(on["esphome_version"]).toMatch(/^\d{4}\.\d+\.\d+/);
    for (const [key, value] of Object.entries(corpus.listener_bound[0]!.txt)) expect(typeof on[key], key).toBe(typeof value);

    await builder.remote.receiver.setEnabled(false);
    const off = encodeTxt(builder.remote.txt());
    expect(Object.keys(off).sort()).toEqual([...upstreamOff, "friendly_name"].sort());
  });
});
