/**
 * The peer link's Noise layer: `Noise_XX_25519_ChaChaPoly_SHA256` (Noise
 * Protocol Framework, revision 34), wire-compatible with the Python
 * `noiseprotocol` package the upstream Device Builder uses.
 *
 *   -> e
 *   <- e, ee, s, es
 *   -> s, se
 *
 * Built only on Node's crypto (X25519, ChaCha20-Poly1305, SHA-256/HMAC), so
 * there is no third-party code on the authentication path.
 *
 * Failure policy: anything that goes wrong while reading a message (short,
 * oversized, bad tag, unusable peer key) throws a `NoiseError` and leaves the
 * object dead: a failed handshake or cipher can never be used again, so a
 * caller cannot accidentally continue on a half-updated state. The peer link
 * ends the session on any such error anyway.
 */
import { type KeyObject } from "node:crypto";
import { CipherState, DHLEN, EMPTY, HASHLEN, NOISE_MAX_MESSAGE_BYTES, NOISE_PROTOCOL_NAME, NOISE_TAG_BYTES, asBuffer, copyOut, dh, generateStaticKey, hkdf2, privateKeyObject, rawPublicKey, sha256, isNoiseError, noiseError } from "./noise-primitives.ts";

/** SymmetricState of spec §5.2, with h, ck and the handshake cipher (null until the first MixKey). */
class SymmetricState {
  h: Buffer;
  ck: Buffer;
  #cipher: CipherState | null = null;

  constructor(protocolName: string) {
    const name = Buffer.from(protocolName, "ascii");
    // A name of at most HASHLEN bytes is used zero-padded, a longer one hashed.
    // NOISE_PROTOCOL_NAME is exactly 32 bytes, so h is the name itself.
    this.h = name.length <= HASHLEN ? Buffer.concat([name, Buffer.alloc(HASHLEN - name.length)]) : sha256(name);
    this.ck = Buffer.from(this.h);
  }

  mixKey(inputKeyMaterial: Uint8Array): void {
    const [ck, tempKey] = hkdf2(this.ck, inputKeyMaterial);
    this.ck = ck;
    this.#cipher = new CipherState(tempKey); // HASHLEN is 32: no truncation needed
  }

  mixHash(data: Uint8Array): void {
    this.h = sha256(this.h, data);
  }

  encryptAndHash(plaintext: Uint8Array): Buffer {
    const ciphertext = this.#cipher === null ? Buffer.from(plaintext) : asBuffer(this.#cipher.encrypt(plaintext, this.h));
    this.mixHash(ciphertext);
    return ciphertext;
  }

  decryptAndHash(ciphertext: Uint8Array): Buffer {
    const plaintext = this.#cipher === null ? Buffer.from(ciphertext) : asBuffer(this.#cipher.decrypt(ciphertext, this.h));
    this.mixHash(ciphertext);
    return plaintext;
  }

  split(): [CipherState, CipherState] {
    const [k1, k2] = hkdf2(this.ck, EMPTY);
    return [new CipherState(k1), new CipherState(k2)];
  }
}

export interface NoiseHandshakeOptions {
  /**
   * Fixed ephemeral private key, for test vectors only: reusing an
   * ephemeral key across handshakes destroys forward secrecy. Default: a
   * fresh random key for each handshake.
   */
  ephemeralPrivateKey?: Uint8Array;
  /** Prologue bound into the transcript. The peer link uses none (empty); test vectors do. */
  prologue?: Uint8Array;
}

export interface TransportCiphers {
  /** Encrypts what this side sends. */
  send: CipherState;
  /** Decrypts what this side receives. */
  receive: CipherState;
}

type Phase = "handshake" | "complete" | "split" | "failed";

/** Length of the fixed part (keys and tags) of XX message i, before the payload. */
const MESSAGE_OVERHEAD = [DHLEN, DHLEN + DHLEN + NOISE_TAG_BYTES + NOISE_TAG_BYTES, DHLEN + NOISE_TAG_BYTES + NOISE_TAG_BYTES] as const;

/**
 * One XX handshake (three messages), then `split()` into transport ciphers.
 *
 * The initiator learns the responder's static key after reading message 2 —
 * before it writes message 3 — which is where the peer link checks the pin,
 * so no secret ever goes out in message 3 to an unverified responder. The
 * responder learns the initiator's key after message 3. Message 1's payload
 * is NOT encrypted (no key exists yet); message 2's and 3's are.
 */
export class NoiseHandshake {
  readonly isInitiator: boolean;
  #phase: Phase = "handshake";
  /** Messages processed so far (0..3). */
  #step = 0;
  #symmetric: SymmetricState | null;
  #static: KeyObject | null;
  #staticPublic: Buffer;
  #ephemeralSeed: Uint8Array | undefined;
  #ephemeral: KeyObject | null = null;
  #remoteEphemeral: Buffer | null = null;
  #remoteStatic: Buffer | null = null;
  #handshakeHash: Buffer | null = null;

  private constructor(initiator: boolean, staticPrivateKey: Uint8Array, options: NoiseHandshakeOptions) {
    this.isInitiator = initiator;
    this.#static = privateKeyObject(staticPrivateKey);
    this.#staticPublic = rawPublicKey(this.#static);
    if (options.ephemeralPrivateKey !== undefined) {
      privateKeyObject(options.ephemeralPrivateKey); // validates the length now rather than mid-handshake
      this.#ephemeralSeed = Uint8Array.from(options.ephemeralPrivateKey);
    }
    this.#symmetric = new SymmetricState(NOISE_PROTOCOL_NAME);
    this.#symmetric.mixHash(options.prologue ?? EMPTY);
  }

  static initiator(staticPrivateKey: Uint8Array, options: NoiseHandshakeOptions = {}): NoiseHandshake {
    return new NoiseHandshake(true, staticPrivateKey, options);
  }

  static responder(staticPrivateKey: Uint8Array, options: NoiseHandshakeOptions = {}): NoiseHandshake {
    return new NoiseHandshake(false, staticPrivateKey, options);
  }

  /** All three messages went through. */
  get complete(): boolean {
    return this.#phase === "complete" || this.#phase === "split";
  }

  /** A message failed; this handshake is dead. */
  get failed(): boolean {
    return this.#phase === "failed";
  }

  /** True when the next call must be `writeMessage` (false when it must be `readMessage` or the handshake is over). */
  get isMyTurnToWrite(): boolean {
    return this.#phase === "handshake" && (this.#step % 2 === 0) === this.isInitiator;
  }

  get localStaticPublicKey(): Uint8Array {
    return copyOut(this.#staticPublic);
  }

  /** The peer's authenticated static key: initiator after message 2, responder after message 3; null before and after a failure. */
  get remoteStaticPublicKey(): Uint8Array | null {
    return this.#remoteStatic === null ? null : copyOut(this.#remoteStatic);
  }

  /** The transcript hash h (channel binding); null until complete. */
  get handshakeHash(): Uint8Array | null {
    return this.#handshakeHash === null ? null : copyOut(this.#handshakeHash);
  }

  writeMessage(payload: Uint8Array = EMPTY): Uint8Array {
    const symmetric = this.#active();
    if (!this.isMyTurnToWrite) throw noiseError("wrong_state", "it is not this side's turn to write");
    const step = this.#step;
    const overhead = MESSAGE_OVERHEAD[step as 0 | 1 | 2];
    // Checked before touching any state, so a too-large payload is a plain refusal.
    if (overhead + payload.length > NOISE_MAX_MESSAGE_BYTES) {
      throw noiseError("message_too_large", `handshake message ${step + 1} would exceed ${NOISE_MAX_MESSAGE_BYTES} bytes`);
    }
    return this.#guard(() => {
      const parts: Buffer[] = [];
      if (step === 0) {
        // -> e
        parts.push(this.#writeEphemeral(symmetric));
      } else if (step === 1) {
        // <- e, ee, s, es
        parts.push(this.#writeEphemeral(symmetric));
        symmetric.mixKey(dh(this.#need(this.#ephemeral), this.#need(this.#remoteEphemeral)));
        parts.push(symmetric.encryptAndHash(this.#staticPublic));
        symmetric.mixKey(dh(this.#need(this.#static), this.#need(this.#remoteEphemeral)));
      } else {
        // -> s, se
        parts.push(symmetric.encryptAndHash(this.#staticPublic));
        symmetric.mixKey(dh(this.#need(this.#static), this.#need(this.#remoteEphemeral)));
      }
      parts.push(symmetric.encryptAndHash(payload));
      this.#advance(symmetric);
      return copyOut(Buffer.concat(parts));
    });
  }

  readMessage(message: Uint8Array): Uint8Array {
    const symmetric = this.#active();
    if (this.isMyTurnToWrite) throw noiseError("wrong_state", "it is not this side's turn to read");
    const step = this.#step;
    return this.#guard(() => {
      if (message.length > NOISE_MAX_MESSAGE_BYTES) {
        throw noiseError("bad_message", `handshake message of ${message.length} bytes exceeds ${NOISE_MAX_MESSAGE_BYTES}`);
      }
      const minimum = MESSAGE_OVERHEAD[step as 0 | 1 | 2];
      if (message.length < minimum) {
        throw noiseError("bad_message", `handshake message ${step + 1} is ${message.length} bytes, needs at least ${minimum}`);
      }
      const buf = asBuffer(message);
      let offset = 0;
      const take = (n: number): Buffer => {
        const part = buf.subarray(offset, offset + n);
        offset += n;
        return part;
      };
      let remoteStatic: Buffer | null = null;
      if (step === 0) {
        // -> e
        this.#readEphemeral(symmetric, take(DHLEN));
      } else if (step === 1) {
        // <- e, ee, s, es
        this.#readEphemeral(symmetric, take(DHLEN));
        symmetric.mixKey(dh(this.#need(this.#ephemeral), this.#need(this.#remoteEphemeral)));
        remoteStatic = symmetric.decryptAndHash(take(DHLEN + NOISE_TAG_BYTES));
        symmetric.mixKey(dh(this.#need(this.#ephemeral), remoteStatic));
      } else {
        // -> s, se
        remoteStatic = symmetric.decryptAndHash(take(DHLEN + NOISE_TAG_BYTES));
        symmetric.mixKey(dh(this.#need(this.#ephemeral), remoteStatic));
      }
      const payload = symmetric.decryptAndHash(buf.subarray(offset));
      // Exposed only once the whole message authenticated.
      if (remoteStatic !== null) this.#remoteStatic = Buffer.from(remoteStatic);
      this.#advance(symmetric);
      return copyOut(payload);
    });
  }

  /**
   * The transport ciphers, once. A second call throws: two copies of the
   * same cipher would reuse nonces. Handshake secrets are dropped here.
   */
  split(): TransportCiphers {
    if (this.#phase !== "complete" || this.#symmetric === null) {
      throw noiseError("wrong_state", this.#phase === "split" ? "split() was already called" : "handshake is not complete");
    }
    const [initiatorToResponder, responderToInitiator] = this.#symmetric.split();
    this.#phase = "split";
    this.#wipe();
    return this.isInitiator
      ? { send: initiatorToResponder, receive: responderToInitiator }
      : { send: responderToInitiator, receive: initiatorToResponder };
  }

  #active(): SymmetricState {
    if (this.#phase === "failed") throw noiseError("wrong_state", "handshake has failed");
    if (this.#phase !== "handshake" || this.#symmetric === null) throw noiseError("wrong_state", "handshake is already complete");
    return this.#symmetric;
  }

  #guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      this.#phase = "failed";
      this.#remoteStatic = null;
      this.#wipe();
      if (isNoiseError(err)) throw err;
      throw noiseError("bad_message", "handshake message could not be processed", { cause: err });
    }
  }

  #advance(symmetric: SymmetricState): void {
    this.#step += 1;
    if (this.#step === 3) {
      this.#phase = "complete";
      this.#handshakeHash = Buffer.from(symmetric.h);
      // Only ck is needed from here on (for split); the rest goes.
      this.#static = null;
      this.#ephemeral = null;
      this.#ephemeralSeed = undefined;
    }
  }

  #writeEphemeral(symmetric: SymmetricState): Buffer {
    const seed = this.#ephemeralSeed ?? generateStaticKey();
    this.#ephemeral = privateKeyObject(seed);
    const publicKey = rawPublicKey(this.#ephemeral);
    symmetric.mixHash(publicKey);
    return Buffer.from(publicKey);
  }

  #readEphemeral(symmetric: SymmetricState, publicKey: Buffer): void {
    this.#remoteEphemeral = Buffer.from(publicKey);
    symmetric.mixHash(publicKey);
  }

  #need<T>(value: T | null): T {
    if (value === null) throw noiseError("wrong_state", "handshake key missing");
    return value;
  }

  #wipe(): void {
    if (this.#symmetric !== null) {
      this.#symmetric.ck.fill(0);
      this.#symmetric = null;
    }
    this.#static = null;
    this.#ephemeral = null;
    this.#ephemeralSeed = undefined;
    this.#remoteEphemeral = null;
  }
}
