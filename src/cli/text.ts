import { redact } from '../observe/redact.js';

/** Where the CLI writes. */
export interface Output {
  write(text: string): unknown;
}

const MAX_SHOWN = 300;

/**
 * A value for a terminal: JSON (so control characters and escapes are never written raw), token-shaped
 * strings redacted, long values cut.
 */
export function show(value: unknown): string {
  if (value === undefined) return '(missing)';
  const text = JSON.stringify(redact(value)) ?? String(value);
  return text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN)}…` : text;
}

/** `a, b, c` of shown values. */
export function showList(values: readonly unknown[]): string {
  return values.map(show).join(', ');
}

/** A duration in seconds as `1 h 2 min`, `4 min 50 s`, `12 s`. */
export function duration(seconds: number): string {
  const s = Math.abs(Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ''}`;
  if (s < 172_800)
    return `${Math.floor(s / 3600)} h${s % 3600 >= 60 ? ` ${Math.floor((s % 3600) / 60)} min` : ''}`;
  return `${Math.floor(s / 86_400)} days`;
}

/** An epoch-seconds claim as ISO time plus how far from `now` it is. */
export function when(value: unknown, now: number): string {
  if (value === undefined) return 'missing';
  if (typeof value !== 'number' || !Number.isFinite(value)) return `${show(value)} (not a number)`;
  const date = new Date(value * 1000);
  const iso = Number.isNaN(date.getTime()) ? String(value) : date.toISOString().replace('.000Z', 'Z');
  const delta = value - now;
  return `${iso} (${delta === 0 ? 'now' : delta < 0 ? `${duration(delta)} ago` : `in ${duration(delta)}`})`;
}

/** Pad a label column. */
export function pad(text: string, width: number): string {
  return text.length >= width ? `${text} ` : text + ' '.repeat(width - text.length);
}

export const PASS = '✔';
export const FAIL = '✘';
export const WARN = '⚠';
