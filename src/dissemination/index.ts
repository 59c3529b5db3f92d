/**
 * fedmesh's own dissemination: interest-routed topic messages and flooded broadcasts over
 * node-to-node links, as a transport-agnostic state machine (docs/DISSEMINATION.md).
 */
export { createDisseminator, type Disseminator, type DisseminatorInit } from './disseminator.ts'
export {
  createDisseminationParams, defaultDisseminationParams, validateDisseminationParams, type DisseminationParams
} from './params.ts'
export type { SeenIds } from './seen.ts'
export { classifyRecord, groupTargets, isFeasible, matchesAny, requestDue, SELF_SLOT, type OriginEntry, type RecordDecision, type Targets } from './interest.ts'
export * from './types.ts'
