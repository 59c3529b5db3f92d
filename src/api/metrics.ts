/**
 * Prometheus metrics for one node, in a Registry of its own (never prom-client's global
 * default registry, so several nodes in one process do not mix). Node counters are read
 * from `node.status()` when scraped: no second bookkeeping on the message path.
 * API-level counters (requests, WebSocket connections, drops) are kept here.
 */
import { Counter, Gauge, Registry } from 'prom-client'
import { REJECTION_REASONS } from '../core/ingress.ts'
import type { NodeStatus } from '../node/types.ts'

export interface ApiMetrics {
  registry: Registry
  httpRequests: Counter<'method' | 'route' | 'status'>
  wsConnections: Gauge
  wsDropped: Counter<'reason'>
  remoteAgents: Gauge
  apiRejections: Counter<'reason'>
}

export function createMetrics (status: () => NodeStatus): ApiMetrics {
  const registry = new Registry()
  // One status snapshot per scrape, shared by every collector below.
  let snapshot: { at: number, s: NodeStatus } | undefined
  const current = (): NodeStatus => {
    const now = Date.now()
    if (snapshot == null || now - snapshot.at > 100) snapshot = { at: now, s: status() }
    return snapshot.s
  }
  const counters = {
    published: 'Envelopes submitted by agents on this node',
    delivered: 'Envelopes delivered to agents on this node',
    forwarded: 'Envelopes sent to other nodes over direct links',
    received: 'Envelopes received from other nodes (before ingress checks)'
  } as const
  for (const [name, help] of Object.entries(counters) as Array<[keyof NodeStatus['counters'], string]>) {
    new Counter({ // eslint-disable-line no-new
      name: `fedmesh_messages_${name}_total`,
      help,
      registers: [registry],
      collect () { this.reset(); this.inc(current().counters[name]) }
    })
  }
  new Counter({ // eslint-disable-line no-new
    name: 'fedmesh_rejections_total',
    help: 'Envelopes rejected at ingress, by reason',
    labelNames: ['reason'],
    registers: [registry],
    collect () {
      this.reset()
      const r = current().rejections
      for (const reason of REJECTION_REASONS) this.inc({ reason }, r[reason] ?? 0)
    }
  })
  new Counter({ // eslint-disable-line no-new
    name: 'fedmesh_topic_copies_dropped_total',
    help: 'Topic and broadcast copies not passed on, by reason (link-full: the link to the next hop held more than 16 MB)',
    labelNames: ['reason'],
    registers: [registry],
    collect () {
      this.reset()
      const t = current().topics
      this.inc({ reason: 'link-full' }, t.linkDrops)
      for (const [reason, n] of Object.entries(t.dropped)) this.inc({ reason }, n ?? 0)
    }
  })
  new Counter({ // eslint-disable-line no-new
    name: 'fedmesh_link_closed_frames_total',
    help: 'Frames thrown away unsent by links to neighbouring nodes that closed (topic copies among them are lost)',
    registers: [registry],
    collect () { this.reset(); this.inc(current().topics.closedFrames) }
  })
  new Gauge({ name: 'fedmesh_peers', help: 'Connected peers', registers: [registry], collect () { this.set(current().peers) } }) // eslint-disable-line no-new
  new Gauge({ name: 'fedmesh_agents', help: 'Agents attached to this node (local and remote)', registers: [registry], collect () { this.set(current().agents.length) } }) // eslint-disable-line no-new
  new Gauge({ name: 'fedmesh_uptime_seconds', help: 'Seconds since the node started', registers: [registry], collect () { this.set(current().uptimeMs / 1000) } }) // eslint-disable-line no-new
  return {
    registry,
    httpRequests: new Counter({ name: 'fedmesh_api_requests_total', help: 'HTTP API requests by route and status', labelNames: ['method', 'route', 'status'], registers: [registry] }),
    wsConnections: new Gauge({ name: 'fedmesh_api_ws_connections', help: 'Open WebSocket connections', registers: [registry] }),
    wsDropped: new Counter({ name: 'fedmesh_api_ws_dropped_total', help: 'WebSocket connections dropped by the server, by reason', labelNames: ['reason'], registers: [registry] }),
    remoteAgents: new Gauge({ name: 'fedmesh_api_remote_agents', help: 'Remote agents attached over the WebSocket API', registers: [registry] }),
    apiRejections: new Counter({ name: 'fedmesh_api_rejections_total', help: 'Envelopes from remote agents refused by the API, by reason', labelNames: ['reason'], registers: [registry] })
  }
}
