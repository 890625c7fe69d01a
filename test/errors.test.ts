/** The peer link's failure codes are BuilderError codes (src/errors.ts). */
import { describe, expect, it } from "vitest";
import { ErrorCode, peerLinkCode } from "../src/errors.ts";

describe("peer-link error codes", () => {
  it("keeps a build server's known reason and a chunk check's code as they are", () => {
    expect(peerLinkCode("job_not_completed")).toBe(ErrorCode.JobNotCompleted);
    expect(peerLinkCode("hash_mismatch")).toBe(ErrorCode.HashMismatch);
    expect(peerLinkCode("session_lost")).toBe(ErrorCode.SessionLost);
  });

  it("turns any other reason into peer_refused, never a code of the API's own", () => {
    expect(peerLinkCode("disk on fire")).toBe("peer_refused");
    expect(peerLinkCode("")).toBe("peer_refused");
  });
});
