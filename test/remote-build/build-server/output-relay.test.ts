/**
 * The build server relaying a job's output to its peer over a real secure
 * channel on loopback, through a proxy that can stop reading (so the backlog
 * is real TCP backpressure).
 */
import { describe, expect, it } from "vitest";
import { offloaderInbound } from "../../../src/remote-build/transport/messages.ts";
import { OutputRelay, RELAY_BACKLOG_BYTES, skippedNotice } from "../../../src/remote-build/build-server/output-relay.ts";
import { waitFor } from "../../helpers/tmp.ts";
import { secureChannelPair } from "../../helpers/secure-pair.ts";

describe("OutputRelay", () => {
  it("sends each line of a peer's job, skips lines while the session is backed up, and says how many it skipped", async () => {
    const { client, server, proxy } = await secureChannelPair({ viaProxy: true });
    const received: { job_id: string; line: string }[] = [];
    client.onMessage((m) => {
      const frame = offloaderInbound.job_output.parse(m); // what the offloader accepts
      received.push({ job_id: frame.job_id, line: frame.line });
    });
    const asked: string[] = [];
    const relay = new OutputRelay({
      target: (jobId) => {
        asked.push(jobId);
        return jobId === "local-job" ? { peer: "peer-a", remoteJobId: "their-job" } : null;
      },
      channels: (peer) => (peer === "peer-a" ? [server] : []),
    });
    relay.line("own-job", "a job of our own is not relayed\n");

    proxy.pause();
    const pad = "x".repeat(1000);
    let sent = 0;
    let peak = 0;
    // Until the backlog passes the mark (the kernel's loopback buffers fill first).
    while (server.bufferedAmount <= RELAY_BACKLOG_BYTES) {
      relay.line("local-job", `line ${sent++} ${pad}\n`);
      peak = Math.max(peak, server.bufferedAmount);
      if (sent % 64 === 0) await new Promise((r) => setImmediate(r));
      expect(sent).toBeLessThan(200_000);
    }
    const queued = sent; // every line so far went to the channel
    for (let i = 0; i < 500; i++) relay.line("local-job", `line ${sent++} ${pad}\n`);
    peak = Math.max(peak, server.bufferedAmount);
    expect(peak).toBeLessThan(RELAY_BACKLOG_BYTES + 4096); // the line that crossed the mark, no more

    proxy.resume();
    await waitFor(() => server.bufferedAmount === 0, 20_000, "the backlog to drain");
    relay.line("local-job", "after the backlog\n");
    await waitFor(() => received.at(-1)?.line === "after the backlog\n", 20_000, "the line after the backlog");
    expect(received.map((r) => r.line)).toEqual([
      ...Array.from({ length: queued }, (_, i) => `line ${i} ${pad}\n`),
      skippedNotice(500),
      "after the backlog\n",
    ]);
    expect(new Set(received.map((r) => r.job_id))).toEqual(new Set(["their-job"]));

    // Lines skipped at the very end are reported before the job's final state.
    proxy.pause();
    while (server.bufferedAmount <= RELAY_BACKLOG_BYTES) {
      relay.line("local-job", `tail ${pad}\n`);
      await new Promise((r) => setImmediate(r));
    }
    const before = received.length;
    relay.line("local-job", "skipped 1\n");
    relay.line("local-job", "skipped 2\n");
    proxy.resume();
    await waitFor(() => server.bufferedAmount === 0, 20_000, "the backlog to drain");
    relay.end("local-job");
    await waitFor(() => received.at(-1)?.line === skippedNotice(2), 20_000, "the count of lines skipped at the end");
    expect(received.slice(before).filter((r) => !r.line.startsWith("tail "))).toEqual([{ job_id: "their-job", line: skippedNotice(2) }]);
    // Each job's target is looked up once, and forgotten when the job ends.
    expect(asked).toEqual(["own-job", "local-job"]);
    relay.line("local-job", "a new run\n");
    expect(asked).toEqual(["own-job", "local-job", "local-job"]);
    client.close("done");
  }, 60_000);
});
