/**
 * The panel is bundled for the browser and never imports backend code, so it
 * keeps its own copy of the panel API's wire shapes (panel/src/data/types.ts).
 * This file holds that copy to the backend's types: each `expectTypeOf` line
 * is checked by the compiler (`npm run typecheck`, part of CI), so a field
 * added, removed or retyped on either side fails the build; the helpers the
 * panel copied are compared by running them.
 */
import { describe, expect, expectTypeOf, it } from "vitest";
import type * as Panel from "../../panel/src/data/types.ts";
import { isTerminal as panelIsTerminal, phasesOf as panelPhasesOf } from "../../panel/src/data/types.ts";
import type { InitialState, SUBSCRIBED_EVENTS, ServerInfo } from "../../src/api/commands.ts";
import type { Device } from "../../src/esphome/device-scan.ts";
import type { SerialPort } from "../../src/esphome/serial-ports.ts";
import type { EventMap } from "../../src/events.ts";
import type { FirmwareBinary } from "../../src/firmware/binaries.ts";
import { JOB_STATUSES, JOB_TYPES, isTerminal, phasesOf, type FirmwareJob, type JobPhase, type JobSource, type TerminalStatus } from "../../src/firmware/job.ts";
import type { QueueStatus } from "../../src/firmware/queue.ts";
import type { DiscoveredHost } from "../../src/remote-build/discovery.ts";
import type { Offloader, OffloaderAlert, PairingSummary } from "../../src/remote-build/offloader.ts";
import type { PeerSummary, ReceiverSettings } from "../../src/remote-build/receiver.ts";
import type { IdentityView, RemoteBuild } from "../../src/remote-build/remote-build.ts";

describe("the panel's copy of the wire types", () => {
  it("matches the backend's, type for type", () => {
    expectTypeOf<Panel.JobType>().toEqualTypeOf<(typeof JOB_TYPES)[number]>();
    expectTypeOf<Panel.JobStatus>().toEqualTypeOf<(typeof JOB_STATUSES)[number]>();
    expectTypeOf<Panel.TerminalStatus>().toEqualTypeOf<TerminalStatus>();
    expectTypeOf<Panel.JobPhase>().toEqualTypeOf<JobPhase>();
    expectTypeOf<Panel.JobSource>().toEqualTypeOf<JobSource>();
    expectTypeOf<Panel.FirmwareJob>().toEqualTypeOf<FirmwareJob>();
    expectTypeOf<Panel.Device>().toEqualTypeOf<Device>();
    expectTypeOf<Panel.QueueStatus>().toEqualTypeOf<QueueStatus>();
    expectTypeOf<Panel.ServerInfo>().toEqualTypeOf<ServerInfo>();
    expectTypeOf<Panel.SerialPort>().toEqualTypeOf<SerialPort>();
    expectTypeOf<Panel.FirmwareBinary>().toEqualTypeOf<FirmwareBinary>();
    expectTypeOf<Panel.RemoteIdentity>().toEqualTypeOf<IdentityView>();
    expectTypeOf<Panel.ReceiverPeer>().toEqualTypeOf<PeerSummary>();
    expectTypeOf<Panel.ReceiverSettings>().toEqualTypeOf<ReceiverSettings>();
    expectTypeOf<Panel.Pairing>().toEqualTypeOf<PairingSummary>();
    expectTypeOf<Panel.OffloaderSettings>().toEqualTypeOf<ReturnType<Offloader["settings"]>>();
    expectTypeOf<Panel.OffloaderAlert>().toEqualTypeOf<OffloaderAlert>();
    expectTypeOf<Panel.DiscoveredHost>().toEqualTypeOf<DiscoveredHost>();
    expectTypeOf<Panel.RemoteBuildSnapshot>().toEqualTypeOf<ReturnType<RemoteBuild["snapshot"]>>();
    expectTypeOf<Panel.PairPreview>().toEqualTypeOf<Awaited<ReturnType<Offloader["previewPair"]>>>();
    // remote_build is optional on the panel's side (older builders leave it out).
    expectTypeOf<Required<Panel.InitialState>>().toEqualTypeOf<InitialState>();
    // Every event a panel subscribes to carries exactly the backend's payload.
    expectTypeOf<Panel.SubscribedEventMap>().toEqualTypeOf<Pick<EventMap, keyof Panel.SubscribedEventMap>>();
    expectTypeOf<keyof Panel.SubscribedEventMap>().toEqualTypeOf<(typeof SUBSCRIBED_EVENTS)[number]>();
  });

  it("has the same isTerminal and phasesOf as the backend", () => {
    for (const status of JOB_STATUSES) expect(panelIsTerminal(status)).toBe(isTerminal(status));
    for (const type of JOB_TYPES) expect(panelPhasesOf(type)).toEqual(phasesOf(type));
  });
});
