import { describe, expect, it } from "vitest";
import type { EventMap } from "../src/api/wire.ts";
import { EventBus } from "../src/events.ts";
import { MAX_PROBLEMS, Problems } from "../src/problems.ts";

function setup() {
  const bus = new EventBus();
  const added: EventMap["builder_problem_added"][] = [];
  const cleared: string[] = [];
  bus.on("builder_problem_added", (e) => added.push(e));
  bus.on("builder_problem_cleared", (e) => cleared.push(e.id));
  let t = 0;
  const problems = new Problems({ bus, now: () => new Date(Date.UTC(2026, 10, 23, 10, 0, t++)) });
  return { problems, added, cleared };
}

describe("Problems", () => {
  it("lists reported problems as plain objects, oldest first, with an event each", () => {
    const { problems, added } = setup();
    problems.report({ code: "state_file_corrupt", subject: "/s/jobs.json", message: "moved aside" });
    problems.report({ code: "disk_full", subject: "/s/job-logs", message: "no space" });
    expect(problems.list()).toEqual([
      { id: "state_file_corrupt:/s/jobs.json", code: "state_file_corrupt", subject: "/s/jobs.json", message: "moved aside", at: "2026-11-23T10:00:00.000Z" },
      { id: "disk_full:/s/job-logs", code: "disk_full", subject: "/s/job-logs", message: "no space", at: "2026-11-23T10:00:01.000Z" },
    ]);
    expect(added.map((e) => e.problem.id)).toEqual(["state_file_corrupt:/s/jobs.json", "disk_full:/s/job-logs"]);
    // The list is a copy: changing it changes nothing.
    problems.list()[0]!.message = "changed";
    expect(problems.list()[0]?.message).toBe("moved aside");
  });

  it("replaces a problem with the same code and subject, and sends nothing for the same message again", () => {
    const { problems, added } = setup();
    problems.report({ code: "disk_full", subject: "/s/jobs.json", message: "no space" });
    problems.report({ code: "disk_full", subject: "/s/jobs.json", message: "no space" });
    expect(added).toHaveLength(1);
    problems.report({ code: "disk_full", subject: "/s/jobs.json", message: "still no space" });
    expect(added).toHaveLength(2);
    expect(problems.list()).toMatchObject([{ message: "still no space" }]);
  });

  it("clears and dismisses with an event, and says false for an unknown id", () => {
    const { problems, cleared } = setup();
    problems.report({ code: "disk_full", subject: "/a", message: "x" });
    problems.report({ code: "storage_error", subject: "/b", message: "y" });
    problems.clear("disk_full", "/a");
    problems.clear("disk_full", "/a");
    expect(problems.dismiss("storage_error:/b")).toBe(true);
    expect(problems.dismiss("storage_error:/b")).toBe(false);
    expect(cleared).toEqual(["disk_full:/a", "storage_error:/b"]);
    expect(problems.list()).toEqual([]);
  });

  it("keeps at most MAX_PROBLEMS, dropping the oldest, and bounds a message", () => {
    const { problems, cleared } = setup();
    for (let i = 0; i <= MAX_PROBLEMS; i++) problems.report({ code: "storage_error", subject: `/f${i}`, message: "m".repeat(5000) });
    expect(problems.list()).toHaveLength(MAX_PROBLEMS);
    expect(cleared).toEqual(["storage_error:/f0"]);
    expect(problems.list()[0]?.message.length).toBe(2000);
  });
});
