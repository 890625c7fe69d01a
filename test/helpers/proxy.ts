/**
 * A loopback TCP proxy a test can freeze (bytes are dropped: a live connection
 * goes silent) or pause (bytes stay unread: TCP backpressure builds up).
 */
import net from "node:net";
import { onTestFinished } from "vitest";

export interface Proxy {
  port: number;
  /** Stops forwarding in both directions (the connection stays open). */
  freeze(): void;
  /** Stops reading from both sides until `resume`; nothing is lost. */
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

export async function startProxy(targetPort: number): Promise<Proxy> {
  const sockets = new Set<net.Socket>();
  let frozen = false;
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, "127.0.0.1");
    sockets.add(client);
    sockets.add(upstream);
    client.on("data", (d) => { if (!frozen) upstream.write(d); });
    upstream.on("data", (d) => { if (!frozen) client.write(d); });
    const end = (): void => { client.destroy(); upstream.destroy(); };
    client.on("close", end);
    upstream.on("close", end);
    client.on("error", end);
    upstream.on("error", end);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const proxy: Proxy = {
    port: (server.address() as net.AddressInfo).port,
    freeze: () => { frozen = true; },
    pause: () => { for (const s of sockets) s.pause(); },
    resume: () => { for (const s of sockets) s.resume(); },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => { r(); }));
    },
  };
  onTestFinished(() => proxy.close());
  return proxy;
}
