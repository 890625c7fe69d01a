/** One error shape (BuilderError) with each module's code list; the peer link's failure codes (src/errors.ts). */
import { describe, expect, it } from "vitest";
import { BuilderError, ErrorCode, isBuilderError, isCodedError, peerLinkCode } from "../src/errors.ts";
import { TAR_SAFETY_CODES, tarSafetyError } from "../src/remote-build/transport/tar-policy.ts";

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

describe("one error shape, told apart by code lists", () => {
  it("recognises a module's error by its code list, whatever threw it", () => {
    const err: unknown = tarSafetyError("unsafe_path", "../etc/passwd escapes the destination");
    expect(err).toBeInstanceOf(BuilderError);
    expect(isCodedError(err, TAR_SAFETY_CODES)).toBe(true);
    expect((err as BuilderError<string>).code).toBe("unsafe_path");
  });

  it("does not take an API error for a module's, nor a module's for the API's", () => {
    const api: unknown = new BuilderError(ErrorCode.NotFound, "no such job");
    const tar: unknown = tarSafetyError("unsafe_path", "/etc/passwd is absolute");
    expect(isCodedError(api, TAR_SAFETY_CODES)).toBe(false);
    expect(isBuilderError(api)).toBe(true);
    expect(isBuilderError(tar)).toBe(false);
  });

  it("never takes a plain Error or a look-alike object with a code", () => {
    expect(isBuilderError(new Error("x"))).toBe(false);
    expect(isCodedError({ code: "malformed", message: "x" }, TAR_SAFETY_CODES)).toBe(false);
    expect(isBuilderError(undefined)).toBe(false);
  });
});
