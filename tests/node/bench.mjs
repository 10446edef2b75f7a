#!/usr/bin/env node
// A fixed Yjs client workload against a y-websocket server, for comparing servers.
//
//   node bench.mjs ws://127.0.0.1:8080/ws [--label roomhost] [--out result.json]
//   node bench.mjs --summarize result-*.json      # medians per server, and ratios
//
// Workload (all clients in this one process, each with its own WebsocketProvider and socket):
//
// - edits: N providers (2, 4, 8) on one fresh document. In each of K rounds (500), every
//   provider makes one small edit of its own (a 1-character insert at a random place in a
//   Y.Text, or every fifth round a Y.Map set), then the event loop turns once, so edits from
//   all providers are in flight at once. Measured: converge time, from the first edit until
//   every provider's document has every other's edits (all state vectors equal the authors'
//   final clocks); edits per second (N x K / converge time); the sync update frames the
//   clients received per second (the reference also echoes each update to its sender).
//   The final documents are checked to be identical.
// - late joiner: a writer fills a fresh document with S KB of text (32-character inserts at
//   random places), and a second client confirms the server has all of it. Then J clients (5)
//   join one after another; each is timed from `new WebsocketProvider` until it is synced and
//   holds the whole text.
//
// With --server-pid PID (a server on this machine), each workload also reports the server's CPU
// time (user + system, all threads, from /proc/PID/stat) and its resident memory afterwards.
// On a small machine the client process is the bottleneck of the edit workload (every provider
// applies every other's edits), so the server's CPU time is the measure of the server's cost.
//
// - large late joiner (--large-mb 1,10; off by default): a writer fills a fresh document with
//   M MB of text in 48 KiB runs (one transaction, so one frame under the 64 KiB a client may
//   send, per run), alternately appended and inserted at a random place; then J clients join
//   one after another, each timed from `new WebsocketProvider` until it holds the whole text.
//   The server's resident memory is read after the joins. Such a document reaches a joiner as
//   one frame from the reference server, and as frames of at most 1 MiB from collab.
//
// Options: --providers 2,4,8  --edits 500  --doc-kb 16,256  --joiners 5  --seed 1  --large-mb 1,10
// (`--providers 0 --doc-kb 0` leaves those workloads out.)

import { readFileSync, writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'

import WebSocket from 'ws'
import * as Y from 'yjs'
import { rng } from './rng.mjs'
import { WebsocketProvider } from 'y-websocket'

const usage = `usage: node bench.mjs SERVER_URL [--label NAME] [--out FILE] [--providers 2,4,8] [--edits 500]
                      [--doc-kb 16,256] [--large-mb 1,10] [--joiners 5] [--seed 1] [--server-pid PID]
       node bench.mjs --summarize FILE...`

const list = value => value.split(',').map(Number).filter(n => Number.isFinite(n) && n > 0)

function parseArgs (argv) {
  const options = { url: null, label: null, out: null, providers: [2, 4, 8], edits: 500, docKb: [16, 256], largeMb: [], joiners: 5, seed: 1, serverPid: null, summarize: null }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--label') options.label = argv[++i]
    else if (arg === '--out') options.out = argv[++i]
    else if (arg === '--providers') options.providers = list(argv[++i])
    else if (arg === '--edits') options.edits = Number(argv[++i])
    else if (arg === '--doc-kb') options.docKb = list(argv[++i])
    else if (arg === '--large-mb') options.largeMb = list(argv[++i])
    else if (arg === '--joiners') options.joiners = Number(argv[++i])
    else if (arg === '--seed') options.seed = Number(argv[++i])
    else if (arg === '--server-pid') options.serverPid = Number(argv[++i])
    else if (arg === '--summarize') options.summarize = argv.slice(i + 1)
    else if (arg === '--help' || arg === '-h') options.help = true
    else if (arg.startsWith('-')) throw new Error(`unknown option ${arg}`)
    else options.url = arg
    if (options.summarize) break
  }
  return options
}

const TIMEOUT_MS = Number(process.env.BENCH_TIMEOUT_MS || 120000)
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const turn = () => new Promise(resolve => setImmediate(resolve))
const median = values => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}


/** Counts what a client's socket receives, while `counts.on` is set. */
function countingSocket (counts) {
  return class CountingWebSocket extends WebSocket {
    constructor (...args) {
      super(...args)
      this.on('message', data => {
        if (!counts.on) return
        const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : Buffer.isBuffer(data) ? data : new Uint8Array(data)
        counts.frames++
        counts.bytes += bytes.length
        // y-protocols: [0 = sync, 1 = step 2 | 2 = update] or [1 = awareness]
        if (bytes[0] === 0 && (bytes[1] === 1 || bytes[1] === 2)) counts.updates++
        else if (bytes[0] === 1) counts.awareness++
      })
    }
  }
}

const TICKS_PER_S = 100 // USER_HZ: what /proc reports CPU times in, on Linux

/** The server's CPU time so far (ms) and resident memory (KiB), or nulls without a PID. */
function serverUsage (pid) {
  if (!pid) return { cpu_ms: null, rss_kib: null }
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // fields[0] is field 3 (state); utime is field 14, stime field 15
  const cpu = (Number(fields[11]) + Number(fields[12])) * 1000 / TICKS_PER_S
  const rss = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return { cpu_ms: cpu, rss_kib: rss ? Number(rss[1]) : null }
}

let SERVER_PID = null

const providers = []

function provider (url, room, doc, counts) {
  const p = new WebsocketProvider(url, room, doc, {
    WebSocketPolyfill: countingSocket(counts),
    disableBc: true,
    maxBackoffTime: 500
  })
  p.on('connection-close', event => {
    if (event && event.code && event.code !== 1000 && event.code !== 1005) {
      console.error(`  (connection to ${room} closed with ${event.code} ${event.reason || ''})`)
    }
  })
  providers.push(p)
  return p
}

/** Resolves when `check()` holds, re-checking on every update of `doc` and `provider` sync. */
function until (what, doc, p, check) {
  return new Promise((resolve, reject) => {
    const done = () => {
      if (!check()) return
      clearTimeout(timer)
      doc.off('update', done)
      p.off('sync', done)
      resolve(performance.now())
    }
    const timer = setTimeout(() => {
      doc.off('update', done)
      p.off('sync', done)
      reject(new Error(`timed out after ${TIMEOUT_MS} ms waiting for ${what}`))
    }, TIMEOUT_MS)
    doc.on('update', done)
    p.on('sync', done)
    done()
  })
}

const freshRoom = name => `bench-${randomBytes(4).toString('hex')}-${name}`

function destroyAll (clients) {
  for (const { p, doc } of clients) {
    p.destroy()
    doc.destroy()
  }
}

async function editsRun (url, n, k, seed) {
  const room = freshRoom(`edits-${n}`)
  const counts = { on: false, frames: 0, bytes: 0, updates: 0, awareness: 0 }
  const clients = []
  for (let i = 0; i < n; i++) {
    const doc = new Y.Doc()
    clients.push({ doc, p: provider(url, room, doc, counts) })
  }
  await Promise.all(clients.map(({ doc, p }) => until('sync', doc, p, () => p.synced)))
  await sleep(200) // let the join's awareness traffic settle
  const random = rng(seed * 1000 + n)
  const before = serverUsage(SERVER_PID)
  counts.on = true
  const started = performance.now()
  for (let round = 0; round < k; round++) {
    for (let i = 0; i < n; i++) {
      const doc = clients[i].doc
      if (round % 5 === 4) {
        doc.getMap('map').set(`p${i}-${round % 20}`, round)
      } else {
        const text = doc.getText('text')
        text.insert(Math.floor(random() * (text.length + 1)), String.fromCharCode(97 + (round % 26)))
      }
    }
    await turn()
  }
  const edited = performance.now()
  // Every author's final clock: what every document must reach.
  const target = clients.map(({ doc }) => [doc.clientID, Y.decodeStateVector(Y.encodeStateVector(doc)).get(doc.clientID)])
  const complete = doc => {
    const sv = Y.decodeStateVector(Y.encodeStateVector(doc))
    return target.every(([client, clock]) => sv.get(client) === clock)
  }
  const reached = await Promise.all(clients.map(({ doc, p }) => until(`all edits to reach every client (${n} providers)`, doc, p, () => complete(doc))))
  const converged = Math.max(...reached)
  counts.on = false
  const after = serverUsage(SERVER_PID)
  const seconds = (converged - started) / 1000
  const text = clients[0].doc.getText('text').toString()
  const sorted = doc => JSON.stringify(Object.entries(doc.getMap('map').toJSON()).sort(([x], [y]) => x < y ? -1 : 1))
  const map = sorted(clients[0].doc)
  for (const { doc } of clients) {
    if (doc.getText('text').toString() !== text || sorted(doc) !== map) {
      throw new Error(`documents differ after convergence (${n} providers)`)
    }
  }
  if (text.length !== n * (k - Math.floor(k / 5))) throw new Error(`text has ${text.length} characters, expected ${n * (k - Math.floor(k / 5))}`)
  destroyAll(clients)
  return {
    providers: n,
    edits: n * k,
    edit_ms: round(edited - started),
    converge_ms: round(converged - started),
    edits_per_s: Math.round(n * k / seconds),
    update_frames: counts.updates,
    update_frames_per_s: Math.round(counts.updates / seconds),
    frames: counts.frames,
    bytes_received: counts.bytes,
    server_cpu_ms: SERVER_PID ? after.cpu_ms - before.cpu_ms : null,
    server_rss_kib: after.rss_kib
  }
}

const round = ms => Math.round(ms * 10) / 10

async function lateJoinerRun (url, kb, joiners, seed) {
  const random = rng(seed * 7919 + kb)
  const chunk = 'abcdefghijklmnopqrstuvwxyz012345'
  const fill = async (writerDoc, text) => {
    while (text.length < kb * 1024) {
      writerDoc.transact(() => {
        for (let i = 0; i < 32 && text.length < kb * 1024; i++) text.insert(Math.floor(random() * (text.length + 1)), chunk)
      })
      await turn()
    }
  }
  const run = await joinersRun(url, freshRoom(`late-${kb}k`), `${kb} KB`, joiners, fill, false)
  return { doc_kb: kb, ...run }
}

async function largeJoinerRun (url, mb, joiners, seed) {
  const random = rng(seed * 104729 + mb)
  const fill = async (writerDoc, text) => {
    const run = 48 * 1024
    const target = mb * 1000 * 1000
    for (let i = 0; text.length < target; i++) {
      const body = String.fromCharCode(97 + (i % 26)).repeat(run)
      writerDoc.transact(() => text.insert(i % 2 === 0 ? text.length : Math.floor(random() * (text.length + 1)), body))
      if (i % 16 === 0) await turn()
    }
  }
  const run = await joinersRun(url, freshRoom(`large-${mb}m`), `${mb} MB`, joiners, fill, true)
  return { doc_mb: mb, ...run }
}

// A writer fills `room` with `fill(doc, text)`; once the server holds it all,
// `joiners` late joiners connect one after another and are timed until they
// hold the whole text (compared in full when `compare` is set).
async function joinersRun (url, room, label, joiners, fill, compare) {
  const counts = { on: false, frames: 0, bytes: 0, updates: 0, awareness: 0 }
  const writerDoc = new Y.Doc()
  const writer = { doc: writerDoc, p: provider(url, room, writerDoc, counts) }
  await until('the writer to sync', writerDoc, writer.p, () => writer.p.synced)
  const text = writerDoc.getText('text')
  await fill(writerDoc, text)
  const length = text.length
  const docBytes = Y.encodeStateAsUpdate(writerDoc).length
  const checkerDoc = new Y.Doc()
  const checker = { doc: checkerDoc, p: provider(url, room, checkerDoc, counts) }
  await until('the server to hold the whole document', checkerDoc, checker.p, () => checker.p.synced && checkerDoc.getText('text').length === length)
  const times = []
  const before = serverUsage(SERVER_PID)
  for (let j = 0; j < joiners; j++) {
    const doc = new Y.Doc()
    const started = performance.now()
    const p = provider(url, room, doc, counts)
    const done = await until(`late joiner ${j} to get ${label}`, doc, p, () => p.synced && doc.getText('text').length === length)
    times.push(done - started)
    if (compare && doc.getText('text').toString() !== text.toString()) throw new Error(`late joiner ${j} holds a different ${label} text`)
    p.destroy()
    doc.destroy()
    await sleep(50)
  }
  const after = serverUsage(SERVER_PID)
  destroyAll([writer, checker])
  return {
    doc_bytes: docBytes,
    joiners,
    join_ms: round(median(times)),
    join_ms_all: times.map(round),
    server_cpu_ms_per_join: SERVER_PID ? round((after.cpu_ms - before.cpu_ms) / joiners) : null,
    server_rss_kib: after.rss_kib
  }
}

async function bench (options) {
  const result = {
    label: options.label || options.url,
    url: options.url,
    started: new Date().toISOString(),
    node: process.version,
    edits_per_provider: options.edits,
    edits: [],
    late_joiner: [],
    large_joiner: []
  }
  for (const n of options.providers) {
    const run = await editsRun(options.url, n, options.edits, options.seed)
    result.edits.push(run)
    console.error(`  ${result.label}: ${n} providers x ${options.edits} edits: converge ${run.converge_ms} ms, ${run.edits_per_s} edits/s, ${run.update_frames_per_s} update frames/s`)
    await sleep(300)
  }
  for (const kb of options.docKb) {
    const run = await lateJoinerRun(options.url, kb, options.joiners, options.seed)
    result.late_joiner.push(run)
    console.error(`  ${result.label}: late joiner, ${kb} KB text (${run.doc_bytes} bytes encoded): ${run.join_ms} ms (median of ${run.joiners})`)
    await sleep(300)
  }
  for (const mb of options.largeMb) {
    const run = await largeJoinerRun(options.url, mb, options.joiners, options.seed)
    result.large_joiner.push(run)
    console.error(`  ${result.label}: late joiner, ${mb} MB text (${run.doc_bytes} bytes encoded): ${run.join_ms} ms (median of ${run.joiners}), server RSS ${run.server_rss_kib} KiB`)
    await sleep(300)
  }
  return result
}

// ---------------------------------------------------------------------------------------------

/** Medians over runs, per server label, and ratios roomhost / reference. */
function summarize (files) {
  const runs = files.map(file => JSON.parse(readFileSync(file, 'utf8')))
  // The reference server last, so the ratio column is other / reference.
  const labels = [...new Set(runs.map(run => run.label))].sort((x, y) => (x === 'reference') - (y === 'reference'))
  const byLabel = Object.fromEntries(labels.map(label => [label, runs.filter(run => run.label === label)]))
  const rows = []
  const metric = (name, unit, pick, better) => rows.push({ name, unit, better, values: Object.fromEntries(labels.map(label => [label, median(byLabel[label].map(pick))])) })
  const first = runs[0]
  for (const { providers } of first.edits) {
    const pickEdits = run => run.edits.find(e => e.providers === providers)
    metric(`converge, ${providers} providers x ${first.edits_per_provider} edits`, 'ms', run => pickEdits(run).converge_ms, 'lower')
    metric(`edits/s, ${providers} providers`, '/s', run => pickEdits(run).edits_per_s, 'higher')
    metric(`update frames received/s, ${providers} providers`, '/s', run => pickEdits(run).update_frames_per_s, 'higher')
    if (pickEdits(first).server_cpu_ms !== null) metric(`server CPU, ${providers} providers`, 'ms', run => pickEdits(run).server_cpu_ms, 'lower')
  }
  for (const { doc_kb: kb, doc_bytes: bytes } of first.late_joiner) {
    const pickLate = run => run.late_joiner.find(l => l.doc_kb === kb)
    metric(`late joiner sync, ${kb} KB text (${Math.round(bytes / 1024)} KiB v1)`, 'ms', run => pickLate(run).join_ms, 'lower')
    if (pickLate(first).server_cpu_ms_per_join !== null) metric(`server CPU per late joiner, ${kb} KB`, 'ms', run => pickLate(run).server_cpu_ms_per_join, 'lower')
  }
  if (first.late_joiner.length && first.late_joiner.at(-1).server_rss_kib !== null) {
    metric('server resident memory at the end', 'KiB', run => run.late_joiner.at(-1).server_rss_kib, 'lower')
  }
  for (const { doc_mb: mb, doc_bytes: bytes } of first.large_joiner || []) {
    const pickLarge = run => run.large_joiner.find(l => l.doc_mb === mb)
    metric(`late joiner sync, ${mb} MB text (${(bytes / 1048576).toFixed(1)} MiB v1)`, 'ms', run => pickLarge(run).join_ms, 'lower')
    if (pickLarge(first).server_cpu_ms_per_join !== null) metric(`server CPU per late joiner, ${mb} MB`, 'ms', run => pickLarge(run).server_cpu_ms_per_join, 'lower')
    if (pickLarge(first).server_rss_kib !== null) metric(`server RSS after the ${mb} MB joins`, 'KiB', run => pickLarge(run).server_rss_kib, 'lower')
  }
  const counts = labels.map(label => `${label}: ${byLabel[label].length} runs`).join(', ')
  const [a, b] = labels
  const lines = [`medians (${counts})`, '', `| measure | ${labels.join(' | ')} |${b ? ` ${a} / ${b} |` : ''}`, `|---|${labels.map(() => '---:').join('|')}|${b ? '---:|' : ''}`]
  for (const row of rows) {
    const cells = labels.map(label => `${row.values[label]}${row.unit === '/s' ? '' : ` ${row.unit}`}`)
    const ratio = b ? ` ${(row.values[a] / row.values[b]).toFixed(2)} |` : ''
    lines.push(`| ${row.name} | ${cells.join(' | ')} |${ratio}`)
  }
  return { table: lines.join('\n'), rows }
}

async function main () {
  const options = parseArgs(process.argv.slice(2))
  if (options.help) {
    console.log(usage)
    return
  }
  if (options.summarize) {
    if (options.summarize.length === 0) throw new Error('--summarize needs result files')
    const { table, rows } = summarize(options.summarize)
    console.log(JSON.stringify(rows))
    console.log()
    console.log(table)
    return
  }
  if (!options.url) {
    console.error(usage)
    process.exit(2)
  }
  SERVER_PID = options.serverPid
  const result = await bench(options)
  const json = JSON.stringify(result, null, 2)
  if (options.out) writeFileSync(options.out, json + '\n')
  console.log(json)
  console.log()
  console.log(`| measure | ${result.label} |`)
  console.log('|---|---:|')
  for (const run of result.edits) {
    console.log(`| converge, ${run.providers} providers x ${options.edits} edits | ${run.converge_ms} ms |`)
    console.log(`| edits/s, ${run.providers} providers | ${run.edits_per_s} |`)
    console.log(`| update frames received/s, ${run.providers} providers | ${run.update_frames_per_s} |`)
    if (run.server_cpu_ms !== null) console.log(`| server CPU, ${run.providers} providers | ${run.server_cpu_ms} ms |`)
  }
  for (const run of result.late_joiner) console.log(`| late joiner sync, ${run.doc_kb} KB text | ${run.join_ms} ms |`)
  for (const run of result.large_joiner) console.log(`| late joiner sync, ${run.doc_mb} MB text | ${run.join_ms} ms |`)
}

main().then(() => {
  for (const p of providers) p.destroy()
  process.exit(0)
}, err => {
  console.error(err.stack || String(err))
  for (const p of providers) p.destroy()
  process.exit(1)
})
