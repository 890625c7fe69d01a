/**
 * The JSON lines a child process prints on stdout (the netns helpers report
 * that way), kept as they come, with a wait for the first one that matches.
 */
import type { ChildProcessWithoutNullStreams } from "node:child_process";

/** JSON lines of a child's stdout, with a way to wait for one. */
export class JsonLines {
  readonly items: Record<string, unknown>[] = [];
  stderr = "";
  readonly child: ChildProcessWithoutNullStreams;
  constructor(child: ChildProcessWithoutNullStreams) {
    this.child = child;
    let buffered = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf("\n")) !== -1) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (line.startsWith("{")) this.items.push(JSON.parse(line) as Record<string, unknown>);
      }
    });
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => { this.stderr += chunk; });
  }
  async find(predicate: (item: Record<string, unknown>) => boolean, what: string, timeoutMs = 20_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.items.find(predicate);
      if (hit !== undefined) return hit;
      if (this.child.exitCode !== null) throw new Error(`process exited while waiting for ${what}\n${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${this.stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
