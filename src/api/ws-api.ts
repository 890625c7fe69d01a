/**
 * The panel's WebSocket API at `/ws`: JSON requests `{command, message_id,
 * args}`, replies `{message_id, result}` or `{message_id, error_code,
 * details}`, and stream frames `{message_id, event, data}`.
 */
import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type RawData, type WebSocket } from "ws";
import { z } from "zod";
import { BuilderError, ErrorCode, errorMessage } from "../errors.ts";
import { getLogger } from "../logger.ts";
import { COMMANDS, type ApiServices, type ClientContext, type Command, type StreamSink } from "./commands.ts";

const log = getLogger("ws-api");

/** Largest request answered with an error; larger frames close the socket (1009). */
export const MAX_MESSAGE_BYTES = 256 * 1024;
const HARD_MAX_PAYLOAD = 4 * 1024 * 1024;
/** Past this much unsent data, droppable stream frames (output, progress) are skipped for that client. */
const BACKLOG_LIMIT = 8 * 1024 * 1024;

const envelopeSchema = z.object({
  command: z.string().min(1).max(100),
  message_id: z.union([z.string().max(100), z.number().int()]),
  args: z.record(z.string(), z.unknown()).optional(),
});

type MessageId = string | number | null;

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

export class WsApi {
  readonly #services: ApiServices;
  readonly #wss = new WebSocketServer({ noServer: true, maxPayload: HARD_MAX_PAYLOAD });
  readonly #clients = new Set<WebSocket>();

  constructor(opts: WsApiOptions) {
    this.#services = opts.services;
  }

  /** Handles an HTTP upgrade for `/ws` (the HTTP server has checked its Host and Origin). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      this.#attach(ws);
    });
  }

  /** Closes every client connection. */
  stop(): void {
    for (const ws of this.#clients) ws.close(1001, "server stopping");
    this.#wss.close();
  }

  #attach(ws: WebSocket): void {
    this.#clients.add(ws);
    const cleanups = new Map<MessageId, (() => void)[]>();
    const onClose: (() => void)[] = [];
    const client: ClientContext = {
      clientId: randomBytes(8).toString("hex"),
      onClose: (fn) => { onClose.push(fn); },
    };
    ws.on("message", (data: RawData, isBinary: boolean) => {
      void this.#onMessage(ws, data, isBinary, cleanups, client);
    });
    ws.on("close", () => {
      this.#clients.delete(ws);
      for (const list of cleanups.values()) for (const fn of list) fn();
      cleanups.clear();
      for (const fn of onClose.splice(0)) fn();
    });
    ws.on("error", (err) => {
      log.debug(`client socket error: ${err.message}`);
    });
  }

  #send(ws: WebSocket, frame: object): void {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(JSON.stringify(frame));
  }

  #error(ws: WebSocket, messageId: MessageId, code: ErrorCode, details: string): void {
    this.#send(ws, { message_id: messageId, error_code: code, details });
  }

  async #onMessage(ws: WebSocket, data: RawData, isBinary: boolean, cleanups: Map<MessageId, (() => void)[]>, client: ClientContext): Promise<void> {
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    if (isBinary) {
      this.#error(ws, null, ErrorCode.InvalidMessage, "Binary frames are not accepted; send JSON text");
      return;
    }
    if (bytes.length > MAX_MESSAGE_BYTES) {
      this.#error(ws, null, ErrorCode.InvalidMessage, `Message too large: ${bytes.length} bytes (limit ${MAX_MESSAGE_BYTES})`);
      return;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(bytes.toString("utf8"));
    } catch (err) {
      this.#error(ws, null, ErrorCode.InvalidMessage, `Message is not valid JSON: ${errorMessage(err)}`);
      return;
    }
    const envelope = envelopeSchema.safeParse(raw);
    if (!envelope.success) {
      const id = typeof raw === "object" && raw !== null && "message_id" in raw ? raw.message_id : null;
      const messageId = typeof id === "string" || typeof id === "number" ? id : null;
      this.#error(ws, messageId, ErrorCode.InvalidMessage, `Malformed message: ${describeIssues(envelope.error)}`);
      return;
    }
    const { command: name, message_id: messageId } = envelope.data;
    const command = Object.hasOwn(COMMANDS, name) ? (COMMANDS as Record<string, Command>)[name] : undefined;
    if (command === undefined) {
      this.#error(ws, messageId, ErrorCode.UnknownCommand, `Unknown command: ${name}`);
      return;
    }
    const args = command.args.safeParse(envelope.data.args ?? {});
    if (!args.success) {
      this.#error(ws, messageId, ErrorCode.InvalidArgs, `Invalid arguments for ${name}: ${describeIssues(args.error)}`);
      return;
    }
    try {
      if (command.kind === "reply") {
        const result: unknown = await command.run(args.data, this.#services, client);
        this.#send(ws, { message_id: messageId, result: result ?? null });
      } else {
        await command.run(args.data, this.#services, this.#sink(ws, messageId, cleanups), client);
      }
    } catch (err) {
      if (err instanceof BuilderError) {
        this.#error(ws, messageId, err.code, err.message);
      } else {
        log.error(`${name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
        this.#error(ws, messageId, ErrorCode.InternalError, `Internal error while running ${name}`);
      }
    }
  }

  #sink(ws: WebSocket, messageId: MessageId, cleanups: Map<MessageId, (() => void)[]>): StreamSink {
    let ended = false;
    const list: (() => void)[] = [];
    cleanups.set(messageId, list);
    return {
      send: (event, data, opts) => {
        if (ended) return;
        if (opts?.droppable === true && ws.bufferedAmount > BACKLOG_LIMIT) return;
        this.#send(ws, { message_id: messageId, event, data });
      },
      backlogged: () => ws.bufferedAmount > BACKLOG_LIMIT,
      end: () => {
        if (ended) return;
        ended = true;
        for (const fn of list) fn();
        cleanups.delete(messageId);
      },
      onEnd: (fn) => {
        if (ended) fn();
        else list.push(fn);
      },
    };
  }
}
