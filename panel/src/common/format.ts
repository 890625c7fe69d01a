/** Durations, times and sizes for display. */
import type { LocalizeFunc } from "./localize.ts";

export function formatDuration(ms: number, localize: LocalizeFunc): string {
  const total = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h > 0) return localize("duration.hours", { h, m });
  if (m > 0) return localize("duration.minutes", { m, s });
  return localize("duration.seconds", { s });
}

/** A job's time: the time of day when it is today, else date and time. */
export function formatTime(iso: string, locale: string, now: Date = new Date()): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const sameDay =
    date.getFullYear() === now.getFullYear() && date.getMonth() === now.getMonth() && date.getDate() === now.getDate();
  const opts: Intl.DateTimeFormatOptions = sameDay ? { timeStyle: "short" } : { dateStyle: "medium", timeStyle: "short" };
  try {
    return new Intl.DateTimeFormat(locale, opts).format(date);
  } catch {
    return date.toLocaleString();
  }
}

/** Kibibytes, one decimal below 10. */
export function formatKilobytes(bytes: number): string {
  const kb = bytes / 1024;
  return kb < 10 ? kb.toFixed(1) : String(Math.round(kb));
}
