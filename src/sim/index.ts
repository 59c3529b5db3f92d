/**
 * The network simulator: fedmesh's dissemination core on every node of a simulated overlay,
 * reproducible from a seed (docs/DISSEMINATION.md, "Simulation").
 */
export { runSimulation, type SimHooks, type SimResult } from './simulator.ts'
export {
  createSimConfig, defaultSimConfig, endOfRun, lastPublishAt, subscriberCount, validateSimConfig,
  type ChurnSpec, type PartitionSpec, type SimConfig
} from './config.ts'
export { randomOverlay, hopDistances, type Overlay } from './overlay.ts'
export { createPrng, shuffle, type Prng } from './prng.ts'
export { EventQueue, type Timed } from './heap.ts'
export { cdfPoints, percentile, summarizeSorted, type LatencySummary } from './stats.ts'
export { niceStep, renderCdfSvg, type CdfSeries, type CdfPlotOptions } from './svg.ts'
