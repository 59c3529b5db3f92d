/**
 * A latency CDF as a hand-written SVG document: step lines, one per series, over a grid with
 * labelled axes, optional vertical markers (targets) and a legend below. Pure: returns a string.
 */

export interface CdfSeries {
  label: string
  /** [x, fraction ≤ x], ascending in x. */
  points: ReadonlyArray<readonly [number, number]>
  color?: string
}

export interface CdfPlotOptions {
  title?: string
  xLabel?: string
  width?: number
  height?: number
  /** Right end of the x axis; default: the largest x rounded up to a tick. */
  xMax?: number
  /** Dashed vertical lines, e.g. a latency target. */
  markers?: Array<{ x: number, label: string }>
  /** Dashed horizontal lines, e.g. 0.95 for p95. */
  levels?: number[]
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#17becf']
// Series that coincide stay distinguishable: each also has its own dash pattern.
const DASHES = ['', '9 5', '2 4', '12 4 2 4']
const dash = (i: number): string => DASHES[i % DASHES.length] === '' ? '' : ` stroke-dasharray="${DASHES[i % DASHES.length]}"`

function esc (s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

/** A "nice" tick step (1, 2 or 5 × 10^k) giving about `target` ticks over `span`. */
export function niceStep (span: number, target: number = 8): number {
  if (!(span > 0)) return 1
  const raw = span / target
  const pow = 10 ** Math.floor(Math.log10(raw))
  const m = raw / pow
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * pow
}

const fmt = (x: number): string => Number.isInteger(x) ? String(x) : x.toFixed(2).replace(/0+$/, '').replace(/\.$/, '')

export function renderCdfSvg (series: readonly CdfSeries[], opts: CdfPlotOptions = {}): string {
  const W = opts.width ?? 760
  // The legend goes under the plot, one line per series, so it never hides a curve.
  const legendH = series.length * 18 + 8
  const H = (opts.height ?? 460) + legendH
  const ml = 64; const mr = 24; const mt = opts.title !== undefined ? 48 : 20; const mb = 56 + legendH
  const pw = W - ml - mr
  const ph = H - mt - mb
  let dataMax = 0
  for (const s of series) for (const [x] of s.points) if (x > dataMax) dataMax = x
  for (const m of opts.markers ?? []) if (m.x > dataMax) dataMax = m.x
  const step = niceStep(opts.xMax ?? (dataMax > 0 ? dataMax : 1))
  const xMax = opts.xMax ?? Math.max(step, Math.ceil(dataMax / step) * step)
  const X = (x: number): number => ml + (Math.min(Math.max(x, 0), xMax) / xMax) * pw
  const Y = (y: number): number => mt + (1 - y) * ph
  const f1 = (v: number): string => v.toFixed(1)
  const out: string[] = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`)
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`)
  if (opts.title !== undefined) out.push(`<text x="${W / 2}" y="26" text-anchor="middle" font-size="15" font-weight="bold">${esc(opts.title)}</text>`)
  // Grid and ticks.
  for (let x = 0; x <= xMax + 1e-9; x += step) {
    out.push(`<line x1="${f1(X(x))}" y1="${mt}" x2="${f1(X(x))}" y2="${mt + ph}" stroke="#e5e5e5"/>`)
    out.push(`<text x="${f1(X(x))}" y="${mt + ph + 18}" text-anchor="middle">${fmt(x)}</text>`)
  }
  for (let k = 0; k <= 10; k++) {
    const y = k / 10
    out.push(`<line x1="${ml}" y1="${f1(Y(y))}" x2="${ml + pw}" y2="${f1(Y(y))}" stroke="#e5e5e5"/>`)
    if (k % 2 === 0) out.push(`<text x="${ml - 8}" y="${f1(Y(y) + 4)}" text-anchor="end">${fmt(y)}</text>`)
  }
  out.push(`<rect x="${ml}" y="${mt}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`)
  out.push(`<text x="${ml + pw / 2}" y="${mt + ph + 42}" text-anchor="middle">${esc(opts.xLabel ?? 'latency from publication to delivery (ms)')}</text>`)
  out.push(`<text x="16" y="${mt + ph / 2}" text-anchor="middle" transform="rotate(-90 16 ${mt + ph / 2})">fraction of deliveries</text>`)
  for (const level of opts.levels ?? []) {
    out.push(`<line x1="${ml}" y1="${f1(Y(level))}" x2="${ml + pw}" y2="${f1(Y(level))}" stroke="#999" stroke-dasharray="4 4"/>`)
    out.push(`<text x="${ml + pw - 4}" y="${f1(Y(level) + 14)}" text-anchor="end" fill="#666">${fmt(level)}</text>`)
  }
  // Marker labels sit low, right of their line: a CDF has risen by then, so it is free.
  for (const m of opts.markers ?? []) {
    out.push(`<line x1="${f1(X(m.x))}" y1="${mt}" x2="${f1(X(m.x))}" y2="${mt + ph}" stroke="#555" stroke-dasharray="6 4"/>`)
    out.push(`<text x="${f1(X(m.x) + 4)}" y="${mt + ph - 8}" fill="#555">${esc(m.label)}</text>`)
  }
  // Step lines: flat until the next sample, then up to its fraction.
  series.forEach((s, i) => {
    if (s.points.length === 0) return
    const color = s.color ?? PALETTE[i % PALETTE.length]
    const pts: string[] = [`${f1(X(s.points[0][0]))},${f1(Y(0))}`]
    let prevY = 0
    for (const [x, y] of s.points) {
      pts.push(`${f1(X(x))},${f1(Y(prevY))}`, `${f1(X(x))},${f1(Y(y))}`)
      prevY = y
    }
    pts.push(`${f1(X(xMax))},${f1(Y(prevY))}`)
    out.push(`<polyline fill="none" stroke="${color}" stroke-width="2"${dash(i)} points="${pts.join(' ')}"/>`)
  })
  const lx = ml
  const ly = mt + ph + 56
  series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length]
    const y = ly + 10 + i * 18
    out.push(`<line x1="${f1(lx + 8)}" y1="${y}" x2="${f1(lx + 30)}" y2="${y}" stroke="${color}" stroke-width="2"${dash(i)}/>`)
    out.push(`<text x="${f1(lx + 36)}" y="${y + 4}">${esc(s.label)}</text>`)
  })
  out.push('</svg>')
  return out.join('\n') + '\n'
}
