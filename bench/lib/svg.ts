/**
 * A hand-written SVG chart of latency distributions, in the HdrHistogram style: the percentile
 * on a log scale of 1 / (1 - q) along x (so 50, 90, 99, 99.9 and 99.99 are evenly spaced and the
 * tail is visible), the latency on a log scale along y, and the maximum as the last point.
 */

export interface Series {
  label: string
  color: string
  /** [quantile, ms] pairs, ascending. */
  curve: Array<[number, number]>
}

const WIDTH = 760
const HEIGHT = 440
const LEFT = 70
const RIGHT = 20
const TOP = 50
const BOTTOM = 60

const X_TICKS: Array<[number, string]> = [[0, '0'], [0.5, '50'], [0.9, '90'], [0.99, '99'], [0.999, '99.9'], [0.9999, '99.99'], [1, 'max']]
const X_MAX_POSITION = 4.6

/** Position along x of quantile `q`: log10(1 / (1 - q)), with the max placed after 99.99. */
const xOf = (q: number): number => q >= 1 ? X_MAX_POSITION : Math.log10(1 / (1 - q))

const escape = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

const niceTicks = (min: number, max: number): number[] => {
  const ticks: number[] = []
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e
      if (v >= min && v <= max) ticks.push(v)
    }
  }
  return ticks
}

const formatMs = (ms: number): string => ms >= 1 ? String(Number(ms.toPrecision(3))) : ms.toPrecision(1)

export const latencyChart = (title: string, series: Series[]): string => {
  const values = series.flatMap((s) => s.curve.map(([, ms]) => ms)).filter((ms) => ms > 0 && Number.isFinite(ms))
  const yMin = 10 ** Math.floor(Math.log10(Math.min(...values)))
  const yMax = 10 ** Math.ceil(Math.log10(Math.max(...values)))
  const plotW = WIDTH - LEFT - RIGHT
  const plotH = HEIGHT - TOP - BOTTOM
  const px = (q: number): number => LEFT + plotW * xOf(q) / X_MAX_POSITION
  const py = (ms: number): number => TOP + plotH * (1 - (Math.log10(ms) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin)))
  const out: string[] = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`)
  out.push(`<rect width="${WIDTH}" height="${HEIGHT}" fill="#fff"/>`)
  out.push(`<text x="${WIDTH / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escape(title)}</text>`)
  for (const [q, label] of X_TICKS) {
    const x = px(q).toFixed(1)
    out.push(`<line x1="${x}" y1="${TOP}" x2="${x}" y2="${TOP + plotH}" stroke="#ddd"/>`)
    out.push(`<text x="${x}" y="${TOP + plotH + 18}" text-anchor="middle">${label}</text>`)
  }
  for (const v of niceTicks(yMin, yMax)) {
    const y = py(v).toFixed(1)
    out.push(`<line x1="${LEFT}" y1="${y}" x2="${LEFT + plotW}" y2="${y}" stroke="#ddd"/>`)
    out.push(`<text x="${LEFT - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${formatMs(v)}</text>`)
  }
  out.push(`<rect x="${LEFT}" y="${TOP}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`)
  out.push(`<text x="${LEFT + plotW / 2}" y="${HEIGHT - 18}" text-anchor="middle">percentile</text>`)
  out.push(`<text transform="translate(18 ${TOP + plotH / 2}) rotate(-90)" text-anchor="middle">milliseconds (log scale)</text>`)
  // The legend goes bottom right: latency rises with the percentile, so that corner stays empty.
  const legendW = 10 + 7 * Math.max(...series.map((s) => s.label.length))
  const legendX = LEFT + plotW - legendW - 8
  const legendY = TOP + plotH - 8 - 18 * series.length
  out.push(`<rect x="${legendX}" y="${legendY}" width="${legendW}" height="${18 * series.length + 4}" fill="#fff" fill-opacity="0.85" stroke="#ccc"/>`)
  series.forEach((s) => {
    const points = s.curve.filter(([, ms]) => ms > 0 && Number.isFinite(ms)).map(([q, ms]) => `${px(q).toFixed(1)},${py(ms).toFixed(1)}`)
    out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${points.join(' ')}"/>`)
  })
  series.forEach((s, i) => {
    const ly = legendY + 12 + i * 18
    out.push(`<line x1="${legendX + 8}" y1="${ly}" x2="${legendX + 30}" y2="${ly}" stroke="${s.color}" stroke-width="3"/>`)
    out.push(`<text x="${legendX + 36}" y="${ly}" dominant-baseline="middle">${escape(s.label)}</text>`)
  })
  out.push('</svg>')
  return `${out.join('\n')}\n`
}
