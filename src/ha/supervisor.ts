/**
 * The few Supervisor calls the add-on makes (all open to every add-on, no
 * `hassio_api` needed): its own info (ingress port and URL, slug) and the
 * `esphome` discovery that lets Home Assistant's ESPHome integration find the
 * legacy dashboard API. Supervisor replies are wrapped: `{result, data}`.
 */
import { z } from "zod";
import { BuilderError, errorMessage } from "../errors.ts";
import { getLogger } from "../logger.ts";

const log = getLogger("supervisor");

/** A host name as a builder label: trimmed, 1 to 64 characters (the `label` option's limit). */
const hostNameSchema = z.string().trim().min(1).max(64);

export interface AddonSelfInfo {
  slug: string;
  ingress_port: number;
  ingress_url: string | null;
  ingress_entry: string | null;
  ip_address: string | null;
}

/** Why a Supervisor call failed: unreachable, an error status (in the message), or an answer this builder cannot use. */
export const SUPERVISOR_CODES = ["supervisor_unreachable", "supervisor_http_error", "supervisor_bad_answer"] as const;
export type SupervisorCode = (typeof SUPERVISOR_CODES)[number];

export class SupervisorClient {
  readonly #url: string;
  readonly #token: string;
  readonly #timeoutMs: number;

  constructor(opts: { url: string; token: string; timeoutMs?: number }) {
    this.#url = opts.url.replace(/\/+$/, "");
    this.#token = opts.token;
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
  }

  async #call(method: "GET" | "POST", path: string, body?: unknown): Promise<Record<string, unknown>> {
    let res: Response;
    try {
      res = await fetch(`${this.#url}${path}`, {
        method,
        headers: { Authorization: `Bearer ${this.#token}`, ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (err) {
      throw new BuilderError<SupervisorCode>("supervisor_unreachable", `${method} ${path}: ${errorMessage((err as { cause?: unknown }).cause ?? err)}`);
    }
    const text = await res.text().catch(() => "");
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
    const envelope = (typeof parsed === "object" && parsed !== null ? parsed : {}) as { result?: unknown; data?: unknown; message?: unknown };
    if (!res.ok || envelope.result !== "ok") {
      const message = typeof envelope.message === "string" ? envelope.message : text.slice(0, 200);
      throw new BuilderError<SupervisorCode>("supervisor_http_error", `${method} ${path}: HTTP ${res.status} ${message}`);
    }
    return (typeof envelope.data === "object" && envelope.data !== null ? envelope.data : {}) as Record<string, unknown>;
  }

  async selfInfo(): Promise<AddonSelfInfo> {
    const data = await this.#call("GET", "/addons/self/info");
    const str = (v: unknown): string | null => (typeof v === "string" && v !== "" ? v : null);
    const port = data.ingress_port;
    if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
      throw new BuilderError<SupervisorCode>("supervisor_bad_answer", `/addons/self/info has no usable ingress_port (${JSON.stringify(port)})`);
    }
    return {
      slug: str(data.slug) ?? "",
      ingress_port: port,
      ingress_url: str(data.ingress_url),
      ingress_entry: str(data.ingress_entry),
      ip_address: str(data.ip_address),
    };
  }

  /**
   * The Home Assistant host's name: `hostname` of the Supervisor's `/info`, which every
   * add-on may read (`/host/info` has it too but needs `hassio_api`). Null when it has none.
   */
  async hostName(): Promise<string | null> {
    const data = await this.#call("GET", "/info");
    const parsed = hostNameSchema.safeParse(data.hostname);
    return parsed.success ? parsed.data : null;
  }

  /** Announces a service to Home Assistant; returns the discovery uuid. */
  async discovery(service: string, config: Record<string, unknown>): Promise<string> {
    const data = await this.#call("POST", "/discovery", { service, config });
    return typeof data.uuid === "string" ? data.uuid : "";
  }
}

/** Retries `fn` with backoff until it succeeds or `signal` aborts. */
export async function withRetry<T>(what: string, fn: () => Promise<T>, signal: AbortSignal, opts: { minMs?: number; maxMs?: number; attempts?: number } = {}): Promise<T> {
  let delay = opts.minMs ?? 1_000;
  const max = opts.maxMs ?? 30_000;
  for (let attempt = 1; ; attempt++) {
    signal.throwIfAborted();
    try {
      return await fn();
    } catch (err) {
      if (opts.attempts !== undefined && attempt >= opts.attempts) throw err;
      if (attempt === 1) log.warning(`${what} failed: ${errorMessage(err)}; retrying`);
      else log.debug(() => `${what} failed again: ${errorMessage(err)}`);
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, delay);
      function done(): void {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      }
      signal.addEventListener("abort", done, { once: true });
    });
    delay = Math.min(delay * 2, max);
  }
}
