/**
 * Named loggers writing one line per message to stderr (stdout carries only the
 * machine-readable `listening` line). Debug text is built lazily.
 */

export const LogLevel = { debug: 10, info: 20, warning: 30, error: 40 } as const;
export type LogLevelName = keyof typeof LogLevel;

let threshold: number = LogLevel.info;
let sink: (line: string) => void = (line) => {
  process.stderr.write(line + "\n");
};

export function setLogLevel(level: LogLevelName): void {
  threshold = LogLevel[level];
}

/** Redirect log output (tests capture it). Returns a function restoring the previous sink. */
export function setLogSink(next: (line: string) => void): () => void {
  const previous = sink;
  sink = next;
  return () => {
    sink = previous;
  };
}

export interface Logger {
  debug(message: string | (() => string)): void;
  info(message: string): void;
  warning(message: string): void;
  error(message: string): void;
}

export function getLogger(namespace: string): Logger {
  const write = (level: LogLevelName, message: string | (() => string)): void => {
    if (LogLevel[level] < threshold) return;
    const text = typeof message === "function" ? message() : message;
    sink(`${new Date().toISOString()} ${level.toUpperCase()} [${namespace}] ${text}`);
  };
  return {
    debug: (m) => { write("debug", m); },
    info: (m) => { write("info", m); },
    warning: (m) => { write("warning", m); },
    error: (m) => { write("error", m); },
  };
}
