/**
 * The market protocol's messages: an RFP, proposals (offers and counter-offers) and a
 * contract signed by both parties.
 *
 * Contract signatures: the contract terms are hashed like every other fedmesh object —
 * sha2-256 multihash of their DAG-CBOR encoding — and each party signs
 * `"fedmesh/market-contract/v2" || multihash` with its agent key. A contract carries the
 * terms and one signature per party; it is binding when it carries valid signatures of
 * both the buyer and the seller named in the terms, and no others. Money amounts are
 * integers in minor units (cents), so the terms hash the same everywhere.
 */
import * as dagCbor from '@ipld/dag-cbor'
import { messageIdFromBytes } from '../core/envelope.ts'
import type { AgentId } from '../core/ids.ts'
import { isAgentId, verifyByDid, type AgentKey } from '../core/keys.ts'
import type { JsonSchema } from './compat.ts'
import { ContractError } from './errors.ts'

export const CONTRACT_DOMAIN = new TextEncoder().encode('fedmesh/market-contract/v2')

const DID = { type: 'string', pattern: '^did:key:z[1-9A-HJ-NP-Za-km-z]+$', minLength: 49, maxLength: 69 }
const CURRENCY = { type: 'string', pattern: '^[A-Z]{3}$', description: 'ISO 4217 code' }
const MONEY = { type: 'integer', minimum: 0, maximum: 1e15, description: 'amount in minor units (cents)' }
const TIME = { type: 'integer', minimum: 0, maximum: 9007199254740991, description: 'ms since the Unix epoch' }
const ITEM = { type: 'string', minLength: 1, maxLength: 200 }
const QUANTITY = { type: 'integer', minimum: 1, maximum: 1_000_000 }
const NOTES = { type: 'string', maxLength: 2000 }
const REF = { type: 'string', minLength: 1, maxLength: 256 }

/** `market/rfp@1.0.0`: what the buyer wants. */
export const RFP_SCHEMA: JsonSchema = Object.freeze({
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  title: 'Request for proposals',
  type: 'object',
  properties: {
    item: ITEM,
    quantity: QUANTITY,
    currency: CURRENCY,
    maxUnitPrice: { ...MONEY, description: 'the most the buyer will pay per unit, in minor units' },
    deliverBy: TIME,
    respondBy: TIME,
    notes: NOTES
  },
  required: ['item', 'quantity', 'currency'],
  additionalProperties: false
})

/** `market/proposal@1.0.0`: an offer (seller) or counter-offer (either side). */
export const PROPOSAL_SCHEMA: JsonSchema = Object.freeze({
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  title: 'Proposal or counter-proposal',
  type: 'object',
  properties: {
    rfp: { ...REF, description: 'id of the RFP message this answers' },
    item: ITEM,
    quantity: QUANTITY,
    currency: CURRENCY,
    unitPrice: { ...MONEY, description: 'price per unit, in minor units' },
    deliverBy: TIME,
    validUntil: TIME,
    round: { type: 'integer', minimum: 1, maximum: 100, description: 'negotiation round: 1 for the first offer, +1 per counter-proposal' },
    notes: NOTES
  },
  required: ['rfp', 'item', 'quantity', 'currency', 'unitPrice', 'round'],
  additionalProperties: false
})

const TERMS_SCHEMA = {
  type: 'object',
  properties: {
    id: { ...REF, description: 'contract id, unique per conversation' },
    rfp: REF,
    buyer: DID,
    seller: DID,
    item: ITEM,
    quantity: QUANTITY,
    currency: CURRENCY,
    unitPrice: MONEY,
    total: { ...MONEY, description: 'quantity × unitPrice' },
    deliverBy: TIME,
    created: TIME,
    notes: NOTES
  },
  required: ['id', 'rfp', 'buyer', 'seller', 'item', 'quantity', 'currency', 'unitPrice', 'total', 'created'],
  additionalProperties: false
}

/** `market/contract@2.0.1`: the terms and the parties' signatures (one while signing, two when binding). */
export const CONTRACT_SCHEMA: JsonSchema = Object.freeze({
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  title: 'Market contract signed by buyer and seller',
  type: 'object',
  properties: {
    terms: TERMS_SCHEMA,
    signatures: {
      type: 'array',
      minItems: 1,
      maxItems: 2,
      items: {
        type: 'object',
        properties: {
          role: { enum: ['buyer', 'seller'] },
          signer: DID,
          sig: { type: 'string', pattern: '^[A-Za-z0-9_-]+$', minLength: 86, maxLength: 86, description: 'Ed25519 signature, base64url without padding' }
        },
        required: ['role', 'signer', 'sig'],
        additionalProperties: false
      }
    }
  },
  required: ['terms', 'signatures'],
  additionalProperties: false
})

export interface ContractTerms {
  id: string
  rfp: string
  buyer: AgentId
  seller: AgentId
  item: string
  quantity: number
  currency: string
  unitPrice: number
  total: number
  deliverBy?: number
  created: number
  notes?: string
}

export interface ContractSignature { role: 'buyer' | 'seller', signer: AgentId, sig: string }
export interface Contract { terms: ContractTerms, signatures: ContractSignature[] }

export interface Rfp { item: string, quantity: number, currency: string, maxUnitPrice?: number, deliverBy?: number, respondBy?: number, notes?: string }
export interface Proposal { rfp: string, item: string, quantity: number, currency: string, unitPrice: number, deliverBy?: number, validUntil?: number, round: number, notes?: string }

function clean<T extends object> (o: T): T {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v
  return out as T
}

/** The multihash the parties sign, and its base32 form (the contract's content address). */
export function contractHash (terms: ContractTerms): { id: string, multihash: Uint8Array } {
  try {
    return messageIdFromBytes(dagCbor.encode(clean(terms)))
  } catch (err) {
    throw new ContractError('contract terms do not encode (integers only, no undefined)', { cause: err })
  }
}

function signingInput (multihash: Uint8Array): Uint8Array {
  const out = new Uint8Array(CONTRACT_DOMAIN.length + multihash.length)
  out.set(CONTRACT_DOMAIN, 0)
  out.set(multihash, CONTRACT_DOMAIN.length)
  return out
}

/** The role `key` holds in the terms; throws when it is neither buyer nor seller. */
function roleOf (terms: ContractTerms, who: AgentId): 'buyer' | 'seller' {
  if (who === terms.buyer) return 'buyer'
  if (who === terms.seller) return 'seller'
  throw new ContractError(`${who} is neither the buyer nor the seller of contract ${terms.id}`)
}

/** Builds the terms of a contract from an accepted proposal. */
export function contractFromProposal (p: Proposal, parties: { id: string, buyer: AgentId, seller: AgentId, created: number }): ContractTerms {
  return clean({
    id: parties.id,
    rfp: p.rfp,
    buyer: parties.buyer,
    seller: parties.seller,
    item: p.item,
    quantity: p.quantity,
    currency: p.currency,
    unitPrice: p.unitPrice,
    total: p.quantity * p.unitPrice,
    deliverBy: p.deliverBy,
    created: parties.created
  })
}

/**
 * Adds `key`'s signature to a contract (or starts one from bare terms). The signer must be
 * the buyer or the seller named in the terms; signing twice is refused.
 */
export function signContract (contract: Contract | ContractTerms, key: AgentKey): Contract {
  const c: Contract = 'terms' in contract ? contract : { terms: contract, signatures: [] }
  const role = roleOf(c.terms, key.id)
  if (c.signatures.some((s) => s.signer === key.id)) throw new ContractError(`${role} already signed contract ${c.terms.id}`)
  const problem = verifySignatures(c)
  if (problem != null) throw new ContractError(`cannot countersign: ${problem}`)
  const { multihash } = contractHash(c.terms)
  const sig = Buffer.from(key.sign(signingInput(multihash))).toString('base64url')
  return { terms: clean(c.terms), signatures: [...c.signatures, { role, signer: key.id, sig }] }
}

function verifySignatures (c: Contract): string | undefined {
  if (c.terms.total !== c.terms.quantity * c.terms.unitPrice) return `total ${c.terms.total} is not quantity × unitPrice (${c.terms.quantity * c.terms.unitPrice})`
  if (!isAgentId(c.terms.buyer) || !isAgentId(c.terms.seller)) return 'buyer and seller must be did:key agent ids'
  if (c.terms.buyer === c.terms.seller) return 'buyer and seller must differ'
  const { multihash } = contractHash(c.terms)
  const input = signingInput(multihash)
  const seen = new Set<string>()
  for (const s of c.signatures) {
    if (seen.has(s.signer)) return `${s.signer} signed twice`
    seen.add(s.signer)
    const expected = s.signer === c.terms.buyer ? 'buyer' : s.signer === c.terms.seller ? 'seller' : undefined
    if (expected == null) return `${s.signer} is not a party to the contract`
    if (s.role !== expected) return `${s.signer} signed as ${s.role} but is the ${expected}`
    const sig = new Uint8Array(Buffer.from(s.sig, 'base64url'))
    if (!verifyByDid(s.signer, input, sig)) return `the ${s.role}'s signature does not verify`
  }
  return undefined
}

export type ContractCheck = { ok: true, id: string, signedBy: Array<'buyer' | 'seller'> } | { ok: false, reason: string }

/**
 * Verifies a contract: every signature valid and by a party in its role, total consistent;
 * with `requireBoth` (the default) both buyer and seller must have signed.
 */
export function verifyContract (contract: Contract, { requireBoth = true }: { requireBoth?: boolean } = {}): ContractCheck {
  try {
    const problem = verifySignatures(contract)
    if (problem != null) return { ok: false, reason: problem }
    const signedBy = contract.signatures.map((s) => s.role)
    if (requireBoth && !(signedBy.includes('buyer') && signedBy.includes('seller'))) return { ok: false, reason: `signed by ${signedBy.join(', ') || 'nobody'}; both buyer and seller must sign` }
    return { ok: true, id: contractHash(contract.terms).id, signedBy }
  } catch (err) {
    return { ok: false, reason: (err as Error).message }
  }
}
