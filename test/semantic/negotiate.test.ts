import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { negotiate, negotiateVersion, negotiateAll, capabilitiesToCaps, capabilitiesFromCaps, compareSemver, parseSemver, type Capabilities } from '../../src/semantic/index.ts'

describe('negotiation', () => {
  test('highest common major, then the lower of the two highest versions in it', () => {
    assert.equal(negotiateVersion(['market/rfp@1.4.0', 'market/rfp@2.1.0'], ['market/rfp@1.2.0', 'market/rfp@2.0.3'], 'market/rfp'), 'market/rfp@2.0.3')
    assert.equal(negotiateVersion(['market/rfp@1.4.0', 'market/rfp@2.1.0'], ['market/rfp@1.2.0'], 'market/rfp'), 'market/rfp@1.2.0')
    assert.equal(negotiateVersion(['market/rfp@1.0.0', 'market/rfp@1.3.0'], ['market/rfp@1.5.0'], 'market/rfp'), 'market/rfp@1.3.0')
    assert.equal(negotiateVersion(['a/b@1.0.0', 'x/y@9.0.0'], ['a/b@1.0.0'], 'a/b'), 'a/b@1.0.0')
  })

  test('pre-releases only when both name the same one and nothing else is shared', () => {
    assert.equal(negotiateVersion(['a/b@2.0.0-rc.1', 'a/b@1.0.0'], ['a/b@2.0.0-rc.1', 'a/b@1.1.0'], 'a/b'), 'a/b@1.0.0')
    assert.equal(negotiateVersion(['a/b@2.0.0-rc.1'], ['a/b@2.0.0-rc.1'], 'a/b'), 'a/b@2.0.0-rc.1')
  })

  test('no common version: a clear error listing both sides', () => {
    assert.throws(() => negotiateVersion(['market/rfp@1.0.0'], ['market/rfp@2.0.0', 'market/rfp@3.1.0'], 'market/rfp'), (err: any) => {
      assert.equal(err.code, 'NoCommonVersionError')
      assert.deepEqual(err.details, { name: 'market/rfp', mine: ['market/rfp@1.0.0'], theirs: ['market/rfp@2.0.0', 'market/rfp@3.1.0'] })
      assert.match(err.message, /we speak market\/rfp@1\.0\.0, they speak market\/rfp@2\.0\.0, market\/rfp@3\.1\.0/)
      return true
    })
    assert.throws(() => negotiateVersion([], ['a/b@1.0.0'], 'a/b'), /we speak none/)
  })

  test('capabilities: schemas and protocols, advertised as record caps', () => {
    const buyer: Capabilities = { schemas: ['market/rfp@1.0.0', 'market/proposal@1.0.0', 'market/contract@2.0.1'], protocols: ['proto/market@1.0.0', 'proto/request@1.0.0'] }
    const seller: Capabilities = { schemas: ['market/rfp@1.2.0', 'market/proposal@1.0.0', 'market/contract@2.0.1', 'market/contract@1.0.0'], protocols: ['proto/market@1.1.0'] }
    assert.equal(negotiate(buyer, seller, 'proto/market'), 'proto/market@1.0.0')
    assert.deepEqual(negotiateAll(buyer, seller, ['market/rfp', 'market/contract']), { 'market/rfp': 'market/rfp@1.0.0', 'market/contract': 'market/contract@2.0.1' })
    assert.throws(() => negotiate(buyer, seller, 'proto/request'), /NoCommonVersionError|no common version/)
    const caps = capabilitiesToCaps(buyer)
    assert.ok(caps.includes('schema:market/rfp@1.0.0') && caps.includes('proto:proto/market@1.0.0'))
    assert.deepEqual(capabilitiesFromCaps([...caps, 'relay', 'schema:garbage']), buyer)
  })

  test('semver precedence', () => {
    const order = ['1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0', '1.0.1', '1.1.0', '2.0.0']
    for (let i = 1; i < order.length; i++) assert.ok(compareSemver(parseSemver(order[i - 1])!, parseSemver(order[i])!) < 0, `${order[i - 1]} < ${order[i]}`)
    for (const bad of ['1.0', '01.0.0', '1.0.0+build', 'v1.0.0', '1.0.0-']) assert.equal(parseSemver(bad), undefined, bad)
  })
})
