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
import { codedErrors, type BuilderError } from "../../errors.ts";
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  diffieHellman,
  generateKeyPairSync,
  type KeyObject,
} from "node:crypto";

export const NOISE_PROTOCOL_NAME = "Noise_XX_25519_ChaChaPoly_SHA256";
/** Largest Noise message (handshake or transport), spec §3. */
export const NOISE_MAX_MESSAGE_BYTES = 65535;
/** Poly1305 tag length. */
export const NOISE_TAG_BYTES = 16;
/** Largest transport plaintext: one message minus the tag. */
export const NOISE_MAX_PLAINTEXT_BYTES = NOISE_MAX_MESSAGE_BYTES - NOISE_TAG_BYTES;

const DHLEN = 32;
const HASHLEN = 32;
/** 2^64-1 is reserved (spec §5.1): a cipher whose nonce reached it is spent. */
const MAX_NONCE = 2n ** 64n - 1n;
const EMPTY = Buffer.alloc(0);

export const NOISE_CODES = [
  /** Authentication tag did not verify (tampered, replayed, reordered or wrong key). */
  "decrypt_failed",
  /** Malformed input from the peer: too short, over 65535 bytes, unusable public key. */
  "bad_message",
  /** Our own outgoing message would exceed 65535 bytes; nothing was changed. */
  "message_too_large",
  /** The 2^64-1 nonces of a cipher are used up. */
  "nonce_exhausted",
  /** Call out of turn, after completion, after a failure, or a second split(). */
  "wrong_state",
  /** A local key argument is not 32 bytes. */
  "bad_key",
] as const;
export type NoiseErrorCode = (typeof NOISE_CODES)[number];

/** A NoiseError failure: a \`BuilderError\` with one of \`NOISE_CODES\`. */
export type NoiseError = BuilderError<NoiseErrorCode>;
export const { error: noiseError, is: isNoiseError } = codedErrors(NOISE_CODES);

// ---------------------------------------------------------------------------
// X25519 with raw 32-byte keys. Node only takes KeyObjects, so raw keys are
// wrapped in the fixed DER prefixes of RFC 8410 (PKCS#8 / SPKI).

const PKCS8_X25519_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");
const SPKI_X25519_PREFIX = Buffer.from("302a300506032b656e032100", "hex");

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A fresh Uint8Array copy (never a pooled Buffer view handed to callers). */
function copyOut(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

function privateKeyObject(privateKey: Uint8Array): KeyObject {
  if (privateKey.length !== DHLEN) throw noiseError("bad_key", `X25519 private key must be ${DHLEN} bytes, got ${privateKey.length}`);
  return createPrivateKey({ key: Buffer.concat([PKCS8_X25519_PREFIX, privateKey]), format: "der", type: "pkcs8" });
}

function rawPublicKey(key: KeyObject): Buffer {
  const spki = createPublicKey(key).export({ format: "der", type: "spki" });
  return spki.subarray(spki.length - DHLEN);
}

/** A new random X25519 private key, 32 raw bytes. */
export function generateStaticKey(): Uint8Array {
  const { privateKey } = generateKeyPairSync("x25519");
  const pkcs8 = privateKey.export({ format: "der", type: "pkcs8" });
  return copyOut(pkcs8.subarray(pkcs8.length - DHLEN));
}

/** The raw 32-byte X25519 public key of a raw private key. */
export function publicKeyOf(privateKey: Uint8Array): Uint8Array {
  return copyOut(rawPublicKey(privateKeyObject(privateKey)));
}

/**
 * DH(local, remote). A remote key that yields the all-zero secret (a
 * low-order point) is refused: it would make the "authenticated" key
 * independent of our private key.
 */
function dh(local: KeyObject, remotePublic: Buffer): Buffer {
  let shared: Buffer;
  try {
    const publicKey = createPublicKey({ key: Buffer.concat([SPKI_X25519_PREFIX, remotePublic]), format: "der", type: "spki" });
    shared = diffieHellman({ privateKey: local, publicKey });
  } catch (err) {
    throw noiseError("bad_message", "the peer's X25519 public key is unusable", { cause: err });
  }
  if (shared.every((b) => b === 0)) throw noiseError("bad_message", "the peer's X25519 public key is a low-order point");
  return shared;
}

// ---------------------------------------------------------------------------
// Hash and HKDF (spec §4.3 and §5.2).

function sha256(...parts: Uint8Array[]): Buffer {
  const hash = createHash("sha256");
  for (const part of parts) hash.update(part);
  return hash.digest();
}

function hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Buffer {
  const mac = createHmac("sha256", key);
  for (const part of parts) mac.update(part);
  return mac.digest();
}

/** HKDF(chaining_key, input_key_material, 2) of the spec (not RFC 5869's info/length API). */
function hkdf2(chainingKey: Uint8Array, inputKeyMaterial: Uint8Array): [Buffer, Buffer] {
  const tempKey = hmacSha256(chainingKey, inputKeyMaterial);
  const output1 = hmacSha256(tempKey, Buffer.of(0x01));
  const output2 = hmacSha256(tempKey, output1, Buffer.of(0x02));
  return [output1, output2];
}

// ---------------------------------------------------------------------------

/**
 * One direction of an established channel (spec §5.1): ChaCha20-Poly1305
 * with a 64-bit counter nonce, encoded as 4 zero bytes + 8 bytes
 * little-endian. Messages must be decrypted in exactly the order they were
 * encrypted, so a reordered, replayed or dropped frame fails to decrypt; a
 * sender must therefore serialise its `encrypt` calls with its writes.
 *
 * A failed `decrypt` spends the cipher (later calls throw `wrong_state`):
 * after tampering there is no safe way to resynchronise.
 */
export class CipherState {
  /** The key as a KeyObject: OpenSSL sets it up once, not per message. */
  #key: KeyObject | null;
  #nonce: bigint;

  /** `nonce` exists for tests (exhaustion); real ciphers come from `NoiseHandshake.split()`. */
  constructor(key: Uint8Array, nonce = 0n) {
    if (key.length !== 32) throw noiseError("bad_key", `cipher key must be 32 bytes, got ${key.length}`);
    if (nonce < 0n || nonce > MAX_NONCE) throw new RangeError("nonce must be in 0..2^64-1");
    this.#key = createSecretKey(Buffer.from(key));
    this.#nonce = nonce;
  }

  /** The counter the next encrypt/decrypt will use. */
  get nonce(): bigint {
    return this.#nonce;
  }

  /** False once a decrypt failed. */
  get usable(): boolean {
    return this.#key !== null;
  }

  /** Ciphertext followed by the 16-byte tag, in a new Buffer (a small one may share Node's pool). */
  encrypt(plaintext: Uint8Array, ad: Uint8Array = EMPTY): Buffer {
    const key = this.#usableKey();
    if (plaintext.length > NOISE_MAX_PLAINTEXT_BYTES) {
      throw noiseError("message_too_large", `plaintext of ${plaintext.length} bytes exceeds ${NOISE_MAX_PLAINTEXT_BYTES}`);
    }
    if (this.#nonce >= MAX_NONCE) throw noiseError("nonce_exhausted", "cipher nonces are used up");
    const cipher = createCipheriv("chacha20-poly1305", key, nonceBytes(this.#nonce), { authTagLength: NOISE_TAG_BYTES });
    if (ad.length > 0) cipher.setAAD(ad, { plaintextLength: plaintext.length });
    // ChaCha20 is a stream cipher: update() returns every byte and final() none.
    const body = cipher.update(plaintext);
    const rest = cipher.final();
    const out = Buffer.concat([body, rest, cipher.getAuthTag()], plaintext.length + NOISE_TAG_BYTES);
    this.#nonce += 1n;
    return out;
  }

  /** The plaintext, in a new Buffer (a small one may share Node's pool). */
  decrypt(ciphertext: Uint8Array, ad: Uint8Array = EMPTY): Buffer {
    const key = this.#usableKey();
    try {
      if (ciphertext.length > NOISE_MAX_MESSAGE_BYTES) {
        throw noiseError("bad_message", `message of ${ciphertext.length} bytes exceeds ${NOISE_MAX_MESSAGE_BYTES}`);
      }
      if (ciphertext.length < NOISE_TAG_BYTES) throw noiseError("bad_message", "message is shorter than the authentication tag");
      if (this.#nonce >= MAX_NONCE) throw noiseError("nonce_exhausted", "cipher nonces are used up");
      const body = asBuffer(ciphertext).subarray(0, ciphertext.length - NOISE_TAG_BYTES);
      const tag = asBuffer(ciphertext).subarray(ciphertext.length - NOISE_TAG_BYTES);
      const decipher = createDecipheriv("chacha20-poly1305", key, nonceBytes(this.#nonce), { authTagLength: NOISE_TAG_BYTES });
      decipher.setAuthTag(tag);
      if (ad.length > 0) decipher.setAAD(ad, { plaintextLength: body.length });
      let plaintext: Buffer;
      try {
        plaintext = decipher.update(body);
        const rest = decipher.final();
        if (rest.length > 0) plaintext = Buffer.concat([plaintext, rest]);
      } catch (err) {
        throw noiseError("decrypt_failed", "message failed authentication", { cause: err });
      }
      this.#nonce += 1n;
      return plaintext;
    } catch (err) {
      this.#key = null;
      throw err;
    }
  }

  #usableKey(): KeyObject {
    if (this.#key === null) throw noiseError("wrong_state", "cipher is unusable after a failed decrypt");
    return this.#key;
  }
}

function nonceBytes(n: bigint): Buffer {
  const nonce = Buffer.alloc(12);
  nonce.writeBigUInt64LE(n, 4);
  return nonce;
}

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
