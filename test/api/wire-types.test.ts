/**
 * src/api/wire.ts is the one definition of the panel API's shapes, used by
 * the backend and the browser panel alike. What cannot simply import it is
 * held to it here: the zod schema the job index is parsed with, by the
 * compiler (`npm run typecheck`, part of CI) and by a round trip.
 */
import { describe, expect, expectTypeOf, it } from "vitest";
import type { z } from "zod";
import { SUBSCRIBED_EVENTS, type FirmwareJob } from "../../src/api/wire.ts";
import { JOB_STATUSES, firmwareJobSchema } from "../../src/firmware/job.ts";

describe("the wire types", () => {
  it("match the job index's schema, field for field", () => {
    expectTypeOf<z.infer<typeof firmwareJobSchema>>().toEqualTypeOf<Omit<FirmwareJob, "output">>();
  });

  it("list each subscribed event once", () => {
    // (A build server's per-line output is no event at all: it goes to the job's RemoteJob handle,
    // and panels see it as that job's own `job_output`.)
    expect(new Set(SUBSCRIBED_EVENTS).size).toBe(SUBSCRIBED_EVENTS.length);
  });

  it("a stored job round-trips through the schema unchanged", () => {
    const job: Omit<FirmwareJob, "output"> = {
      job_id: "0123456789ab", configuration: "kitchen.yaml", job_type: "install", status: JOB_STATUSES[1], port: "OTA",
      created_at: "2026-01-01T00:00:00.000Z", started_at: null, completed_at: null, exit_code: null, error: null, progress: 5,
      phase: "compile", source: "remote", source_pin_sha256: "ab".repeat(32), source_label: "B", remote_peer: "", remote_job_id: "",
      remote_peer_label: "", force_local: false, target_esphome_version: "", failure_reason: "",
    };
    expect(firmwareJobSchema.parse(job)).toEqual(job);
  });
});
