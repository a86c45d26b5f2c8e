/**
 * Summaries of latency samples. Exact quantiles where a process holds every sample; a log-bucket
 * histogram (1 % relative error) where samples are spread over processes and too many to ship
 * (the signaling load generator), mergeable by adding counts.
 */

export interface Summary {
  count: number
  p50: number
  p99: number
  max: number
  mean: number
}

/** Nearest-rank quantile of ascending `sorted`; NaN when empty. */
export const quantile = (sorted: ArrayLike<number>, q: number): number => {
  if (sorted.length === 0) return Number.NaN
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[rank] as number
}

export const sortedCopy = (samples: ArrayLike<number>): Float64Array => Float64Array.from(samples).sort()

export const summarize = (samples: ArrayLike<number>): Summary => {
  const sorted = sortedCopy(samples)
  let sum = 0
  for (const x of sorted) sum += x
  return {
    count: sorted.length,
    p50: quantile(sorted, 0.5),
    p99: quantile(sorted, 0.99),
    max: sorted.length === 0 ? Number.NaN : sorted[sorted.length - 1] as number,
    mean: sorted.length === 0 ? Number.NaN : sum / sorted.length
  }
}

/** The quantiles the chart draws: every percent, every tenth of a percent above 99, then 99.95, 99.99 and the max. */
export const CURVE_QUANTILES: readonly number[] = [
  ...Array.from({ length: 100 }, (_, i) => i / 100),
  ...Array.from({ length: 9 }, (_, i) => 0.991 + i / 1000),
  0.9995,
  0.9999,
  1
]

/** The distribution as [quantile, value] pairs at CURVE_QUANTILES. */
export const quantileCurve = (samples: ArrayLike<number>): Array<[number, number]> => {
  const sorted = sortedCopy(samples)
  return CURVE_QUANTILES.map((q) => [q, quantile(sorted, q)])
}

/** Log-bucket histogram of positive values in milliseconds: bucket i holds [MIN * GROWTH^i, MIN * GROWTH^(i+1)). */
export interface Histogram {
  counts: number[]
  total: number
  max: number
  sum: number
}

const MIN = 0.001
const GROWTH = 1.01
const BUCKETS = Math.ceil(Math.log(600_000 / MIN) / Math.log(GROWTH))

export const createHistogram = (): Histogram => ({ counts: new Array<number>(BUCKETS).fill(0), total: 0, max: 0, sum: 0 })

export const record = (h: Histogram, ms: number): void => {
  const i = ms <= MIN ? 0 : Math.min(BUCKETS - 1, Math.floor(Math.log(ms / MIN) / Math.log(GROWTH)))
  h.counts[i] = (h.counts[i] as number) + 1
  h.total++
  h.sum += ms
  if (ms > h.max) h.max = ms
}

export const merge = (hs: Histogram[]): Histogram => {
  const out = createHistogram()
  for (const h of hs) {
    h.counts.forEach((c, i) => { out.counts[i] = (out.counts[i] as number) + c })
    out.total += h.total
    out.sum += h.sum
    out.max = Math.max(out.max, h.max)
  }
  return out
}

/** The quantile as the upper bound of its bucket (never under-reports), capped at the true max. */
export const histogramQuantile = (h: Histogram, q: number): number => {
  if (h.total === 0) return Number.NaN
  const rank = Math.max(1, Math.ceil(q * h.total))
  let seen = 0
  for (let i = 0; i < h.counts.length; i++) {
    seen += h.counts[i] as number
    if (seen >= rank) return Math.min(h.max, MIN * GROWTH ** (i + 1))
  }
  return h.max
}

export const summarizeHistogram = (h: Histogram): Summary => ({
  count: h.total,
  p50: histogramQuantile(h, 0.5),
  p99: histogramQuantile(h, 0.99),
  max: h.total === 0 ? Number.NaN : h.max,
  mean: h.total === 0 ? Number.NaN : h.sum / h.total
})
