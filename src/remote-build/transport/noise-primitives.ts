/**
 * The primitives of the peer link's Noise layer (`Noise_XX_25519_ChaChaPoly_SHA256`):
 * raw X25519 keys on Node's crypto, SHA-256/HMAC/HKDF, the transport
 * `CipherState` (ChaCha20-Poly1305 with a 64-bit counter nonce), the message
 * limits and the layer's error codes. The XX handshake over them is noise.ts.
 *
 * Failure policy: anything that goes wrong while reading a message (short,
 * oversized, bad tag) throws a `NoiseError` and leaves the cipher dead, so a
 * caller cannot continue on a half-updated state.
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

export const DHLEN = 32;
export const HASHLEN = 32;
/** 2^64-1 is reserved (spec §5.1): a cipher whose nonce reached it is spent. */
const MAX_NONCE = 2n ** 64n - 1n;
export const EMPTY = Buffer.alloc(0);

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

export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A fresh Uint8Array copy (never a pooled Buffer view handed to callers). */
export function copyOut(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

export function privateKeyObject(privateKey: Uint8Array): KeyObject {
  if (privateKey.length !== DHLEN) throw noiseError("bad_key", `X25519 private key must be ${DHLEN} bytes, got ${privateKey.length}`);
  return createPrivateKey({ key: Buffer.concat([PKCS8_X25519_PREFIX, privateKey]), format: "der", type: "pkcs8" });
}

export function rawPublicKey(key: KeyObject): Buffer {
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
export function dh(local: KeyObject, remotePublic: Buffer): Buffer {
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

export function sha256(...parts: Uint8Array[]): Buffer {
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
export function hkdf2(chainingKey: Uint8Array, inputKeyMaterial: Uint8Array): [Buffer, Buffer] {
  const tempKey = hmacSha256(chainingKey, inputKeyMaterial);
  const output1 = hmacSha256(tempKey, Buffer.of(0x01));
  const output2 = hmacSha256(tempKey, output1, Buffer.of(0x02));
  return [output1, output2];
}

// ---------------------------------------------------------------------------

/**
 * Frees a buffer nothing refers to any more now, instead of when the garbage
 * collector gets to it: a big transfer encrypts or decrypts ~44 KiB a frame,
 * and V8 answers that much short-lived external memory with full
 * mark-compacts (docs/PERFORMANCE.md). Only a buffer that spans an
 * `ArrayBuffer` of its own is freed (never one on Node's shared pool); any
 * view of it reads as empty afterwards, so the caller must be its last user.
 */
export function releaseNow(buf: Buffer): void {
  const backing = buf.buffer;
  if (backing instanceof ArrayBuffer && buf.byteOffset === 0 && backing.byteLength === buf.byteLength && !backing.detached) backing.transfer(0);
}

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
    releaseNow(body);
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
