/**
 * The panel's one WebSocket to the builder: requests matched to replies by
 * `message_id`, streams (frames with an `event`), and reconnect with backoff.
 *
 * Streams opened with `resubscribe` are sent again after a reconnect (their
 * `onReset` runs first, so the owner can drop what the old stream gave it);
 * requests in flight when the socket drops fail with `connection_lost`.
 */

export type ConnectionStatus = "connecting" | "open" | "reconnecting" | "closed";

/** The part of the browser's WebSocket the connection uses. */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: Event) => unknown) | null;
  onclose: ((ev: CloseEvent) => unknown) | null;
  onmessage: ((ev: MessageEvent) => unknown) | null;
  onerror: ((ev: Event) => unknown) | null;
}

export type SocketFactory = (url: string) => SocketLike;

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface ConnectionOptions {
  url: string;
  createSocket?: SocketFactory;
  /** First reconnect delay; doubles up to `maxDelayMs`. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** How long a request waits for the socket to open before failing. */
  openTimeoutMs?: number;
  timers?: Timers;
}

/** An error reply from the builder, or a local failure with a code of our own. */
export class ApiError extends Error {
  readonly code: string;
  constructor(code: string, details: string) {
    super(details);
    this.name = "ApiError";
    this.code = code;
  }
}

export interface StreamHandlers {
  onEvent(event: string, data: unknown): void;
  /** The builder refused the stream (an error reply); the stream is over. */
  onError?(error: ApiError): void;
  /** The socket reconnected and the stream is about to be sent again. */
  onReset?(): void;
}

export interface StreamHandle {
  /**
   * Stops delivering frames and asks the builder to end the stream
   * (`unsubscribe`), which frees its slot there; frames already on the way
   * are ignored.
   */
  cancel(): void;
  /** The stream ended on the builder's side (its last frame came): stops tracking it, sends nothing. */
  forget(): void;
}

interface Frame {
  message_id?: string | number | null;
  result?: unknown;
  error_code?: string;
  details?: string;
  event?: string;
  data?: unknown;
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: ApiError): void;
}

interface Stream {
  command: string;
  args: object | undefined;
  handlers: StreamHandlers;
  resubscribe: boolean;
  id: string;
}

/** Builds the WebSocket URL of `/ws` relative to the page (works under any ingress prefix). */
export function websocketUrl(pageHref: string): string {
  const url = new URL("ws", pageHref);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.hash = "";
  url.search = "";
  return url.href;
}

export class Connection {
  readonly #opts: Required<Omit<ConnectionOptions, "createSocket">> & { createSocket: SocketFactory };
  #socket: SocketLike | null = null;
  #status: ConnectionStatus = "closed";
  #nextId = 1;
  #delay: number;
  #retryTimer: unknown = null;
  #everOpened = false;
  readonly #pending = new Map<string, Pending>();
  readonly #streams = new Map<string, Stream>();
  /** Streams by the message_id of their current subscription. */
  readonly #streamsById = new Map<string, Stream>();
  readonly #statusListeners = new Set<(status: ConnectionStatus) => void>();
  readonly #openWaiters = new Set<() => void>();

  constructor(opts: ConnectionOptions) {
    this.#opts = {
      url: opts.url,
      createSocket: opts.createSocket ?? ((url) => new WebSocket(url)),
      initialDelayMs: opts.initialDelayMs ?? 500,
      maxDelayMs: opts.maxDelayMs ?? 10_000,
      openTimeoutMs: opts.openTimeoutMs ?? 15_000,
      timers: opts.timers ?? {
        setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
        clearTimeout: (handle) => { globalThis.clearTimeout(handle as number); },
      },
    };
    this.#delay = this.#opts.initialDelayMs;
  }

  get status(): ConnectionStatus {
    return this.#status;
  }

  /** Calls `listener` on every status change; returns the unsubscribe function. */
  onStatus(listener: (status: ConnectionStatus) => void): () => void {
    this.#statusListeners.add(listener);
    return () => this.#statusListeners.delete(listener);
  }

  /** Opens the socket (and keeps it open until `close`). */
  start(): void {
    if (this.#status !== "closed") return;
    this.#connect();
  }

  /** Closes for good: no reconnect; pending requests fail. */
  close(): void {
    this.#setStatus("closed");
    if (this.#retryTimer !== null) this.#opts.timers.clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    const socket = this.#socket;
    this.#socket = null;
    if (socket !== null) {
      socket.onclose = null;
      socket.close(1000, "panel closed");
    }
    this.#failPending("connection_closed", "The connection was closed");
  }

  /** Sends a command and resolves with its result (rejects with `ApiError`). */
  async request<T>(command: string, args?: object): Promise<T> {
    await this.#whenOpen();
    const id = `r${this.#nextId++}`;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: (value) => { resolve(value as T); }, reject });
      this.#send({ command, message_id: id, ...(args === undefined ? {} : { args }) });
    });
  }

  /**
   * Starts a stream. With `resubscribe` it is sent again after every
   * reconnect; otherwise a dropped socket ends it with `onError(connection_lost)`.
   */
  stream(command: string, args: object | undefined, handlers: StreamHandlers, opts: { resubscribe?: boolean } = {}): StreamHandle {
    const stream: Stream = { command, args, handlers, resubscribe: opts.resubscribe ?? false, id: "" };
    const key = `s${this.#nextId++}`;
    this.#streams.set(key, stream);
    if (this.#status === "open") this.#sendStream(stream);
    const forget = (): boolean => {
      const tracked = this.#streams.delete(key);
      this.#streamsById.delete(stream.id);
      return tracked;
    };
    return {
      cancel: () => {
        // Its answer is not awaited: a stream that ended meanwhile is answered not_found, which changes nothing.
        if (forget() && this.#status === "open" && stream.id !== "") {
          this.#send({ command: "unsubscribe", message_id: `u${this.#nextId++}`, args: { message_id: stream.id } });
        }
      },
      forget: () => {
        forget();
      },
    };
  }

  #sendStream(stream: Stream): void {
    this.#streamsById.delete(stream.id);
    stream.id = `s${this.#nextId++}`;
    this.#streamsById.set(stream.id, stream);
    this.#send({ command: stream.command, message_id: stream.id, ...(stream.args === undefined ? {} : { args: stream.args }) });
  }

  #send(frame: object): void {
    this.#socket?.send(JSON.stringify(frame));
  }

  #whenOpen(): Promise<void> {
    if (this.#status === "open") return Promise.resolve();
    if (this.#status === "closed") return Promise.reject(new ApiError("connection_closed", "The connection is closed"));
    return new Promise((resolve, reject) => {
      const done = (): void => {
        this.#opts.timers.clearTimeout(timer);
        this.#openWaiters.delete(done);
        resolve();
      };
      const timer = this.#opts.timers.setTimeout(() => {
        this.#openWaiters.delete(done);
        reject(new ApiError("not_connected", "The builder cannot be reached"));
      }, this.#opts.openTimeoutMs);
      this.#openWaiters.add(done);
    });
  }

  #setStatus(status: ConnectionStatus): void {
    if (this.#status === status) return;
    this.#status = status;
    for (const listener of [...this.#statusListeners]) listener(status);
  }

  #connect(): void {
    this.#retryTimer = null;
    this.#setStatus(this.#everOpened ? "reconnecting" : "connecting");
    let socket: SocketLike;
    try {
      socket = this.#opts.createSocket(this.#opts.url);
    } catch {
      this.#scheduleReconnect();
      return;
    }
    this.#socket = socket;
    socket.onopen = () => {
      if (this.#socket !== socket) return;
      this.#delay = this.#opts.initialDelayMs;
      const reconnect = this.#everOpened;
      this.#everOpened = true;
      this.#setStatus("open");
      for (const stream of this.#streams.values()) {
        if (reconnect) stream.handlers.onReset?.();
        this.#sendStream(stream);
      }
      for (const waiter of [...this.#openWaiters]) waiter();
    };
    socket.onmessage = (ev) => {
      if (this.#socket !== socket || typeof ev.data !== "string") return;
      this.#onFrame(ev.data);
    };
    socket.onerror = () => {
      // A close event follows; reconnecting happens there.
    };
    socket.onclose = () => {
      if (this.#socket !== socket) return;
      this.#socket = null;
      this.#failPending("connection_lost", "The connection to the builder was lost");
      this.#streamsById.clear();
      for (const [key, stream] of this.#streams) {
        if (!stream.resubscribe) {
          this.#streams.delete(key);
          stream.handlers.onError?.(new ApiError("connection_lost", "The connection to the builder was lost"));
        }
      }
      if (this.#status !== "closed") this.#scheduleReconnect();
    };
  }

  #scheduleReconnect(): void {
    this.#setStatus(this.#everOpened ? "reconnecting" : "connecting");
    const delay = this.#delay;
    this.#delay = Math.min(this.#delay * 2, this.#opts.maxDelayMs);
    this.#retryTimer = this.#opts.timers.setTimeout(() => {
      this.#connect();
    }, delay);
  }

  #failPending(code: string, message: string): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.reject(new ApiError(code, message));
  }

  #onFrame(text: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return;
    }
    if (typeof parsed !== "object" || parsed === null) return;
    const frame = parsed as Frame;
    const id = frame.message_id;
    if (typeof id !== "string") return;
    const pending = this.#pending.get(id);
    if (pending !== undefined) {
      this.#pending.delete(id);
      if (frame.error_code !== undefined) pending.reject(new ApiError(frame.error_code, frame.details ?? frame.error_code));
      else pending.resolve(frame.result);
      return;
    }
    const stream = this.#streamsById.get(id);
    if (stream === undefined) return;
    if (frame.error_code !== undefined) {
      this.#streamsById.delete(id);
      for (const [key, s] of this.#streams) if (s === stream) this.#streams.delete(key);
      stream.handlers.onError?.(new ApiError(frame.error_code, frame.details ?? frame.error_code));
    } else if (typeof frame.event === "string") {
      stream.handlers.onEvent(frame.event, frame.data);
    }
  }
}
