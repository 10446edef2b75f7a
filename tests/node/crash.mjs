#!/usr/bin/env node
// Yjs clients for the collab crash test (cli/tests/collab_crash.rs).
//
//   node crash.mjs edit SERVER_URL ROOM   a writer appends "e<n>" to the Y.Array "items" as
//                                         fast as the server keeps up; an observer prints
//                                         "seen e<n>" for every item that reached it through the
//                                         server (which broadcasts an edit only once it is
//                                         stored: what a client has seen is acknowledged).
//                                         Runs until killed.
//   node crash.mjs read SERVER_URL ROOM   syncs a fresh client and prints the items as JSON.
//
// SERVER_URL is what a WebsocketProvider gets as serverUrl, e.g. ws://127.0.0.1:8080/ws.

import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'

const [mode, serverUrl, room] = process.argv.slice(2)
if (!['edit', 'read'].includes(mode) || !serverUrl || !room) {
  console.error('usage: node crash.mjs edit|read SERVER_URL ROOM')
  process.exit(2)
}

function client () {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(serverUrl, room, doc, {
    WebSocketPolyfill: WebSocket,
    disableBc: true,
    maxBackoffTime: 200
  })
  return { doc, provider }
}

async function synced (provider, timeoutMs = 20000) {
  const until = Date.now() + timeoutMs
  while (!provider.synced) {
    if (Date.now() > until) throw new Error(`no sync with ${serverUrl}/${room}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

if (mode === 'read') {
  const reader = client()
  await synced(reader.provider)
  console.log(JSON.stringify(reader.doc.getArray('items').toArray()))
  reader.provider.destroy()
  process.exit(0)
}

const observer = client()
observer.doc.getArray('items').observe(event => {
  for (const item of event.changes.delta.flatMap(change => change.insert || [])) {
    process.stdout.write(`seen ${item}\n`)
  }
})
const writer = client()
await synced(observer.provider)
await synced(writer.provider)
console.log('ready')
let next = 0
for (;;) {
  if (writer.provider.wsconnected) writer.doc.getArray('items').push([`e${next++}`])
  await new Promise(resolve => setTimeout(resolve, 2))
}
