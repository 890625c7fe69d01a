import { describe, expect, it } from "vitest";
import { EventBus } from "../src/events.ts";

const payload = { job_id: "j", line: "x\n" };

describe("EventBus", () => {
  it("calls every listener even when one throws", () => {
    const bus = new EventBus();
    const seen: number[] = [];
    bus.on("job_output", () => seen.push(1));
    bus.on("job_output", () => { throw new Error("broken listener"); });
    bus.on("job_output", () => seen.push(3));
    bus.onAny(() => seen.push(4));
    bus.emit("job_output", payload);
    expect(seen).toEqual([1, 3, 4]);
  });

  it("unsubscribes, once, and a listener removed during an emit still sees that emit", () => {
    const bus = new EventBus();
    const seen: string[] = [];
    let offB: () => void = () => undefined;
    const offA = bus.on("job_output", () => { seen.push("a"); offB(); });
    offB = bus.on("job_output", () => seen.push("b"));
    bus.emit("job_output", payload);
    bus.emit("job_output", payload);
    offA();
    offA();
    bus.emit("job_output", payload);
    expect(seen).toEqual(["a", "b", "a"]);
    expect(bus.listenerCount("job_output")).toBe(0);
  });

  it("delivers only the events subscribed to", () => {
    const bus = new EventBus();
    const seen: string[] = [];
    bus.on("job_progress", (e) => seen.push(`${e.job_id}:${e.progress}`));
    bus.emit("job_output", payload);
    bus.emit("job_progress", { job_id: "j", progress: 5 });
    expect(seen).toEqual(["j:5"]);
  });
});
