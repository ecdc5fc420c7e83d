#!/usr/bin/env node
/**
 * The HTTP client of bench/remote.bench.mjs, run where the client of a workload is: inside the
 * second machine's network namespace (`nsenter --net=… node bench/remote-client.mjs`), or on this
 * host for the local rows, so that every path is measured by the same process doing the same thing.
 *
 * It reads one JSON request a line on stdin and answers each with one JSON line on stdout:
 *   {"id": 1, "op": "first", "host": "172.18.0.2", "port": 80, "marker": "handler", "timeoutMs": 30000}
 *     → {"id": 1, "result": {"seconds": 0.42}}   (from the moment it read the request, polling every 10 ms)
 *   {"id": 2, "op": "load", "host": "…", "port": 80, "seconds": 4, "concurrency": 8, "marker": "handler"}
 *     → {"id": 2, "result": {"rps": …, "p50": …, "p99": …, "failed": …}}
 * A request that fails is answered with {"id", "error"}. It ends when its stdin does.
 */
import {createInterface} from 'node:readline'
import {firstReply, load} from './run.mjs'

for await (const line of createInterface({input: process.stdin})) {
  if (!line.trim()) continue
  const request = JSON.parse(line)
  const received = performance.now()
  try {
    const result =
      request.op === 'first'
        ? {seconds: await firstReply(request.host, request.port, request.marker, received, request.timeoutMs ?? 30_000)}
        : await load(request.host, request.port, {seconds: request.seconds, concurrency: request.concurrency, marker: request.marker})
    process.stdout.write(`${JSON.stringify({id: request.id, result})}\n`)
  } catch (error) {
    process.stdout.write(`${JSON.stringify({id: request.id, error: String(error?.message ?? error)})}\n`)
  }
}
