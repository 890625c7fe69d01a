/**
 * Automation commands on a real process's stdin (what `hassio.addon_stdin`
 * writes into the add-on container), and the flags that turn it on.
 */
import { spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config.ts";
import type { FirmwareJob } from "../../src/firmware/job.ts";
import { MAX_COMMAND_BYTES, parseCommandLine, readCommandLines } from "../../src/ha/automation.ts";
import { setLogSink } from "../../src/logger.ts";
import { ApiClient } from "../helpers/api-client.ts";
import { ROOT, STAND_IN, configDir } from "../helpers/builder.ts";
import { waitFor } from "../helpers/tmp.ts";
import { PING_BOUND_MS, describeRtts, expectResponsive, pinger } from "../helpers/ping.ts";

/** Resident size, its peak (VmHWM) and CPU seconds of a process, from /proc. */
async function usage(pid: number): Promise<{ rssKiB: number; peakKiB: number; cpuSeconds: number }> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const stat = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1]!.split(" ");
  return {
    rssKiB: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]),
    peakKiB: Number(/VmHWM:\s+(\d+)/.exec(status)?.[1]),
    cpuSeconds: (Number(stat[11]) + Number(stat[12])) / 100, // utime + stime, in USER_HZ ticks
  };
}

const children: ReturnType<typeof spawn>[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
});

describe("automation commands on stdin", () => {
  it("a builder started with --stdin-commands runs the commands written to its stdin, one JSON object per line", async () => {
    const dir = await configDir({ kitchen: "", office: "" });
    const child = spawn(process.execPath, [path.join(ROOT, "src", "main.ts"), "--config-dir", dir, "--port", "0", "--peer-link-port", "0", "--peer-link-host", "127.0.0.1", "--no-mdns", "--esphome", STAND_IN, "--stdin-commands"], {
      env: { ...process.env, ESPHOME_STANDIN_COMPILE_SECONDS: "0.1", ESPHOME_STANDIN_UPLOAD_SECONDS: "0", ESPHOME_STANDIN_FAIL: "" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    children.push(child);
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const port = await new Promise<number>((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (d: Buffer) => {
        out += d.toString();
        const line = out.split("\n").find((l) => l.includes('"listening"'));
        if (line !== undefined) resolve((JSON.parse(line) as { port: number }).port);
      });
      child.on("exit", (code) => { reject(new Error(`exited ${code}: ${stderr}`)); });
    });
    child.stdin.write('{"command": "install", "configuration": "kitchen.yaml"}\n');
    child.stdin.write('"{\\"command\\": \\"compile\\", \\"configuration\\": \\"office.yaml\\"}"\r\n');
    child.stdin.write('{"command": "install", "configuration": "/etc/passwd"}\n{"command": "reboot"}\nnot json at all\n');
    const api = await ApiClient.connect(port);
    try {
      await waitFor(async () => (await api.call<FirmwareJob[]>("firmware/get_jobs")).length === 2, 10_000, "the two jobs");
      const jobs = await api.call<FirmwareJob[]>("firmware/get_jobs");
      expect(jobs.map((j) => `${j.job_type} ${j.configuration}`).sort()).toEqual(["compile office.yaml", "install kitchen.yaml"]);
    } finally {
      api.close();
    }
    await waitFor(() => /refused: unknown command "reboot"/.test(stderr) && /refused: not JSON/.test(stderr) && /install: configuration: .*not a path/.test(stderr), 5_000, "the refusals in the log");
    // Stops cleanly on SIGTERM with stdin still open.
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });

  it(`skips a 600 MiB line without a newline unread, refuses it with a logged error, answers pings meanwhile (95 % within ${PING_BOUND_MS} ms), and runs the next command`, async () => {
    const dir = await configDir({ kitchen: "" });
    const child = spawn(process.execPath, [path.join(ROOT, "src", "main.ts"), "--config-dir", dir, "--port", "0", "--peer-link-port", "0", "--peer-link-host", "127.0.0.1", "--no-mdns", "--esphome", STAND_IN, "--stdin-commands"], {
      env: { ...process.env, ESPHOME_STANDIN_COMPILE_SECONDS: "0", ESPHOME_STANDIN_FAIL: "" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    children.push(child);
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const port = await new Promise<number>((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (d: Buffer) => {
        out += d.toString();
        const line = out.split("\n").find((l) => l.includes('"listening"'));
        if (line !== undefined) resolve((JSON.parse(line) as { port: number }).port);
      });
      child.on("exit", (code) => { reject(new Error(`exited ${code}: ${stderr}`)); });
    });
    const pid = child.pid!;
    const pings = await pinger(port);
    const before = await usage(pid);
    await writeFile(`/proc/${pid}/clear_refs`, "5"); // the peak starts over from here
    const t0 = performance.now();
    // 600 MiB with no newline: readline held all of it and the builder died at about 514 MiB.
    const block = Buffer.alloc(1024 * 1024, "{");
    const size = 600 * block.length;
    const died = new Promise<never>((_resolve, reject) => {
      child.on("exit", (code, signal) => { reject(new Error(`the builder exited (${code ?? signal}) while reading the line: ${stderr.slice(-400)}`)); });
    });
    child.stdin.on("error", () => undefined); // EPIPE if it died: reported by `died`
    for (let i = 0; i < 600; i++) {
      if (!child.stdin.write(block)) await Promise.race([new Promise((r) => child.stdin.once("drain", r)), died]);
    }
    child.stdin.write('\n{"command": "compile", "configuration": "kitchen.yaml"}\n');
    const api = await ApiClient.connect(port);
    try {
      await Promise.race([waitFor(async () => (await api.call<FirmwareJob[]>("firmware/get_jobs")).length === 1, 60_000, "the command after the long line"), died]);
    } finally {
      api.close();
    }
    const seconds = (performance.now() - t0) / 1000;
    const rtts = await pings.stop();
    const after = await usage(pid);
    const growthMiB = (after.peakKiB - before.rssKiB) / 1024;
    const cpu = after.cpuSeconds - before.cpuSeconds;
    console.log(`a ${size / 1024 / 1024} MiB stdin line: ${seconds.toFixed(1)} s wall, ${cpu.toFixed(2)} s builder CPU, peak RSS ${growthMiB.toFixed(0)} MiB over baseline; ${describeRtts(rtts)}`);
    await waitFor(() => stderr.includes(`line of ${size} bytes is longer than the ${MAX_COMMAND_BYTES}-byte limit`), 5_000, "the refusal in the log");
    expect(stderr).toMatch(/ERROR .*automation command from stdin refused: line of \d+ bytes .*Send one JSON object per line/);
    expect(growthMiB).toBeLessThan(100);
    expectResponsive(rtts, 5);
    expect(cpu).toBeLessThan(10);
    expect(seconds).toBeLessThan(60);
    expect(child.exitCode).toBeNull();
    // Stopped here, before the test's folders are removed.
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await exited;
  }, 120_000);

  it("is on in the add-on when stdin is not a terminal, and can be forced with the flag or its variable", () => {
    const parse = (argv: string[], env: NodeJS.ProcessEnv) => {
      const c = parseConfig(argv, env);
      if (c === "help") throw new Error("help");
      return c;
    };
    expect(parse([], {}).stdinCommands).toBe(false);
    expect(parse(["--stdin-commands"], {}).stdinCommands).toBe(true);
    expect(parse([], { ESPHOME_BUILDER_STDIN_COMMANDS: "1" }).stdinCommands).toBe(true);
    expect(parse([], { ESPHOME_BUILDER_STDIN_COMMANDS: "0" }).stdinCommands).toBe(false);
  });

  it("decodes the JSON Home Assistant writes, including a JSON string holding JSON", () => {
    expect(parseCommandLine('{"command": "install", "configuration": "a.yaml"}')).toEqual({ ok: true, value: { command: "install", configuration: "a.yaml" } });
    expect(parseCommandLine(JSON.stringify(JSON.stringify({ command: "clean", configuration: "a.yaml" })))).toEqual({ ok: true, value: { command: "clean", configuration: "a.yaml" } });
    expect(parseCommandLine('"reboot"')).toEqual({ ok: true, value: "reboot" });
    expect(parseCommandLine("{nope").ok).toBe(false);
    expect(parseCommandLine(`"${"x".repeat(70_000)}"`).ok).toBe(false);
  });
});

describe("readCommandLines", () => {
  async function read(chunks: (string | Buffer)[]): Promise<{ commands: unknown[]; logged: string[] }> {
    const input = new PassThrough();
    const commands: unknown[] = [];
    const logged: string[] = [];
    const restore = setLogSink((line) => logged.push(line));
    try {
      const stop = readCommandLines(input, (value) => commands.push(value));
      for (const chunk of chunks) input.write(chunk);
      input.end();
      await new Promise((r) => setImmediate(r));
      stop();
    } finally {
      restore();
    }
    return { commands, logged };
  }

  it("joins a line across chunks, whole characters included, and reads a last line without a newline", async () => {
    const bytes = Buffer.from('{"command": "clean", "configuration": "caf\u00e9.yaml"}\r\n{"command": "cancel"}');
    const cut = bytes.indexOf(0xc3) + 1; // inside the two-byte é
    const { commands } = await read([bytes.subarray(0, 5), bytes.subarray(5, cut), bytes.subarray(cut)]);
    expect(commands).toEqual([{ command: "clean", configuration: "caf\u00e9.yaml" }, { command: "cancel" }]);
  });

  it("takes a line of exactly MAX_COMMAND_BYTES and refuses one byte more, logging its length, then reads on", async () => {
    const fits = `"${"x".repeat(MAX_COMMAND_BYTES - 2)}"`;
    const { commands, logged } = await read([fits, "\n", `${fits} `, "\n", '{"command": "cancel"}\n']);
    expect(commands).toEqual(["x".repeat(MAX_COMMAND_BYTES - 2), { command: "cancel" }]);
    expect(logged.filter((l) => l.includes("ERROR"))).toEqual([expect.stringContaining(`line of ${MAX_COMMAND_BYTES + 1} bytes is longer than the ${MAX_COMMAND_BYTES}-byte limit`)]);
  });

  it("refuses an over-long line cut off by the end of input", async () => {
    const { commands, logged } = await read(["y".repeat(MAX_COMMAND_BYTES), "y".repeat(10)]);
    expect(commands).toEqual([]);
    expect(logged.join("\n")).toContain(`line of ${MAX_COMMAND_BYTES + 10} bytes`);
  });
});

describe("Home Assistant flags", () => {
  const parse = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
    const c = parseConfig(argv, env);
    if (c === "help") throw new Error("help");
    return c;
  };

  it("take --ha-url and --ha-token, or their variables, together", () => {
    expect(parse(["--ha-url", "http://ha.local:8123/", "--ha-token", "abc.def"])).toMatchObject({ haUrl: "http://ha.local:8123", haToken: "abc.def" });
    expect(parse([], { ESPHOME_BUILDER_HA_URL: "https://ha.example", ESPHOME_BUILDER_HA_TOKEN: "t" })).toMatchObject({ haUrl: "https://ha.example", haToken: "t" });
    expect(() => parse(["--ha-url", "http://ha.local:8123"])).toThrow(/go together/);
    expect(() => parse(["--ha-token", "t"])).toThrow(/go together/);
    expect(() => parse(["--ha-url", "ftp://x", "--ha-token", "t"])).toThrow(/http/);
    expect(() => parse(["--ha-url", "not a url", "--ha-token", "t"])).toThrow(/URL/);
    expect(() => parse(["--ha-url", "http://x", "--ha-token", "has space"])).toThrow(/token/);
  });

  it("take ingress addresses for the add-on's listener guard", () => {
    expect(parse(["--ingress-address", "127.0.0.2, ::1"]).ingressAddresses).toEqual(["127.0.0.2", "::1"]);
    expect(() => parse(["--ingress-address", "supervisor"])).toThrow(/IP/);
    expect(parse([]).ingressAddresses).toEqual(["172.30.32.2"]);
  });

  it("outside the add-on, --port wins and the Supervisor is never asked", () => {
    expect(parse([]).portFromSupervisor).toBe(false);
  });
});
