/** Middle value of a list (mean of the two middle values for an even count); `NaN` when empty. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Smallest and largest value of a list; `[NaN, NaN]` when empty. */
export function spread(values: readonly number[]): [number, number] {
  if (values.length === 0) return [Number.NaN, Number.NaN];
  return [Math.min(...values), Math.max(...values)];
}

/** A number with `digits` decimals and thousands separators, or `–` when not finite. */
export function fmt(value: number, digits = 0): string {
  if (!Number.isFinite(value)) return '–';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** `median (min–max)` of a list, each with `digits` decimals. */
export function fmtSpread(values: readonly number[], digits = 0): string {
  if (values.length === 0) return '–';
  const [min, max] = spread(values);
  if (values.length === 1) return fmt(values[0]!, digits);
  return `${fmt(median(values), digits)} (${fmt(min, digits)}–${fmt(max, digits)})`;
}

/** The `q` quantile (0–1) of ascending-sorted `sorted`, nearest rank. */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}
