/**
 * The slice of bonjour-service's API the builder uses for mDNS (the peer
 * link's builder discovery and the devices' `_esphomelib._tcp` browsing), and
 * the factory over the real library. Tests inject a fake with the same shape.
 */
import { EventEmitter } from "node:events";
import Bonjour from "bonjour-service";
import { getLogger } from "../logger.ts";

const log = getLogger("mdns");


export interface BonjourOptions {
  /** IPv4 address of the interface to join the group on and send from. */
  interface?: string;
  /** Address the UDP socket binds to. */
  bind?: string;
}

export interface BonjourPublishConfig {
  name: string;
  type: string;
  protocol: "tcp";
  port: number;
  host: string;
  txt: Record<string, string>;
  probe: boolean;
}

export interface BonjourServiceLike {
  /** Sends the goodbye; called as `stop(callback)` (typed `CallableFunction` by bonjour-service). */
  stop: CallableFunction;
}

export type BrowserEventName = "up" | "down" | "txt-update" | "srv-update";

export interface BonjourBrowserLike {
  on(event: BrowserEventName, listener: (service: unknown) => void): unknown;
  removeAllListeners(): unknown;
  stop(): void;
}

export interface BonjourLike {
  publish(config: BonjourPublishConfig): BonjourServiceLike;
  find(config: { type: string; protocol: "tcp" }, onup: (service: unknown) => void): BonjourBrowserLike;
  destroy(callback?: () => void): void;
}

export type BonjourFactory = (opts: BonjourOptions, onError: (err: unknown) => void) => BonjourLike;

/** A plain object's fields, or undefined for anything else (network input is never trusted to be an object). */
export function record(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === "object" ? (value as Record<string, unknown>) : undefined;
}

/** bonjour-service over the real network. */
export const defaultBonjourFactory: BonjourFactory = (opts, onError) => {
  // bonjour-service passes its constructor options on to multicast-dns
  // (`interface`, `bind`) although its typings only name ServiceConfig keys.
  const mdnsOpts: Partial<Bonjour.ServiceConfig> & BonjourOptions = { ...opts };
  const bonjour = new Bonjour(mdnsOpts, onError);
  // multicast-dns emits 'error' (EADDRINUSE, EACCES on bind) on its emitter,
  // which bonjour-service does not listen to: unhandled, it would crash the
  // process. The emitter is not public API, so reach it defensively.
  const mdns = record(record(bonjour)?.server)?.mdns;
  if (mdns instanceof EventEmitter) {
    mdns.on("error", onError);
  } else {
    log.warning("bonjour-service internals changed: mDNS socket errors are not caught");
  }
  return bonjour;
};
