import { createCipheriv } from "node:crypto";
import { describe, expect, it } from "vitest";
import { NoiseHandshake } from "../../../src/remote-build/transport/noise.ts";
import { CipherState, generateStaticKey, NOISE_MAX_MESSAGE_BYTES, NOISE_MAX_PLAINTEXT_BYTES, publicKeyOf, releaseNow } from "../../../src/remote-build/transport/noise-primitives.ts";
import { expectNoiseError } from "./noise-expect.ts";

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "hex"));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

interface Vector {
  source: string;
  prologue: string;
  initStatic: string;
  initEphemeral: string;
  respStatic: string;
  respEphemeral: string;
  handshakeHash?: string;
  /** [payload, ciphertext]; even index = initiator sends. The first 3 are the handshake. */
  messages: [string, string][];
}

// Published test vectors for exactly Noise_XX_25519_ChaChaPoly_SHA256 (data only).
const VECTORS: Vector[] = [
  {
    source: "cacophony (haskell-cryptography/cacophony vectors/cacophony.txt)",
    prologue: "4a6f686e2047616c74",
    initStatic: "e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1",
    initEphemeral: "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a",
    respStatic: "4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893",
    respEphemeral: "bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b",
    handshakeHash: "c8e5f64e846193be2a834104c2a009868d6c9f3bd3c186299888b488b2f1f58e",
    messages: [
      ["4c756477696720766f6e204d69736573", "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c79444c756477696720766f6e204d69736573"],
      [
        "4d757272617920526f746862617264",
        "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f14480884381cbad1f276e038c48378ffce2b65285e08d6b68aaa3629a5a8639392490e5b9bd5269c2f1e4f488ed8831161f19b7815528f8982ffe09be9b5c412f8a0db50f8814c7194e83f23dbd8d162c9326ad",
      ],
      [
        "462e20412e20486179656b",
        "c7195ffacac1307ff99046f219750fc47693e23c3cb08b89c2af808b444850a80ae475b9df0f169ae80a89be0865b57f58c9fea0d4ec82a286427402f113e4b6ae769a1d95941d49b25030",
      ],
      ["4361726c204d656e676572", "96763ed773f8e47bb3712f0e29b3060ffc956ffc146cee53d5e1df"],
      ["4a65616e2d426170746973746520536179", "3e40f15f6f3a46ae446b253bf8b1d9ffb6ed9b174d272328ff91a7e2e5c79c07f5"],
      ["457567656e2042f6686d20766f6e2042617765726b", "eb3f3515110702e047a6c9da4478b6ead94873c11c0f2d710ddb3f09fce024b3a58502ae3f"],
    ],
  },
  {
    source: "snow (mcginty/snow tests/vectors/snow.txt)",
    prologue:
      "5468657265206973206e6f20726967687420616e642077726f6e672e2054686572652773206f6e6c792066756e20616e6420626f72696e672e",
    initStatic: "7dec208517a3b81a2861d7a71266d5d6dc944c5a8816634a86fe63198a0148ee",
    initEphemeral: "a32daf21e93c0131495ce1d903181fde81cc46937daaeb990bae7c992709421e",
    respStatic: "4d0aed5098e3b4ef20357e9f686ce66204c792b358da2e475017d6c485304881",
    respEphemeral: "4eece0f195d026db035ff987597c429d3ad3bcc2944df37d649528951b2a27c5",
    messages: [
      [
        "d03c489139e645d0711a3c9e810d776b46a84912463fafa87b884eebf242dc34",
        "f9fa868ba97ab8a2686deccfaad5a484ee10a5bb85e3d1dce015a84797f92818d03c489139e645d0711a3c9e810d776b46a84912463fafa87b884eebf242dc34",
      ],
      [
        "d8190a92f7dc0c93dbea9118ba8055751fb7c6590c416ffbd419964132b99a85",
        "8c4e6fdb7d09d501a86f7eca5c234522751706ed409182c05cdf5f827d4dae47b81c6c5f43b025692c24391eefee725c17d8cb0fbe3e4abb8aedf42c4fd2592d4ea48ac08989d6ae8b4adae08b2c34087c808c7aa55a63c02b0fab9e930612336bd43eaea04d3c670a0a146691aa9cc9d357872320dc735dbc48580cffb553db",
      ],
      [
        "77891b19dcb92ef7c055b672c4a5aa7fdf1c84146b8b303459022729473ce254",
        "933ca6b5ed60df3df66121f0ab49a09e49efa45c613a86a3cecbf4c535cef2f83f72b42837b18e3572f2fdc2b74c331e2368a545cef54bdca081678ab0e9dd5348122459e0c034c851984d88ce610963d43cde6cfe73a67fbd5a63e8bfca96d0",
      ],
      [
        "d7efdf988072881941db045a42882433817555128fbf5663e56081712ec7d212",
        "54ef0ff0629e1aaa7685a2806ab111cba76b52331f2642276736f415868eacb69ab2577f3bda0cbf72f879685f6ed25f",
      ],
      [
        "dd7bf01a588bafb52c6cfba952e5d8fe35cc2b3f92b4730ae2474615157345ce",
        "356be70f110306d5c699bb834bb9d58d909e325924dfbec972e406e6f294dc63e1daebefe8a62a334facc8048ab4ad66",
      ],
    ],
  },
];

/** A completed handshake between two fresh identities. */
function handshakePair(): { initiator: NoiseHandshake; responder: NoiseHandshake; iKey: Uint8Array; rKey: Uint8Array } {
  const iKey = generateStaticKey();
  const rKey = generateStaticKey();
  const initiator = NoiseHandshake.initiator(iKey);
  const responder = NoiseHandshake.responder(rKey);
  responder.readMessage(initiator.writeMessage());
  initiator.readMessage(responder.writeMessage());
  responder.readMessage(initiator.writeMessage());
  return { initiator, responder, iKey, rKey };
}

describe("X25519 helpers", () => {
  it("derives the RFC 7748 §6.1 public keys", () => {
    expect(toHex(publicKeyOf(hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")))).toBe(
      "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
    );
    expect(toHex(publicKeyOf(hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")))).toBe(
      "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
    );
  });

  it("generates distinct 32-byte keys and refuses wrong lengths", () => {
    const a = generateStaticKey();
    const b = generateStaticKey();
    expect(a).toHaveLength(32);
    expect(publicKeyOf(a)).toHaveLength(32);
    expect(toHex(a)).not.toBe(toHex(b));
    expectNoiseError(() => publicKeyOf(new Uint8Array(31)), "bad_key");
    expectNoiseError(() => NoiseHandshake.initiator(new Uint8Array(33)), "bad_key");
  });
});

describe("published test vectors", () => {
  for (const v of VECTORS) {
    it(`matches ${v.source} byte for byte`, () => {
      const initiator = NoiseHandshake.initiator(hex(v.initStatic), { prologue: hex(v.prologue), ephemeralPrivateKey: hex(v.initEphemeral) });
      const responder = NoiseHandshake.responder(hex(v.respStatic), { prologue: hex(v.prologue), ephemeralPrivateKey: hex(v.respEphemeral) });
      v.messages.slice(0, 3).forEach(([payload, ciphertext], i) => {
        const [sender, receiver] = i % 2 === 0 ? [initiator, responder] : [responder, initiator];
        const message = sender.writeMessage(hex(payload));
        expect(toHex(message), `handshake message ${i + 1}`).toBe(ciphertext);
        expect(toHex(receiver.readMessage(message))).toBe(payload);
      });
      expect(initiator.complete && responder.complete).toBe(true);
      expect(toHex(initiator.handshakeHash!)).toBe(toHex(responder.handshakeHash!));
      if (v.handshakeHash !== undefined) expect(toHex(initiator.handshakeHash!)).toBe(v.handshakeHash);
      expect(toHex(initiator.remoteStaticPublicKey!)).toBe(toHex(publicKeyOf(hex(v.respStatic))));
      expect(toHex(responder.remoteStaticPublicKey!)).toBe(toHex(publicKeyOf(hex(v.initStatic))));

      const i = initiator.split();
      const r = responder.split();
      v.messages.slice(3).forEach(([payload, ciphertext], k) => {
        const [send, receive] = (k + 3) % 2 === 0 ? [i.send, r.receive] : [r.send, i.receive];
        const frame = send.encrypt(hex(payload));
        expect(toHex(frame), `transport message ${k + 1}`).toBe(ciphertext);
        expect(toHex(receive.decrypt(frame))).toBe(payload);
      });
    });
  }
});

describe("NoiseHandshake", () => {
  it("runs the XX pattern with the peer-link payload shapes", () => {
    const iKey = generateStaticKey();
    const rKey = generateStaticKey();
    const initiator = NoiseHandshake.initiator(iKey);
    const responder = NoiseHandshake.responder(rKey);
    expect(initiator.isMyTurnToWrite).toBe(true);
    expect(responder.isMyTurnToWrite).toBe(false);

    const intent = utf8('{"intent":"preview"}');
    const msg1 = initiator.writeMessage(intent);
    // msg1 carries the payload in clear after the 32-byte ephemeral key.
    expect(msg1).toHaveLength(32 + intent.length);
    expect(toHex(msg1.subarray(32))).toBe(toHex(intent));
    expect(toHex(responder.readMessage(msg1))).toBe(toHex(intent));

    const msg2 = responder.writeMessage();
    expect(msg2).toHaveLength(96);
    expect(initiator.readMessage(msg2)).toHaveLength(0);
    // The initiator knows the responder before it writes msg3 (where the pin is checked).
    expect(toHex(initiator.remoteStaticPublicKey!)).toBe(toHex(publicKeyOf(rKey)));
    expect(responder.remoteStaticPublicKey).toBeNull();
    expect(initiator.complete).toBe(false);

    const secret = utf8('{"dashboard_id":"abc","pairing_key":"s3cret"}');
    const msg3 = initiator.writeMessage(secret);
    expect(msg3).toHaveLength(48 + secret.length + 16);
    expect(Buffer.from(msg3).includes(Buffer.from("s3cret"))).toBe(false);
    expect(toHex(responder.readMessage(msg3))).toBe(toHex(secret));
    expect(toHex(responder.remoteStaticPublicKey!)).toBe(toHex(publicKeyOf(iKey)));
    expect(toHex(responder.localStaticPublicKey)).toBe(toHex(publicKeyOf(rKey)));
    expect(initiator.complete && responder.complete).toBe(true);
    expect(toHex(initiator.handshakeHash!)).toBe(toHex(responder.handshakeHash!));

    const a = initiator.split();
    const b = responder.split();
    for (let n = 0; n < 5; n++) {
      expect(new TextDecoder().decode(b.receive.decrypt(a.send.encrypt(utf8(`ping ${n}`))))).toBe(`ping ${n}`);
      expect(new TextDecoder().decode(a.receive.decrypt(b.send.encrypt(utf8(`pong ${n}`))))).toBe(`pong ${n}`);
    }
    expect(a.send.nonce).toBe(5n);
    expect(b.receive.decrypt(a.send.encrypt(new Uint8Array(0)))).toHaveLength(0);
  });

  it("uses a fresh ephemeral key per handshake unless one is fixed", () => {
    const key = generateStaticKey();
    expect(toHex(NoiseHandshake.initiator(key).writeMessage())).not.toBe(toHex(NoiseHandshake.initiator(key).writeMessage()));
    const eph = generateStaticKey();
    const fixed = (): string => toHex(NoiseHandshake.initiator(key, { ephemeralPrivateKey: eph }).writeMessage());
    expect(fixed()).toBe(fixed());
    expect(fixed().slice(0, 64)).toBe(toHex(publicKeyOf(eph)));
  });

  it("enforces turn order, single split and no use after completion", () => {
    const initiator = NoiseHandshake.initiator(generateStaticKey());
    const responder = NoiseHandshake.responder(generateStaticKey());
    expectNoiseError(() => responder.writeMessage(), "wrong_state");
    expectNoiseError(() => initiator.readMessage(new Uint8Array(32)), "wrong_state");
    expectNoiseError(() => initiator.split(), "wrong_state");
    // Out-of-turn calls do not break the handshake.
    responder.readMessage(initiator.writeMessage());
    initiator.readMessage(responder.writeMessage());
    responder.readMessage(initiator.writeMessage());
    expectNoiseError(() => initiator.writeMessage(), "wrong_state");
    expectNoiseError(() => responder.readMessage(new Uint8Array(64)), "wrong_state");
    initiator.split();
    expectNoiseError(() => initiator.split(), "wrong_state");
    expect(initiator.handshakeHash).toHaveLength(32);
  });

  it("rejects short messages and is dead afterwards", () => {
    const responder = NoiseHandshake.responder(generateStaticKey());
    expectNoiseError(() => responder.readMessage(new Uint8Array(31)), "bad_message");
    expect(responder.failed).toBe(true);
    expectNoiseError(() => responder.readMessage(new Uint8Array(32)), "wrong_state");
    expectNoiseError(() => responder.writeMessage(), "wrong_state");

    const initiator = NoiseHandshake.initiator(generateStaticKey());
    initiator.writeMessage();
    expectNoiseError(() => initiator.readMessage(new Uint8Array(95)), "bad_message");
  });

  it("fails on a tampered msg2 without exposing the responder key", () => {
    const iKey = generateStaticKey();
    const eph = generateStaticKey();
    const responder = NoiseHandshake.responder(generateStaticKey());
    responder.readMessage(NoiseHandshake.initiator(iKey, { ephemeralPrivateKey: eph }).writeMessage());
    const msg2 = responder.writeMessage(utf8("hello"));
    // Byte 0: ephemeral key; 40: encrypted static; last: payload tag.
    for (const index of [0, 40, msg2.length - 1]) {
      const initiator = NoiseHandshake.initiator(iKey, { ephemeralPrivateKey: eph });
      initiator.writeMessage();
      const tampered = Uint8Array.from(msg2);
      tampered[index]! ^= 0x01;
      expectNoiseError(() => initiator.readMessage(tampered), "decrypt_failed");
      expect(initiator.remoteStaticPublicKey).toBeNull();
      expect(initiator.failed).toBe(true);
      expectNoiseError(() => initiator.readMessage(msg2), "wrong_state");
    }
    // The untampered message is fine for a replica of the same initiator.
    const good = NoiseHandshake.initiator(iKey, { ephemeralPrivateKey: eph });
    good.writeMessage();
    expect(new TextDecoder().decode(good.readMessage(msg2))).toBe("hello");
  });

  it("fails msg3 when the initiator used a different prologue", () => {
    const initiator = NoiseHandshake.initiator(generateStaticKey(), { prologue: utf8("a") });
    const responder = NoiseHandshake.responder(generateStaticKey());
    responder.readMessage(initiator.writeMessage());
    expectNoiseError(() => initiator.readMessage(responder.writeMessage()), "decrypt_failed");
  });

  it("refuses a low-order ephemeral key from the peer", () => {
    const responder = NoiseHandshake.responder(generateStaticKey());
    responder.readMessage(new Uint8Array(32)); // the all-zero point
    expectNoiseError(() => responder.writeMessage(), "bad_message");
    expect(responder.failed).toBe(true);
  });

  it("enforces the 65535-byte message limit", () => {
    const initiator = NoiseHandshake.initiator(generateStaticKey());
    expectNoiseError(() => initiator.writeMessage(new Uint8Array(NOISE_MAX_MESSAGE_BYTES - 32 + 1)), "message_too_large");
    // A refused write changes nothing.
    expect(initiator.failed).toBe(false);
    expect(initiator.writeMessage(new Uint8Array(NOISE_MAX_MESSAGE_BYTES - 32))).toHaveLength(NOISE_MAX_MESSAGE_BYTES);

    const responder = NoiseHandshake.responder(generateStaticKey());
    expectNoiseError(() => responder.readMessage(new Uint8Array(NOISE_MAX_MESSAGE_BYTES + 1)), "bad_message");
  });
});

describe("CipherState", () => {
  const key = new Uint8Array(32).fill(7);

  it("uses 4 zero bytes + the little-endian counter as the ChaCha20-Poly1305 nonce", () => {
    const cs = new CipherState(key, 0x0102n);
    const ad = utf8("ad");
    const frame = cs.encrypt(utf8("body"), ad);
    const nonce = Buffer.from("000000000201000000000000", "hex");
    const reference = createCipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
    reference.setAAD(ad, { plaintextLength: 4 });
    const expected = Buffer.concat([reference.update("body"), reference.final(), reference.getAuthTag()]);
    expect(toHex(frame)).toBe(expected.toString("hex"));
    expect(cs.nonce).toBe(0x0103n);
  });

  it("rejects tampering, wrong AD, reordering and replays; a failure spends the cipher", () => {
    const frames = (): { send: CipherState; receive: CipherState; f: Uint8Array[] } => {
      const send = new CipherState(key);
      const receive = new CipherState(key);
      return { send, receive, f: [send.encrypt(utf8("one")), send.encrypt(utf8("two")), send.encrypt(utf8("three"))] };
    };
    {
      const { receive, f } = frames();
      const tampered = Uint8Array.from(f[0]!);
      tampered[0]! ^= 0x80;
      expectNoiseError(() => receive.decrypt(tampered), "decrypt_failed");
      expect(receive.usable).toBe(false);
      expectNoiseError(() => receive.decrypt(f[0]!), "wrong_state");
    }
    {
      const { receive, f } = frames();
      expectNoiseError(() => receive.decrypt(f[0]!, utf8("other ad")), "decrypt_failed");
    }
    {
      const { receive, f } = frames();
      expectNoiseError(() => receive.decrypt(f[1]!), "decrypt_failed");
    }
    {
      const { receive, f } = frames();
      expect(new TextDecoder().decode(receive.decrypt(f[0]!))).toBe("one");
      expectNoiseError(() => receive.decrypt(f[0]!), "decrypt_failed");
    }
    {
      const { receive } = frames();
      expectNoiseError(() => receive.decrypt(new Uint8Array(15)), "bad_message");
      expect(receive.usable).toBe(false);
    }
  });

  it("enforces the size limit on both sides", () => {
    const send = new CipherState(key);
    expectNoiseError(() => send.encrypt(new Uint8Array(NOISE_MAX_PLAINTEXT_BYTES + 1)), "message_too_large");
    const frame = send.encrypt(new Uint8Array(NOISE_MAX_PLAINTEXT_BYTES));
    expect(frame).toHaveLength(NOISE_MAX_MESSAGE_BYTES);
    expect(new CipherState(key).decrypt(frame)).toHaveLength(NOISE_MAX_PLAINTEXT_BYTES);
    expectNoiseError(() => new CipherState(key).decrypt(new Uint8Array(NOISE_MAX_MESSAGE_BYTES + 1)), "bad_message");
  });

  it("stops at nonce 2^64-1, which is reserved", () => {
    const last = 2n ** 64n - 2n;
    const send = new CipherState(key, last);
    const receive = new CipherState(key, last);
    expect(new TextDecoder().decode(receive.decrypt(send.encrypt(utf8("last"))))).toBe("last");
    expectNoiseError(() => send.encrypt(utf8("more")), "nonce_exhausted");
    expectNoiseError(() => receive.decrypt(new Uint8Array(16)), "nonce_exhausted");
  });

  it("pairs the split ciphers by direction", () => {
    const { initiator, responder } = handshakePair();
    const i = initiator.split();
    const r = responder.split();
    expect(new TextDecoder().decode(i.receive.decrypt(r.send.encrypt(utf8("y"))))).toBe("y");
    expect(new TextDecoder().decode(r.receive.decrypt(i.send.encrypt(utf8("x"))))).toBe("x");
    // A side cannot decrypt its own frames: the two directions have different keys.
    expectNoiseError(() => i.receive.decrypt(i.send.encrypt(utf8("z"))), "decrypt_failed");
  });
});

describe("releaseNow", () => {
  it("frees a buffer that spans an ArrayBuffer of its own: it reads as empty afterwards", () => {
    const cipher = new CipherState(new Uint8Array(32).fill(7));
    const frame = cipher.encrypt(new Uint8Array(40_000));
    expect(frame.buffer.byteLength).toBe(frame.length);
    releaseNow(frame);
    expect(frame.length).toBe(0);
    expect((frame.buffer as ArrayBuffer).detached).toBe(true);
    releaseNow(frame); // twice is harmless
  });

  it("never touches a buffer on Node's shared pool, a part of a bigger buffer, or a shared one", () => {
    const pooled = Buffer.from("small and pooled");
    const neighbour = Buffer.from("its neighbour on the pool");
    const whole = Buffer.alloc(100_000, 1);
    const part = whole.subarray(0, 50_000);
    const tail = whole.subarray(50_000);
    const shared = Buffer.from(new SharedArrayBuffer(64));
    for (const b of [pooled, part, tail, shared]) releaseNow(b);
    expect(pooled.toString()).toBe("small and pooled");
    expect(neighbour.toString()).toBe("its neighbour on the pool");
    expect(part.length).toBe(50_000);
    expect(whole.every((x) => x === 1)).toBe(true);
    expect(shared.length).toBe(64);
  });

  it("encrypting frees its intermediate output: a message round-trips and the next one too", () => {
    const key = new Uint8Array(32).fill(3);
    const tx = new CipherState(key);
    const rx = new CipherState(key);
    for (const size of [0, 10, 40_000, NOISE_MAX_PLAINTEXT_BYTES]) {
      const plain = Buffer.alloc(size, size % 251);
      expect(rx.decrypt(tx.encrypt(plain)).equals(plain)).toBe(true);
    }
  });
});
