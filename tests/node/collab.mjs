#!/usr/bin/env node
// End-to-end checks of a Yjs sync server with real yjs / y-websocket / ws clients.
//
//   node collab.mjs ws://127.0.0.1:8080/ws/collab --roomhost http://127.0.0.1:8080
//   node collab.mjs --reference          # the same checks against @y/websocket-server
//   node collab.mjs ... --only awareness # one check (and the checks it builds on); --list names them
//
// The server URL can also come from COLLAB_URL, the HTTP base from ROOMHOST_HTTP.
// `--roomhost BASE` adds the checks of roomhost's REST face (POST /rooms/collab/{room}/...),
// which the reference server does not have. Exits non-zero with a message on the first
// failure. A check also fails when the server closes one of its connections with a code other
// than 1000, 1001, 1005 or 1006 (a refusal such as 4400), even if y-websocket's reconnect let it
// pass otherwise.

import http from 'node:http'
import { randomBytes } from 'node:crypto'

import WebSocket, { WebSocketServer } from 'ws'
import * as Y from 'yjs'
import { rng } from './rng.mjs'
import { WebsocketProvider } from 'y-websocket'

const TIMEOUT_MS = Number(process.env.COLLAB_TIMEOUT_MS || 5000)
// How long after its sync a newcomer may take to show the present awareness states. The server
// sends them on connect; y-protocols clients renew their state every 15 s, so a longer wait
// (COLLAB_TIMEOUT_MS is 20 s under cargo test) would pass on the renewal alone.
const AWARENESS_ON_CONNECT_MS = 2000
// Close codes that are not a server refusing a client: normal closure, going away, and a
// close without a code or without a close frame (the client's own close, a dropped socket).
const EXPECTED_CLOSES = new Set([1000, 1001, 1005, 1006])

function parseArgs (argv) {
  const options = { url: process.env.COLLAB_URL, http: process.env.ROOMHOST_HTTP, reference: false, service: 'collab', only: null, list: false }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--reference') options.reference = true
    else if (arg === '--roomhost') options.http = argv[++i]
    else if (arg === '--service') options.service = argv[++i]
    else if (arg === '--only') options.only = argv[++i]
    else if (arg === '--list') options.list = true
    else if (arg === '--help' || arg === '-h') options.help = true
    else if (arg.startsWith('-')) throw new Error(`unknown option ${arg}`)
    else options.url = arg
  }
  return options
}

const usage = `usage: node collab.mjs SERVER_URL [--roomhost HTTP_BASE] [--service NAME] [--only CHECK]
       node collab.mjs --reference [--only CHECK]
       node collab.mjs --list
SERVER_URL is what a WebsocketProvider gets as serverUrl, e.g. ws://127.0.0.1:8080/ws/collab`

class CheckFailed extends Error {}

function fail (message) {
  throw new CheckFailed(message)
}

/** Closes by the server that a check did not expect (4400, 4413...), as `name: code reason`. */
const unexpectedCloses = []

/** Fails if a connection was closed by the server with an unexpected code since the last call. */
function failOnCloses () {
  if (unexpectedCloses.length === 0) return
  const closes = unexpectedCloses.splice(0)
  fail(`the server closed ${closes.length === 1 ? 'a connection' : 'connections'}: ${closes.join('; ')}`)
}

/** Polls `condition` until it holds or the timeout passes. */
async function waitFor (what, condition, timeoutMs = TIMEOUT_MS, describe = null) {
  const deadline = Date.now() + timeoutMs
  let last
  while (Date.now() < deadline) {
    failOnCloses()
    try {
      last = await condition()
      if (last === true) return
    } catch (err) {
      last = err
    }
    await sleep(20)
  }
  const detail = last instanceof Error ? ` (${last.message})` : describe ? ` (${describe()})` : ''
  fail(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`)
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

const open = []

/** A Y.Doc with a provider on `room`, synced. */
async function client (serverUrl, room, name) {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(serverUrl, room, doc, {
    WebSocketPolyfill: WebSocket,
    disableBc: true, // same-process providers must talk through the server only
    maxBackoffTime: 500
  })
  open.push(provider)
  provider.on('connection-close', event => {
    if (!event || !event.code || event.code === 1000) return
    const close = `${event.code} ${event.reason || ''}`.trim()
    if (EXPECTED_CLOSES.has(event.code)) console.error(`  (${name}: connection closed with ${close})`)
    else unexpectedCloses.push(`${name}: ${close}`)
  })
  await waitFor(`${name} to sync with ${serverUrl}/${room}`, () => provider.synced)
  return { doc, provider, name }
}

function destroy (c) {
  c.provider.destroy()
  c.doc.destroy()
}

const json = doc => ({ text: doc.getText('text').toString(), map: doc.getMap('map').toJSON() })
/** JSON with object keys sorted, so that equal values compare equal. */
const canonical = value => JSON.stringify(value, (_key, v) =>
  v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([x], [y]) => x < y ? -1 : 1)) : v)
const same = (a, b) => canonical(a) === canonical(b)

async function httpRequest (method, url, body) {
  const response = await fetch(url, {
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
    headers: body === undefined ? {} : { 'content-type': 'application/json' }
  })
  const text = await response.text()
  if (!response.ok) fail(`${method} ${url} answered ${response.status}: ${text}`)
  return text ? JSON.parse(text) : null
}

// ---------------------------------------------------------------------------------------------

async function checkConvergence (url, room) {
  const a = await client(url, room, 'A')
  const b = await client(url, room, 'B')
  // Concurrent edits: neither has seen the other's change when making its own.
  a.provider.disconnect()
  a.doc.getText('text').insert(0, 'hello')
  a.doc.getMap('map').set('from', 'a')
  a.doc.getMap('map').set('a', 1)
  b.doc.getText('text').insert(0, 'world')
  b.doc.getMap('map').set('from', 'b')
  b.doc.getMap('map').set('b', 2)
  a.provider.connect()
  await waitFor('A and B to converge', () => same(json(a.doc), json(b.doc)) && a.doc.getMap('map').size === 3,
    TIMEOUT_MS, () => `A ${JSON.stringify(json(a.doc))}, B ${JSON.stringify(json(b.doc))}`)
  const text = a.doc.getText('text').toString()
  if (!text.includes('hello') || !text.includes('world')) fail(`merged text lost an edit: ${JSON.stringify(text)}`)
  const map = a.doc.getMap('map').toJSON()
  if (map.a !== 1 || map.b !== 2 || !['a', 'b'].includes(map.from)) fail(`merged map is wrong: ${JSON.stringify(map)}`)
  // A live edit after the merge reaches the other side.
  b.doc.getText('text').insert(0, '> ')
  await waitFor('A to see B\'s live edit', () => a.doc.getText('text').toString().startsWith('> '))
  return { a, b }
}

async function checkLateJoiner (url, room, a) {
  const c = await client(url, room, 'C')
  await waitFor('the late joiner C to get the full state', () => same(json(c.doc), json(a.doc)))
  destroy(c)
}

async function checkAwareness (url, room, a, b) {
  a.provider.awareness.setLocalStateField('user', { name: 'ada', color: '#f00' })
  const id = a.doc.clientID
  await waitFor('B to see A\'s awareness state', () => {
    const state = b.provider.awareness.getStates().get(id)
    return state !== undefined && state.user && state.user.name === 'ada'
  })
  const late = await client(url, room, 'D')
  await waitFor('a new client to receive the present awareness states right after its sync',
    () => late.provider.awareness.getStates().has(id), AWARENESS_ON_CONNECT_MS)
  destroy(late)
  destroy(a)
  await waitFor('A\'s awareness state to disappear from B after A left', () => !b.provider.awareness.getStates().has(id))
}

async function checkRoomsAreSeparate (url, roomX, roomY) {
  const x = await client(url, roomX, 'X')
  const y = await client(url, roomY, 'Y')
  x.doc.getText('text').insert(0, 'only in X')
  const x2 = await client(url, roomX, 'X2')
  await waitFor('a second client of room X to see X\'s edit', () => x2.doc.getText('text').toString() === 'only in X')
  await sleep(200)
  if (y.doc.getText('text').toString() !== '') fail(`room Y received room X's edit: ${JSON.stringify(y.doc.getText('text').toString())}`)
  const y2 = await client(url, roomY, 'Y2')
  if (y2.doc.getText('text').toString() !== '') fail('a new client of room Y got room X\'s content')
  for (const c of [x, y, x2, y2]) destroy(c)
}


// The size of the large-doc check's document, in bytes of text (about its encoded size: the
// text is inserted in large runs). 5 MB by default: far beyond the 64 KiB that one client frame
// may carry, so the document can only be built from many frames and only be sent to a late
// joiner as a frame (or frames) much larger than any client may send.
const LARGE_DOC_BYTES = Number(process.env.COLLAB_LARGE_DOC_BYTES || 5_000_000)

async function checkLargeDocument (url, room) {
  const a = await client(url, room, 'big-A')
  const b = await client(url, room, 'big-B')
  const random = rng(20)
  const text = a.doc.getText('text')
  // One transaction is one update frame: 48 KiB of text stays under the default 64 KiB that a
  // client may send. Runs alternate between appending (which yrs merges into one long item)
  // and inserting at a random place (many items); B edits concurrently.
  const run = 48 * 1024
  let written = 0
  for (let i = 0; written < LARGE_DOC_BYTES; i++) {
    const body = String.fromCharCode(97 + (i % 26)).repeat(run - 8) + `<${String(i).padStart(6, '0')}>`
    a.doc.transact(() => {
      const at = i % 2 === 0 ? text.length : Math.floor(random() * (text.length + 1))
      text.insert(at, body)
    })
    written += body.length
    if (i % 8 === 0) b.doc.getMap('map').set(`b-${i}`, i)
    if (i % 16 === 0) await sleep(1) // let the sockets drain
  }
  const length = text.length
  await waitFor(`B to hold A's ${length}-character text and A B's map`,
    () => b.doc.getText('text').length === length && a.doc.getMap('map').size === b.doc.getMap('map').size,
    TIMEOUT_MS, () => `A has ${length} characters, B ${b.doc.getText('text').length}; maps ${a.doc.getMap('map').size} / ${b.doc.getMap('map').size}`)
  if (!same(json(a.doc), json(b.doc))) fail('A and B hold different documents')
  const bytes = Y.encodeStateAsUpdate(a.doc).length
  if (bytes < LARGE_DOC_BYTES) fail(`the document is only ${bytes} bytes`)
  const c = await client(url, room, 'big-C')
  await waitFor(`the late joiner to receive the ${bytes}-byte document`,
    () => c.doc.getText('text').length === length && c.doc.getMap('map').size === a.doc.getMap('map').size,
    TIMEOUT_MS, () => `C has ${c.doc.getText('text').length} of ${length} characters`)
  if (!same(json(c.doc), json(a.doc))) fail('the late joiner holds a different document')
  // The document stays live: an edit after the join reaches everyone.
  c.doc.getText('text').insert(0, 'late ')
  await waitFor('A and B to see the late joiner\'s edit',
    () => a.doc.getText('text').length === length + 5 && b.doc.getText('text').length === length + 5)
  for (const x of [a, b, c]) destroy(x)
}

async function checkRest (url, httpBase, service, room) {
  const a = await client(url, room, 'R')
  a.doc.getText('text').insert(0, 'client text')
  a.provider.awareness.setLocalStateField('user', { name: 'rest-watcher' })
  const base = `${httpBase.replace(/\/$/, '')}/rooms/${service}/${encodeURIComponent(room)}`
  await waitFor('GET /doc to show the client\'s text', async () => {
    const doc = await httpRequest('GET', `${base}/doc`)
    return doc.text === 'client text'
  })
  await httpRequest('POST', `${base}/text/text`, { insert: 'REST: ', index: 0 })
  await waitFor('a REST text edit to reach the connected client', () => a.doc.getText('text').toString() === 'REST: client text')
  await httpRequest('POST', `${base}/map/map`, { set: { title: 'from REST', n: 3 } })
  await waitFor('a REST map edit to reach the connected client', () => a.doc.getMap('map').get('title') === 'from REST' && a.doc.getMap('map').get('n') === 3)
  const presence = await httpRequest('GET', `${base}/presence`)
  if (!presence.some(entry => entry.client === a.doc.clientID && entry.state.user.name === 'rest-watcher')) {
    fail(`GET /presence does not list the client: ${JSON.stringify(presence)}`)
  }
  // GET /update loads into a fresh Y.Doc.
  const response = await fetch(`${base}/update`)
  if (!response.ok) fail(`GET /update answered ${response.status}`)
  const fresh = new Y.Doc()
  Y.applyUpdate(fresh, new Uint8Array(await response.arrayBuffer()))
  if (!same(json(fresh), json(a.doc))) fail(`GET /update differs: ${JSON.stringify(json(fresh))} vs ${JSON.stringify(json(a.doc))}`)
  // POST /update: a script's Yjs edit reaches the client.
  const script = new Y.Doc()
  Y.applyUpdate(script, Y.encodeStateAsUpdate(fresh))
  const before = Y.encodeStateVector(script)
  script.getText('text').insert(script.getText('text').length, ' +script')
  const posted = await fetch(`${base}/update`, { method: 'POST', body: Y.encodeStateAsUpdate(script, before) })
  if (!posted.ok) fail(`POST /update answered ${posted.status}: ${await posted.text()}`)
  await waitFor('a POST /update edit to reach the client', () => a.doc.getText('text').toString().endsWith(' +script'))
  destroy(a)
}

// ---------------------------------------------------------------------------------------------

/** Starts @y/websocket-server's reference implementation on an ephemeral port. */
async function startReference () {
  const { setupWSConnection } = await import('@y/websocket-server/utils')
  const wss = new WebSocketServer({ noServer: true })
  const server = http.createServer((_req, res) => { res.writeHead(200); res.end('okay') })
  wss.on('connection', setupWSConnection)
  server.on('upgrade', (request, socket, head) => {
    wss.handleUpgrade(request, socket, head, ws => wss.emit('connection', ws, request))
  })
  await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
  return { url: `ws://127.0.0.1:${server.address().port}`, close: () => { wss.close(); server.close() } }
}

async function main () {
  const options = parseArgs(process.argv.slice(2))
  if (options.help) {
    console.log(usage)
    return
  }
  const run = randomBytes(4).toString('hex')
  const room = suffix => `node-${run}-${suffix}`
  // [name, description, checks it builds on, run]
  const checks = [
    ['convergence', 'two clients converge after concurrent Y.Text and Y.Map edits', [], async state => {
      Object.assign(state, await checkConvergence(options.url, room('doc')))
    }],
    ['late-joiner', 'a late joiner receives the full state', ['convergence'], async state => checkLateJoiner(options.url, room('doc'), state.a)],
    ['awareness', 'awareness appears, reaches newcomers, and disappears when its client leaves', ['convergence'], async state => checkAwareness(options.url, room('doc'), state.a, state.b)],
    ['rooms', 'two rooms stay separate', [], async () => checkRoomsAreSeparate(options.url, room('x'), room('y'))],
    ['large-doc', 'a 5 MB document converges and reaches a late joiner', [], async () => checkLargeDocument(options.url, room('large'))],
    ['rest', 'REST reads and edits reach connected clients (--roomhost only)', [], async () => checkRest(options.url, options.http, options.service, room('rest'))]
  ]
  if (options.list) {
    for (const [name, description] of checks) console.log(`${name.padEnd(12)} ${description}`)
    return
  }
  if (options.only !== null && !checks.some(([name]) => name === options.only)) {
    console.error(`unknown check ${JSON.stringify(options.only)}; --list names them`)
    process.exit(2)
  }
  if (options.only === 'rest' && !options.http && !options.reference) {
    console.error('the rest check needs --roomhost HTTP_BASE')
    process.exit(2)
  }
  let reference = null
  if (options.reference) {
    reference = await startReference()
    options.url = reference.url
    options.http = undefined
  }
  if (!options.url) {
    console.error(usage)
    process.exit(2)
  }
  const wanted = options.only === null
    ? checks.filter(([name]) => name !== 'rest' || options.http)
    : checks.filter(([name]) => name === options.only || checks.find(([n]) => n === options.only)[2].includes(name))
  if (options.only === 'rest' && !options.http) {
    // --reference --only rest: the reference server has no REST face.
    console.log('skip rest: the reference server has no REST face')
    wanted.length = 0
  }
  const steps = wanted.map(([name, description]) => [`${name}: ${description.replace(/ \(--roomhost only\)$/, '')}`, checks.find(([n]) => n === name)[3]])
  const state = {}
  let passed = 0
  let failed = 0
  for (const [name, step] of steps) {
    const started = Date.now()
    try {
      await step(state)
      failOnCloses()
      passed++
      console.log(`ok   ${name} (${Date.now() - started} ms)`)
    } catch (err) {
      failed++
      console.log(`FAIL ${name}: ${err instanceof CheckFailed ? err.message : err.stack}`)
      break
    }
  }
  for (const provider of open) provider.destroy()
  if (reference) reference.close()
  console.log(`${passed} passed, ${failed} failed`)
  process.exit(failed === 0 ? 0 : 1)
}

main().catch(err => {
  console.error(err instanceof CheckFailed ? err.message : err.stack)
  process.exit(1)
})
