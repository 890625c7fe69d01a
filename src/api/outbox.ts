/**
 * Everything a server-side WebSocket sends its client goes through an Outbox,
 * so what the client has not read yet is known exactly, in bytes and in
 * frames, and stays bounded.
 *
 * Frames count as much as bytes: Node keeps every queued frame as two write
 * requests with their own buffers, about 330 bytes of bookkeeping besides the
 * payload, so a client that asks for 400,000 tiny replies and never reads them
 * holds ten times their size in memory. `ws.bufferedAmount` gives the bytes;
 * the Outbox numbers each frame by where it ends in the byte stream, so the
 * frames still queued are the ones ending past `sent − bufferedAmount`.
 *
 * Three thresholds, checked on every send:
 * - past `dropBytes` or `dropFrames` unsent, `backlogged()` is true and
 *   droppable frames (job output, progress) are skipped (senders of paced
 *   output skip theirs and note the gap; the job is unaffected);
 * - past `holdBytes` or `holdFrames` unsent replies and events, `held()` is
 *   true: the owner stops reading the client's requests until it catches up
 *   (output frames do not count, so a slow viewer of a chatty build can still
 *   cancel it);
 * - past `closeBytes` or `closeFrames` unsent in all, `onOverflow` runs once:
 *   the owner closes the connection.
 */
import type { WebSocket } from "ws";

/**
 * - `reply`, `event`: never skipped; count toward `held`.
 * - `paced`: never skipped; the sender checks `backlogged()` itself (job output).
 * - `droppable`: skipped while `backlogged()`.
 */
export type FrameKind = "reply" | "event" | "paced" | "droppable";

export interface OutboxLimits {
  dropBytes: number;
  dropFrames: number;
  holdBytes: number;
  holdFrames: number;
  closeBytes: number;
  closeFrames: number;
}

const MiB = 1024 * 1024;

/** The panel API's and the legacy API's limits (docs/THREAT_MODEL.md, "Memory bounds"). */
export const OUTBOX_LIMITS: Readonly<OutboxLimits> = {
  dropBytes: 8 * MiB,
  dropFrames: 16_384,
  holdBytes: 2 * MiB,
  holdFrames: 1024,
  closeBytes: 16 * MiB,
  closeFrames: 32_768,
};

/** The close code and reason for a client that stopped reading (1008: RFC 6455's policy violation). */
export const CLOSE_NOT_READING = 1008;
export const CLOSE_NOT_READING_REASON = "not reading: too much unsent data";

/** Bytes of an unmasked server frame carrying `length` payload bytes. */
function frameBytes(length: number): number {
  return length + (length < 126 ? 2 : length < 65_536 ? 4 : 10);
}

export class Outbox {
  readonly #ws: WebSocket;
  readonly #limits: Readonly<OutboxLimits>;
  readonly #onOverflow: (reason: string) => void;
  /** Frame bytes handed to the socket since it opened. */
  #sent = 0;
  /** Where each unsent frame ends in the byte stream, oldest first (from `#head`). */
  #ends: number[] = [];
  /** Each unsent frame's size; negative for one that does not count toward `held`. */
  #sizes: number[] = [];
  #head = 0;
  #heldBytes = 0;
  #heldFrames = 0;
  #overflowed = false;

  constructor(ws: WebSocket, onOverflow: (reason: string) => void, limits: Readonly<OutboxLimits> = OUTBOX_LIMITS) {
    this.#ws = ws;
    this.#onOverflow = onOverflow;
    this.#limits = limits;
  }

  /** Sends one text frame; false when it was not sent (droppable under backlog, or the socket is not open). */
  send(text: string, kind: FrameKind): boolean {
    if (this.#ws.readyState !== this.#ws.OPEN || this.#overflowed) return false;
    if (kind === "droppable" && this.backlogged()) return false;
    const data = Buffer.from(text, "utf8");
    this.#ws.send(data, { binary: false });
    this.#queued(frameBytes(data.length), kind === "reply" || kind === "event");
    return true;
  }

  /** Answers a ping (the server runs with `autoPong: false` so pongs count too). */
  pong(data: Buffer): void {
    if (this.#ws.readyState !== this.#ws.OPEN || this.#overflowed) return;
    this.#ws.pong(data);
    this.#queued(frameBytes(data.length), true);
  }

  /** True while droppable frames are being skipped. */
  backlogged(): boolean {
    this.#settle();
    return this.#ws.bufferedAmount > this.#limits.dropBytes || this.#ends.length - this.#head > this.#limits.dropFrames;
  }

  /** True while the client has too many unread replies and events: read no more of its requests. */
  held(): boolean {
    this.#settle();
    return this.#heldBytes > this.#limits.holdBytes || this.#heldFrames > this.#limits.holdFrames;
  }

  /** Frames and bytes not yet handed to the kernel. */
  unsent(): { frames: number; bytes: number } {
    this.#settle();
    return { frames: this.#ends.length - this.#head, bytes: this.#ws.bufferedAmount };
  }

  #queued(size: number, held: boolean): void {
    this.#sent += size;
    this.#ends.push(this.#sent);
    this.#sizes.push(held ? size : -size);
    if (held) {
      this.#heldBytes += size;
      this.#heldFrames += 1;
    }
    const { frames, bytes } = this.unsent();
    if (bytes > this.#limits.closeBytes || frames > this.#limits.closeFrames) {
      this.#overflowed = true;
      this.#onOverflow(`the client is not reading: ${frames} frames (${bytes} bytes) unsent`);
    }
  }

  /** Forgets the frames that have left. */
  #settle(): void {
    const left = this.#sent - this.#ws.bufferedAmount;
    const ends = this.#ends;
    let head = this.#head;
    while (head < ends.length && (ends[head] as number) <= left) {
      const size = this.#sizes[head] as number;
      if (size > 0) {
        this.#heldBytes -= size;
        this.#heldFrames -= 1;
      }
      head++;
    }
    if (head === ends.length) {
      ends.length = 0;
      this.#sizes.length = 0;
      head = 0;
    } else if (head > 4096 && head * 2 > ends.length) {
      this.#ends = ends.slice(head);
      this.#sizes = this.#sizes.slice(head);
      head = 0;
    }
    this.#head = head;
  }
}
