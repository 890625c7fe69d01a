/**
 * The panel's WebSocket API at `/ws`: JSON requests `{command, message_id,
 * args}`, replies `{message_id, result}` or `{message_id, error_code,
 * details}`, and stream frames `{message_id, event, data}`. `unsubscribe
 * {message_id}` ends the connection's open streams with that message_id.
 *
 * Each connection is bounded (docs/THREAT_MODEL.md, "Memory bounds"): at most
 * `MAX_STREAMS_PER_CONNECTION` open streams (more: `too_many_streams`), at
 * most `MAX_IN_FLIGHT` requests worked on at once, and what the client has not
 * read is kept by an `Outbox`: while too many replies wait unread, the
 * connection's requests are not read (TCP pushes back on the client); past the
 * hard limit the connection is closed with 1008.
 */
import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type RawData, type WebSocket } from "ws";
import { z } from "zod";
import { ErrorCode, errorMessage, isBuilderError } from "../errors.ts";
import { getLogger } from "../logger.ts";
import { COMMANDS, type ApiServices, type ClientContext, type Command, type StreamSink } from "./commands.ts";
import { CLOSE_NOT_READING, CLOSE_NOT_READING_REASON, Outbox, type FrameKind } from "./outbox.ts";

const log = getLogger("ws-api");

/** Largest request answered with an error; larger frames close the socket (1009). */
export const MAX_MESSAGE_BYTES = 256 * 1024;
const HARD_MAX_PAYLOAD = 4 * 1024 * 1024;
/** Open streams per connection; the panel keeps two or three. */
export const MAX_STREAMS_PER_CONNECTION = 32;
/** Requests of one connection worked on at once; the next ones wait, unread. */
export const MAX_IN_FLIGHT = 32;
/**
 * Requests of one connection started per event-loop turn: a client that
 * pipelines thousands of requests gets them answered in slices, and every
 * other connection (and the peer link's heartbeats) gets its turn in between.
 */
const REQUESTS_PER_TURN = 32;
/** How often a connection held for its backlog checks whether the client caught up. */
const HOLD_POLL_MS = 25;

const envelopeSchema = z.object({
  command: z.string().min(1).max(100),
  message_id: z.union([z.string().max(100), z.number().int()]),
  args: z.record(z.string(), z.unknown()).optional(),
});

type MessageId = string | number | null;

/** The one command about the connection itself: it ends open streams, so it is not in the command table. */
export const UNSUBSCRIBE = "unsubscribe";
const unsubscribeArgs = z.strictObject({ message_id: z.union([z.string().max(100), z.number().int()]) });

function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const where = issue.path.length > 0 ? issue.path.join(".") : "args";
      return `${where}: ${issue.message}`;
    })
    .join("; ");
}

export interface WsApiOptions {
  services: ApiServices;
}

/** One client connection's state. */
interface Connection {
  readonly ws: WebSocket;
  /** The TCP socket under `ws`: corked for a turn, so a turn's replies leave in one write. */
  readonly socket: Duplex;
  corked: boolean;
  readonly peer: string;
  readonly outbox: Outbox;
  readonly client: ClientContext;
  /** The `end` of each open stream, and the message_id it was opened with. */
  readonly streams: Map<() => void, MessageId>;
  readonly onClose: Map<string, () => void>;
  /** Requests received and not yet started, oldest first (at most what the socket had read when it was paused). */
  readonly waiting: [RawData, boolean][];
  inFlight: number;
  /** Requests this connection may still start in this turn of the event loop. */
  budget: number;
  /** The next turn, when the budget ran out. */
  turn: NodeJS.Immediate | undefined;
  pumping: boolean;
  paused: boolean;
  poll: NodeJS.Timeout | undefined;
  closed: boolean;
}

export class WsApi {
  readonly #services: ApiServices;
  // Pongs go through the connection's Outbox, so a client that pings and never reads is bounded too.
  readonly #wss = new WebSocketServer({ noServer: true, maxPayload: HARD_MAX_PAYLOAD, autoPong: false });
  readonly #clients = new Set<WebSocket>();

  constructor(opts: WsApiOptions) {
    this.#services = opts.services;
  }

  /** Handles an HTTP upgrade for `/ws` (the HTTP server has checked its Host and Origin). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      this.#attach(ws, socket, req.socket.remoteAddress ?? "?");
    });
  }

  /** Closes every client connection. */
  stop(): void {
    for (const ws of this.#clients) ws.close(1001, "server stopping");
    this.#wss.close();
  }

  #attach(ws: WebSocket, socket: Duplex, peer: string): void {
    this.#clients.add(ws);
    const onClose = new Map<string, () => void>();
    const conn: Connection = {
      ws,
      socket,
      corked: false,
      peer,
      outbox: new Outbox(ws, (detail) => {
        log.warning(`closing the panel connection from ${peer} (${CLOSE_NOT_READING} ${CLOSE_NOT_READING_REASON}): ${detail}`);
        this.#teardown(conn);
        ws.close(CLOSE_NOT_READING, CLOSE_NOT_READING_REASON);
        ws.resume(); // to read the client's closing handshake (its requests are ignored now)
      }),
      client: {
        clientId: randomBytes(8).toString("hex"),
        onClose: (key, fn) => { onClose.set(key, fn); },
      },
      streams: new Map(),
      onClose,
      waiting: [],
      inFlight: 0,
      budget: REQUESTS_PER_TURN,
      turn: undefined,
      pumping: false,
      paused: false,
      poll: undefined,
      closed: false,
    };
    ws.on("message", (data: RawData, isBinary: boolean) => {
      if (conn.closed) return;
      conn.waiting.push([data, isBinary]);
      this.#pump(conn);
    });
    ws.on("ping", (data: Buffer) => {
      conn.outbox.pong(data);
      this.#pump(conn);
    });
    ws.on("close", () => {
      this.#clients.delete(ws);
      this.#teardown(conn);
    });
    ws.on("error", (err) => {
      log.debug(`client socket error: ${err.message}`);
    });
  }

  /** Starts the waiting requests the connection may start now; stops reading the socket while it may not. */
  #pump(conn: Connection): void {
    if (conn.pumping || conn.closed) return;
    conn.pumping = true;
    try {
      for (;;) {
        const backlog = conn.outbox.held();
        if (backlog || (conn.waiting.length > 0 && (conn.inFlight >= MAX_IN_FLIGHT || conn.budget === 0))) {
          if (conn.budget === 0 && conn.turn === undefined) {
            conn.turn = setImmediate(() => {
              conn.turn = undefined;
              conn.budget = REQUESTS_PER_TURN;
              this.#pump(conn);
            });
          }
          this.#hold(conn, backlog);
          return;
        }
        const next = conn.waiting.shift();
        if (next === undefined) break;
        if (!conn.corked) {
          conn.corked = true;
          conn.socket.cork();
          setImmediate(() => {
            conn.corked = false;
            conn.socket.uncork();
          });
        }
        conn.budget--;
        conn.inFlight++;
        void this.#onMessage(conn, next[0], next[1]);
      }
      if (conn.paused) {
        conn.paused = false;
        clearInterval(conn.poll);
        conn.poll = undefined;
        conn.ws.resume();
      }
    } finally {
      conn.pumping = false;
    }
  }

  /**
   * Reads nothing more from the client until it has read its replies
   * (`backlog`) or its requests in flight finish. Finishing requests call
   * #pump; the backlog draining has no event, so a timer looks.
   */
  #hold(conn: Connection, backlog: boolean): void {
    if (!conn.paused) {
      conn.paused = true;
      conn.ws.pause();
    }
    if (backlog && conn.poll === undefined) {
      log.debug(`not reading the panel connection from ${conn.peer} until it reads its replies: ${JSON.stringify(conn.outbox.unsent())} unsent`);
      conn.poll = setInterval(() => { this.#pump(conn); }, HOLD_POLL_MS);
    }
  }

  /** Ends the connection's streams and forgets its waiting requests (on close, or when closing it). */
  #teardown(conn: Connection): void {
    if (conn.closed) return;
    conn.closed = true;
    clearInterval(conn.poll);
    clearImmediate(conn.turn);
    conn.poll = undefined;
    conn.waiting.length = 0;
    for (const end of [...conn.streams.keys()]) end();
    const onClose = [...conn.onClose.values()];
    conn.onClose.clear();
    for (const fn of onClose) fn();
  }

  #send(conn: Connection, frame: object, kind: FrameKind = "reply"): void {
    if (conn.closed || conn.ws.readyState !== conn.ws.OPEN) return;
    conn.outbox.send(JSON.stringify(frame), kind);
  }

  #error(conn: Connection, messageId: MessageId, code: ErrorCode, details: string): void {
    this.#send(conn, { message_id: messageId, error_code: code, details });
  }

  async #onMessage(conn: Connection, data: RawData, isBinary: boolean): Promise<void> {
    try {
      await this.#dispatch(conn, data, isBinary);
    } finally {
      conn.inFlight--;
      this.#pump(conn);
    }
  }

  async #dispatch(conn: Connection, data: RawData, isBinary: boolean): Promise<void> {
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    if (isBinary) {
      this.#error(conn, null, ErrorCode.InvalidMessage, "Binary frames are not accepted; send JSON text");
      return;
    }
    if (bytes.length > MAX_MESSAGE_BYTES) {
      this.#error(conn, null, ErrorCode.InvalidMessage, `Message too large: ${bytes.length} bytes (limit ${MAX_MESSAGE_BYTES})`);
      return;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(bytes.toString("utf8"));
    } catch (err) {
      this.#error(conn, null, ErrorCode.InvalidMessage, `Message is not valid JSON: ${errorMessage(err)}`);
      return;
    }
    const envelope = envelopeSchema.safeParse(raw);
    if (!envelope.success) {
      const id = typeof raw === "object" && raw !== null && "message_id" in raw ? raw.message_id : null;
      const messageId = typeof id === "string" || typeof id === "number" ? id : null;
      this.#error(conn, messageId, ErrorCode.InvalidMessage, `Malformed message: ${describeIssues(envelope.error)}`);
      return;
    }
    const { command: name, message_id: messageId } = envelope.data;
    if (name === UNSUBSCRIBE) {
      this.#unsubscribe(conn, messageId, envelope.data.args);
      return;
    }
    const command = Object.hasOwn(COMMANDS, name) ? (COMMANDS as Record<string, Command>)[name] : undefined;
    if (command === undefined) {
      this.#error(conn, messageId, ErrorCode.UnknownCommand, `Unknown command: ${name}`);
      return;
    }
    const args = command.args.safeParse(envelope.data.args ?? {});
    if (!args.success) {
      this.#error(conn, messageId, ErrorCode.InvalidArgs, `Invalid arguments for ${name}: ${describeIssues(args.error)}`);
      return;
    }
    if (command.kind === "stream" && conn.streams.size >= MAX_STREAMS_PER_CONNECTION) {
      this.#error(
        conn,
        messageId,
        ErrorCode.TooManyStreams,
        `This connection already has ${MAX_STREAMS_PER_CONNECTION} open streams, the most allowed; end one with unsubscribe {message_id}, wait for one to end (a follow_job stream ends with its job), or reconnect, which ends them all`,
      );
      return;
    }
    let sink: StreamSink | undefined;
    try {
      if (command.kind === "reply") {
        const result: unknown = await command.run(args.data, this.#services, conn.client);
        this.#send(conn, { message_id: messageId, result: result ?? null });
      } else {
        sink = this.#sink(conn, messageId);
        await command.run(args.data, this.#services, sink, conn.client);
      }
    } catch (err) {
      sink?.end(); // a stream that failed to start holds nothing
      if (isBuilderError(err)) {
        this.#error(conn, messageId, err.code, err.message);
      } else {
        log.error(`${name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
        this.#error(conn, messageId, ErrorCode.InternalError, `Internal error while running ${name}`);
      }
    }
  }

  /** Ends the connection's open streams opened with `args.message_id`; `not_found` when there is none. */
  #unsubscribe(conn: Connection, messageId: MessageId, raw: Record<string, unknown> | undefined): void {
    const args = unsubscribeArgs.safeParse(raw ?? {});
    if (!args.success) {
      this.#error(conn, messageId, ErrorCode.InvalidArgs, `Invalid arguments for ${UNSUBSCRIBE}: ${describeIssues(args.error)}`);
      return;
    }
    const ends = [...conn.streams].filter(([, id]) => id === args.data.message_id).map(([end]) => end);
    if (ends.length === 0) {
      this.#error(conn, messageId, ErrorCode.NotFound, `No open stream with message_id ${JSON.stringify(args.data.message_id)} (it may have ended already)`);
      return;
    }
    for (const end of ends) end();
    this.#send(conn, { message_id: messageId, result: { ended: ends.length } });
  }

  #sink(conn: Connection, messageId: MessageId): StreamSink {
    let ended = false;
    const cleanups: (() => void)[] = [];
    const end = (): void => {
      if (ended) return;
      ended = true;
      conn.streams.delete(end);
      for (const fn of cleanups) fn();
    };
    conn.streams.set(end, messageId);
    return {
      send: (event, data, opts) => {
        if (ended) return;
        if (opts?.droppable === true && conn.outbox.backlogged()) return;
        this.#send(conn, { message_id: messageId, event, data }, opts?.droppable === true ? "droppable" : opts?.paced === true ? "paced" : "event");
      },
      backlogged: () => conn.outbox.backlogged(),
      end,
      onEnd: (fn) => {
        if (ended) fn();
        else cleanups.push(fn);
      },
    };
  }
}
