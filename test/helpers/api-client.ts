/** A small client of the panel API for tests: a real WebSocket to a real server. */
import WebSocket from "ws";

export interface Frame {
  message_id: string | number | null;
  result?: unknown;
  error_code?: string;
  details?: string;
  event?: string;
  data?: unknown;
}

export class ApiClient {
  readonly ws: WebSocket;
  readonly frames: Frame[] = [];
  #next = 1;
  readonly #listeners = new Set<(f: Frame) => void>();

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on("message", (data: Buffer) => {
      const frame = JSON.parse(data.toString("utf8")) as Frame;
      this.frames.push(frame);
      for (const l of [...this.#listeners]) l(frame);
    });
  }

  static async connect(port: number, opts: { origin?: string; path?: string; headers?: Record<string, string>; host?: string } = {}): Promise<ApiClient> {
    const ws = new WebSocket(`ws://${opts.host ?? "127.0.0.1"}:${port}${opts.path ?? "/ws"}`, { ...(opts.origin === undefined ? {} : { origin: opts.origin }), ...(opts.headers === undefined ? {} : { headers: opts.headers }) });
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => { resolve(); });
      ws.once("error", reject);
      ws.once("unexpected-response", (_req, res) => { reject(new Error(`HTTP ${res.statusCode}`)); });
    });
    return new ApiClient(ws);
  }

  /** Sends raw text and resolves with the next frame for `messageId` (or any id-less error). */
  sendRaw(text: string | Buffer, messageId: string | number | null = null): Promise<Frame> {
    const reply = this.waitFrame((f) => f.message_id === messageId && f.event === undefined);
    this.ws.send(text);
    return reply;
  }

  /** Calls a command; resolves with the whole reply frame (result or error). */
  request(command: string, args?: unknown): Promise<Frame> {
    const id = `m${this.#next++}`;
    return this.sendRaw(JSON.stringify({ command, message_id: id, ...(args === undefined ? {} : { args }) }), id);
  }

  /** Calls a command and returns its result, throwing on an error reply. */
  async call<T = unknown>(command: string, args?: unknown): Promise<T> {
    const frame = await this.request(command, args);
    if (frame.error_code !== undefined) throw new Error(`${frame.error_code}: ${frame.details ?? ""}`);
    return frame.result as T;
  }

  /** Starts a stream; `frames` collects its event frames. */
  stream(command: string, args?: unknown): { id: string; frames: Frame[]; until: (pred: (f: Frame) => boolean, ms?: number) => Promise<Frame> } {
    const id = `s${this.#next++}`;
    const frames: Frame[] = [];
    this.#listeners.add((f) => { if (f.message_id === id) frames.push(f); });
    this.ws.send(JSON.stringify({ command, message_id: id, ...(args === undefined ? {} : { args }) }));
    const until = (pred: (f: Frame) => boolean, ms = 20_000): Promise<Frame> => {
      const found = frames.find(pred);
      if (found !== undefined) return Promise.resolve(found);
      return this.waitFrame((f) => f.message_id === id && pred(f), ms);
    };
    return { id, frames, until };
  }

  waitFrame(pred: (f: Frame) => boolean, ms = 20_000): Promise<Frame> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#listeners.delete(listener);
        reject(new Error("timed out waiting for a frame"));
      }, ms);
      const listener = (f: Frame): void => {
        if (!pred(f)) return;
        clearTimeout(timer);
        this.#listeners.delete(listener);
        resolve(f);
      };
      this.#listeners.add(listener);
    });
  }

  close(): void {
    this.ws.close();
  }
}
