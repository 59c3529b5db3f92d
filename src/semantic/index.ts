/**
 * The semantic layer: schema registry, validation, performatives, protocol state machines,
 * negotiation and audit. See docs/SEMANTIC.md.
 *
 * @example
 * ```ts
 * import { createSchemaRegistry, createValidation, signSchemaDocument } from './semantic/index.ts'
 * const registry = createSchemaRegistry({ network })          // network: a RegistryNetwork
 * await registry.publish(signSchemaDocument({ uri: 'acme/order@1.0.0', schema }, agentKey))
 * const validation = createValidation(registry)
 * await validation.checkOutgoing(fields)                       // throws SchemaValidationError
 * ```
 */
export * from './errors.ts'
export {
  createPayloadLimits, defaultPayloadLimits, scanJson, createSchemaLimits, defaultSchemaLimits, checkSchemaShape,
  linearRegExp, linearRegExpAvailable, FORBIDDEN_KEYS, JSON_SCHEMA_DIALECT, MAX_PATTERN_LENGTH,
  type PayloadLimits, type SchemaLimits, type ScanResult
} from './bounds.ts'
export { parseSemver, formatSemver, compareSemver, isPrerelease, parseUri, makeUri, sameMajor, type SemVer, type ParsedUri } from './semver.ts'
export { checkCompatible, defaultCompatOptions, COMPAT_KEYWORDS, ANNOTATION_KEYWORDS, type JsonSchema, type CompatResult, type CompatOptions } from './compat.ts'
export {
  signSchemaDocument, signProtocolDocument, decodeDocument, verifyDocument, encodeDocument, documentHash, documentToJson, documentFromJson,
  SCHEMA_DOMAIN, PROTOCOL_DOMAIN, PROTOCOL_NAMESPACE,
  type SchemaDocument, type ProtocolDocument, type RegistryDocument, type VerifiedDocument, type DocumentHash, type DocumentJson, type DocumentResult
} from './schemas.ts'
export {
  createSchemaRegistry, registryKeys, parseRegistryKey, validateRegistryRecord, selectRegistryRecord, defaultRegistryInit, INGEST_REASONS,
  type SchemaRegistry, type SchemaRegistryInit, type RegistryNetwork, type PublishResult, type IngestResult, type IngestReason,
  type CompiledValidator, type Translator, type RegistryCounters, type IngestOrigin
} from './registry.ts'
export { createMemoryRegistryHub, type MemoryRegistryHub, type MemoryRegistryNode, type MemoryRegistryHubInit } from './memory-network.ts'
export { createValidation, INCOMING_REASONS, type Validation, type ValidationInit, type IncomingResult, type IncomingReason, type PayloadCarrier } from './validate.ts'
export {
  PERFORMATIVES, PERFORMATIVE_INFO, isPerformative, describePerformative, repliesTo, isReplyTo, replyFields, notUnderstood, NOT_UNDERSTOOD_SCHEMA,
  type Performative, type PerformativeInfo, type PerformativeCategory, type ExpectedStep, type NotUnderstoodPayload
} from './performatives.ts'
export {
  parseProtocol, validateProtocol, protocolUri, initiatorRole, counterpartRole, protocolSchemas, checkProtocolCompatible,
  REQUEST_PROTOCOL, QUERY_PROTOCOL, CONTRACT_NET_PROTOCOL, SUBSCRIBE_PROTOCOL, MARKET_PROTOCOL, BUILTIN_PROTOCOLS,
  MARKET_RFP, MARKET_PROPOSAL, MARKET_CONTRACT, PROTOCOL_LIMITS,
  type ProtocolDefinition, type Transition, type Timeout
} from './protocols.ts'
export {
  startConversation, step, advanceTimeouts, expectedTransitions, nextDeadline, createConversationTracker, createManualClock, systemClock, protocolViolation,
  type ConversationState, type ConversationMessage, type ConversationStatus, type StepResult, type RefusalReason, type TimeoutFired,
  type Clock, type ManualClock, type ConversationKey, type ConversationTracker, type ConversationTrackerInit, type TrackResult, type TimeoutEvent
} from './conversation.ts'
export {
  RFP_SCHEMA, PROPOSAL_SCHEMA, CONTRACT_SCHEMA, CONTRACT_DOMAIN, contractHash, contractFromProposal, signContract, verifyContract,
  type Contract, type ContractTerms, type ContractSignature, type ContractCheck, type Rfp, type Proposal
} from './market.ts'
export { builtinDocuments, builtinKey, BUILTIN_PUBLISHER, BUILTIN_SCHEMAS, BUILTIN_TS, NOT_UNDERSTOOD_SCHEMA_JSON } from './builtins.ts'
export { parseSchemaFile, parseProtocolFile } from './files.ts'
export { negotiate, negotiateVersion, negotiateAll, capabilitiesToCaps, capabilitiesFromCaps, type Capabilities } from './negotiate.ts'
export {
  auditConversation, exportConversation, importConversation, marketContractCheck, defaultPayloadChecks, MAX_AUDIT_STEPS,
  type AuditReport, type AuditStep, type AuditStage, type AuditOptions, type PayloadCheck, type ConversationExport
} from './audit.ts'
