#!/usr/bin/env python3
"""A Noise_XX_25519_ChaChaPoly_SHA256 peer built on the `noiseprotocol`
package (the library the upstream Device Builder uses), driven line by line
over stdin/stdout by test/remote-build/transport/noise-interop.test.ts.

Usage: noise_peer.py --role initiator|responder --static HEX
                     [--ephemeral HEX] [--prologue HEX]

Prints "ready <own static public key hex>", then answers one line per command:

    write HEX      handshake message with payload HEX   -> ok <message hex>
    read HEX       handshake message HEX                -> ok <payload hex>
    encrypt HEX    transport frame for plaintext HEX    -> ok <frame hex>
    decrypt HEX    transport frame HEX                  -> ok <plaintext hex>
    remote_static  peer's static key seen so far        -> ok <hex>
    hash           handshake hash                       -> ok <hex>
    finished       handshake complete?                  -> ok true|false
    quit

"-" stands for empty bytes, both ways. Failures answer
"err <ExceptionClass> <message>" and the peer keeps going.
"""
import argparse
import sys
import warnings

from noise.connection import Keypair, NoiseConnection


def hex_out(data):
    return bytes(data).hex() or "-"


def hex_in(text):
    return b"" if text in ("", "-") else bytes.fromhex(text)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=["initiator", "responder"], required=True)
    parser.add_argument("--static", required=True)
    parser.add_argument("--ephemeral")
    parser.add_argument("--prologue")
    args = parser.parse_args()

    conn = NoiseConnection.from_name(b"Noise_XX_25519_ChaChaPoly_SHA256")
    if args.role == "initiator":
        conn.set_as_initiator()
    else:
        conn.set_as_responder()
    conn.set_keypair_from_private_bytes(Keypair.STATIC, bytes.fromhex(args.static))
    if args.ephemeral:
        # Fixed ephemeral keys make transcripts comparable byte for byte (tests only).
        conn.set_keypair_from_private_bytes(Keypair.EPHEMERAL, bytes.fromhex(args.ephemeral))
    if args.prologue:
        conn.set_prologue(bytes.fromhex(args.prologue))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conn.start_handshake()
    # The connection drops its handshake state once finished; keep a handle
    # so the responder can still report the initiator's key after message 3.
    handshake = conn.noise_protocol.handshake_state
    static_public = conn.noise_protocol.keypairs["s"].public_bytes

    print("ready " + static_public.hex(), flush=True)
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        command, arg = parts[0], (parts[1] if len(parts) > 1 else "-")
        try:
            if command == "write":
                reply = hex_out(conn.write_message(hex_in(arg)))
            elif command == "read":
                reply = hex_out(conn.read_message(hex_in(arg)))
            elif command == "encrypt":
                reply = hex_out(conn.encrypt(hex_in(arg)))
            elif command == "decrypt":
                reply = hex_out(conn.decrypt(hex_in(arg)))
            elif command == "remote_static":
                reply = hex_out(getattr(handshake.rs, "public_bytes", b""))
            elif command == "hash":
                reply = hex_out(conn.get_handshake_hash())
            elif command == "finished":
                reply = "true" if conn.handshake_finished else "false"
            elif command == "quit":
                break
            else:
                raise ValueError("unknown command " + command)
            print("ok " + reply, flush=True)
        except Exception as err:  # report and keep serving: the test decides
            message = " ".join(str(err).split()) or "-"
            print("err " + type(err).__name__ + " " + message, flush=True)


if __name__ == "__main__":
    main()
