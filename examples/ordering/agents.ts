/**
 * Two agents run the acme/ordering protocol (ordering.protocol.json) through two nodes.
 * Usage: node examples/ordering/agents.ts DIR_A DIR_B   (the data dirs of two running nodes)
 * Outside this repository, import from 'fedmesh' instead of '../../src/index.ts'.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect, generateAgentKey, type Message } from '../../src/index.ts'

const [dirA, dirB] = process.argv.slice(2)
if (dirA == null || dirB == null) throw new Error('usage: agents.ts DIR_A DIR_B')
const api = (dir: string): { url: string, token: string } => ({
  url: JSON.parse(readFileSync(join(dir, 'node.json'), 'utf8')).api,     // written by the running node
  token: readFileSync(join(dir, 'api.token'), 'utf8').trim()
})
// What each agent advertises in its record; conversations negotiate versions from these.
const capabilities = ['proto:proto/acme/ordering@1.0.0', 'schema:acme/order@1.0.0']

const shop = await connect({ ...api(dirB), key: generateAgentKey(), name: 'shop', capabilities })
const customer = await connect({ ...api(dirA), key: generateAgentKey(), name: 'customer', capabilities })

// The shop: agrees to orders of up to 10, then sends the receipt; refuses bigger ones.
const orders = shop.messages()
void (async () => {
  for await (const m of orders) {
    if (m.type !== 'request') continue
    const order = m.data<{ item: string, qty: number }>()
    if (order.qty > 10) { await shop.reply(m, { reason: 'at most 10' }, { type: 'refuse' }); continue }
    await shop.reply(m, { eta: 'tomorrow' }, { type: 'agree' })
    await shop.reply(m, { receipt: `${order.qty} × ${order.item}`, total: order.qty * 250 }, { type: 'inform' })
  }
})()

// The customer: negotiates the protocol version, then orders.
const { conversation, protocol } = await customer.openConversation({ protocol: 'proto/acme/ordering', with: [shop.id] })
console.log(`conversation ${conversation} on ${protocol}`)
const step = { protocol, conversation, schema: 'acme/order@1.0.0' }

// An invalid payload never leaves: the SDK validates before signing.
try {
  await customer.send(shop.id, { item: 'tea', qty: 0 }, { ...step, type: 'request' })
} catch (err: any) {
  console.log(`refused before sending: ${err.code} ${JSON.stringify(err.details.errors)}`)
}
// Nor does an illegal step: the protocol starts with a request.
try {
  await customer.send(shop.id, { item: 'tea', qty: 1 }, { ...step, type: 'inform' })
} catch (err: any) {
  console.log(`refused before sending: ${err.code} expected ${err.details.expected.map((e: any) => e.performative).join(', ')}`)
}

const replies = customer.messages()
const it = replies[Symbol.asyncIterator]()
await customer.send(shop.id, { item: 'tea', qty: 3 }, { ...step, type: 'request' })
for (let i = 0; i < 2; i++) {
  const m = (await it.next()).value as Message
  console.log(`shop → customer: ${m.type} ${JSON.stringify(m.data())}`)
}
const state = customer.conversation(conversation, shop.id)
console.log(`conversation state: ${state?.state.state} (${state?.state.status})`)

const file = join(dirA, `ordering-${conversation}.cbor`)
writeFileSync(file, customer.exportConversation(conversation, shop.id))
console.log(`exported to ${file}; check it with: fedmesh audit ${file} --dir ${dirA}`)

replies.unsubscribe()
orders.unsubscribe()
await customer.close()
await shop.close()
