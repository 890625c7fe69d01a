// Interoperability of src/remote-build/transport/noise.ts with the Python `noiseprotocol`
// package, which the upstream Device Builder uses for the peer link. The
// Python side is test/remote-build/transport/noise_peer.py. Needs `bash test/setup.sh`
// (installs noiseprotocol into .venv); skipped with a reason otherwise.
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from "node:child_process";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { testPython } from "../../helpers/python.ts";
import { pinSha256 } from "../../../src/remote-build/transport/fingerprint.ts";
import { NoiseHandshake } from "../../../src/remote-build/transport/noise.ts";
import { generateStaticKey, publicKeyOf } from "../../../src/remote-build/transport/noise-primitives.ts";
import { missingTool } from "../../helpers/tools.ts";
import { expectNoiseError } from "./noise-expect.ts";

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** NOISE_INTEROP_PYTHON overrides the interpreter (e.g. to check the skip path). */
const PYTHON = testPython(process.env.NOISE_INTEROP_PYTHON);
const PEER_SCRIPT = path.join(HERE, "noise_peer.py");

const probe = spawnSync(PYTHON, ["-c", "import noise.connection"], { encoding: "utf8" });
const pythonNoise = probe.status === 0;
const skipNote = pythonNoise ? "" : ` (SKIPPED: \`import noise\` failed with ${PYTHON}; run \`bash test/setup.sh\`)`;

const toHex = (b: Uint8Array): string => Buffer.from(b).toString("hex") || "-";
const fromHex = (s: string): Uint8Array => (s === "-" ? new Uint8Array(0) : new Uint8Array(Buffer.from(s, "hex")));
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

class PythonError extends Error {}

/** One noise_peer.py process; `call` sends a command line and returns the hex reply as bytes. */
class PythonPeer {
  readonly publicKey: Uint8Array;
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #lines: AsyncIterator<string>;

  private constructor(child: ChildProcessWithoutNullStreams, lines: AsyncIterator<string>, publicKey: Uint8Array) {
    this.#child = child;
    this.#lines = lines;
    this.publicKey = publicKey;
  }

  static async start(role: "initiator" | "responder", staticKey: Uint8Array, ephemeralKey?: Uint8Array): Promise<PythonPeer> {
    const args = [PEER_SCRIPT, "--role", role, "--static", toHex(staticKey)];
    if (ephemeralKey !== undefined) args.push("--ephemeral", toHex(ephemeralKey));
    const child = spawn(PYTHON, args, { stdio: ["pipe", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const first = await lines.next();
    const ready = first.done === true ? "" : first.value;
    if (!ready.startsWith("ready ")) throw new Error(`noise_peer.py did not start: ${ready} ${stderr}`);
    const peer = new PythonPeer(child, lines, fromHex(ready.slice("ready ".length)));
    running.push(peer);
    return peer;
  }

  async call(command: string, arg?: Uint8Array): Promise<Uint8Array> {
    this.#child.stdin.write(arg === undefined ? `${command}\n` : `${command} ${toHex(arg)}\n`);
    const next = await this.#lines.next();
    if (next.done === true) throw new Error(`noise_peer.py exited during ${command}`);
    const [status, ...rest] = next.value.split(" ");
    if (status === "ok") return rest[0] === "true" || rest[0] === "false" ? utf8(rest[0]) : fromHex(rest[0] ?? "-");
    throw new PythonError(`${command}: ${rest.join(" ")}`);
  }

  stop(): void {
    this.#child.stdin.end();
    this.#child.kill();
  }
}

const running: PythonPeer[] = [];
afterEach(() => {
  for (const peer of running.splice(0)) peer.stop();
});

async function expectPythonError(promise: Promise<unknown>): Promise<void> {
  await expect(promise).rejects.toBeInstanceOf(PythonError);
}

describe.skipIf(missingTool(pythonNoise, "Python noiseprotocol in .venv"))(`Noise interop with Python noiseprotocol${skipNote}`, () => {
  it("TS initiator <-> Python responder: handshake, pins, transport both ways", async () => {
    const iKey = generateStaticKey();
    const rKey = generateStaticKey();
    const rEph = generateStaticKey();
    const py = await PythonPeer.start("responder", rKey, rEph);
    expect(toHex(py.publicKey)).toBe(toHex(publicKeyOf(rKey)));
    const ts = NoiseHandshake.initiator(iKey);

    const intent = utf8('{"intent":"preview"}');
    const msg1 = ts.writeMessage(intent);
    expect(text(await py.call("read", msg1))).toBe('{"intent":"preview"}');

    const msg2 = await py.call("write");
    expect(ts.readMessage(msg2)).toHaveLength(0);
    // Pin check point: the responder's key is known before msg3 is written.
    expect(pinSha256(ts.remoteStaticPublicKey!)).toBe(pinSha256(publicKeyOf(rKey)));

    // A TS responder with the same keys produces the very same msg2 as Python.
    const twin = NoiseHandshake.responder(rKey, { ephemeralPrivateKey: rEph });
    twin.readMessage(msg1);
    expect(toHex(twin.writeMessage())).toBe(toHex(msg2));

    const hello = utf8(JSON.stringify({ dashboard_id: "AbC_-123", friendly_name: "Kitchen HA", ha_addon: true }));
    const msg3 = ts.writeMessage(hello);
    expect(text(await py.call("read", msg3))).toBe(text(hello));
    expect(text(await py.call("finished"))).toBe("true");
    expect(toHex(await py.call("remote_static"))).toBe(toHex(publicKeyOf(iKey)));
    expect(toHex(await py.call("hash"))).toBe(toHex(ts.handshakeHash!));

    const { send, receive } = ts.split();
    const response = JSON.stringify({ intent_response: "ok", esphome_version: "2026.6.5" });
    expect(text(receive.decrypt(await py.call("encrypt", utf8(response))))).toBe(response);
    for (let n = 0; n < 6; n++) {
      const out = utf8(JSON.stringify({ type: "ping", n, pad: "x".repeat(n * 500) }));
      expect(text(await py.call("decrypt", send.encrypt(out)))).toBe(text(out));
      const back = utf8(JSON.stringify({ type: "pong", n }));
      expect(text(receive.decrypt(await py.call("encrypt", back)))).toBe(text(back));
    }
    expect(send.nonce).toBe(6n);
    expect(receive.nonce).toBe(7n);
  });

  it("Python initiator <-> TS responder: handshake, pins, transport both ways", async () => {
    const iKey = generateStaticKey();
    const iEph = generateStaticKey();
    const rKey = generateStaticKey();
    const py = await PythonPeer.start("initiator", iKey, iEph);
    const ts = NoiseHandshake.responder(rKey);

    const msg1 = await py.call("write", utf8('{"intent":"pair_request"}'));
    // The same keys in TS give the same msg1 (plaintext payload after the ephemeral key).
    expect(toHex(NoiseHandshake.initiator(iKey, { ephemeralPrivateKey: iEph }).writeMessage(utf8('{"intent":"pair_request"}')))).toBe(
      toHex(msg1),
    );
    expect(text(ts.readMessage(msg1))).toBe('{"intent":"pair_request"}');
    expect(ts.remoteStaticPublicKey).toBeNull();

    expect(await py.call("read", ts.writeMessage())).toHaveLength(0);
    expect(toHex(await py.call("remote_static"))).toBe(toHex(publicKeyOf(rKey)));

    const payload = JSON.stringify({ label: "Office", dashboard_id: "xyz", friendly_name: "Office", ha_addon: false, label_auto: true });
    expect(text(ts.readMessage(await py.call("write", utf8(payload))))).toBe(payload);
    expect(ts.complete).toBe(true);
    expect(pinSha256(ts.remoteStaticPublicKey!)).toBe(pinSha256(publicKeyOf(iKey)));
    expect(toHex(await py.call("hash"))).toBe(toHex(ts.handshakeHash!));

    const { send, receive } = ts.split();
    for (let n = 0; n < 6; n++) {
      const out = utf8(JSON.stringify({ type: "queue_status", idle: n % 2 === 0, running: 0, queue_depth: n }));
      expect(text(await py.call("decrypt", send.encrypt(out)))).toBe(text(out));
      const back = utf8(JSON.stringify({ type: "submit_job_chunk", chunk_index: n }));
      expect(text(receive.decrypt(await py.call("encrypt", back)))).toBe(text(back));
    }
  });

  it("a responder with an unexpected key is detectable before msg3 is sent", async () => {
    const expectedPin = pinSha256(publicKeyOf(generateStaticKey())); // the pin we paired with
    const impostor = await PythonPeer.start("responder", generateStaticKey());
    const ts = NoiseHandshake.initiator(generateStaticKey());
    await impostor.call("read", ts.writeMessage(utf8('{"intent":"pair_request"}')));
    ts.readMessage(await impostor.call("write"));
    expect(pinSha256(ts.remoteStaticPublicKey!)).not.toBe(expectedPin);
    expect(pinSha256(ts.remoteStaticPublicKey!)).toBe(pinSha256(impostor.publicKey));
    // The caller stops here: msg3 (the secret) is never written, and the responder never completes.
    expect(ts.isMyTurnToWrite).toBe(true);
    expect(text(await impostor.call("finished"))).toBe("false");
  });

  it("tampered, reordered and replayed frames fail in both directions", async () => {
    const py = await PythonPeer.start("responder", generateStaticKey());
    const ts = NoiseHandshake.initiator(generateStaticKey());
    await py.call("read", ts.writeMessage());
    ts.readMessage(await py.call("write"));
    await py.call("read", ts.writeMessage());

    // Python -> TS: replay.
    const { send, receive } = ts.split();
    const f1 = await py.call("encrypt", utf8("frame 1"));
    expect(text(receive.decrypt(f1))).toBe("frame 1");
    expectNoiseError(() => receive.decrypt(f1), "decrypt_failed");
    expect(receive.usable).toBe(false);

    // TS -> Python: tampered, then out of order, then replay.
    const t1 = send.encrypt(utf8("to python 1"));
    const t2 = send.encrypt(utf8("to python 2"));
    const tampered = Uint8Array.from(t1);
    tampered[3]! ^= 0x01;
    await expectPythonError(py.call("decrypt", tampered));
    await expectPythonError(py.call("decrypt", t2)); // frame 2 before frame 1
    expect(text(await py.call("decrypt", t1))).toBe("to python 1"); // Python's cipher survives failures
    await expectPythonError(py.call("decrypt", t1)); // replay
    expect(text(await py.call("decrypt", t2))).toBe("to python 2");
  });

  it("TS rejects a Python frame decrypted out of order and a tampered one", async () => {
    for (const attack of ["reorder", "tamper"] as const) {
      const py = await PythonPeer.start("initiator", generateStaticKey());
      const ts = NoiseHandshake.responder(generateStaticKey());
      ts.readMessage(await py.call("write"));
      await py.call("read", ts.writeMessage());
      ts.readMessage(await py.call("write"));
      const { receive } = ts.split();
      const p1 = await py.call("encrypt", utf8("one"));
      const p2 = await py.call("encrypt", utf8("two"));
      if (attack === "reorder") {
        expectNoiseError(() => receive.decrypt(p2), "decrypt_failed");
      } else {
        const bad = Uint8Array.from(p1);
        bad[bad.length - 1]! ^= 0x01;
        expectNoiseError(() => receive.decrypt(bad), "decrypt_failed");
      }
      // The TS cipher is spent after a failure: the session must end.
      expectNoiseError(() => receive.decrypt(p1), "wrong_state");
    }
  });

  it("a tampered msg2 from Python fails the TS handshake", async () => {
    const py = await PythonPeer.start("responder", generateStaticKey());
    const ts = NoiseHandshake.initiator(generateStaticKey());
    await py.call("read", ts.writeMessage());
    const msg2 = Uint8Array.from(await py.call("write"));
    msg2[50]! ^= 0x01; // inside the encrypted static key
    expectNoiseError(() => ts.readMessage(msg2), "decrypt_failed");
    expect(ts.remoteStaticPublicKey).toBeNull();
    expect(ts.failed).toBe(true);
  });

  it("a tampered msg3 from TS fails the Python handshake", async () => {
    const py = await PythonPeer.start("responder", generateStaticKey());
    const ts = NoiseHandshake.initiator(generateStaticKey());
    await py.call("read", ts.writeMessage());
    ts.readMessage(await py.call("write"));
    const msg3 = ts.writeMessage(utf8('{"dashboard_id":"a"}'));
    msg3[msg3.length - 1]! ^= 0x01;
    await expectPythonError(py.call("read", msg3));
    expect(text(await py.call("finished"))).toBe("false");
  });
});
