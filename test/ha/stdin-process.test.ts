/**
 * Automation commands on a real process's stdin (what `hassio.addon_stdin`
 * writes into the add-on container), and the flags that turn it on.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config.ts";
import type { FirmwareJob } from "../../src/firmware/job.ts";
import { parseCommandLine } from "../../src/ha/automation.ts";
import { ApiClient } from "../helpers/api-client.ts";
import { ROOT, STAND_IN, configDir } from "../helpers/builder.ts";
import { waitFor } from "../helpers/tmp.ts";

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
