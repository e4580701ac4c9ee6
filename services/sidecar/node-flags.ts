/**
 * Node/V8 flags the sidecar runs with: the container's ENTRYPOINT (a test checks the Dockerfile
 * against this list), the quick start, and the launchers of the tests and benchmarks, so the
 * benchmarks measure the process as it is deployed. Users may add more through `NODE_OPTIONS`.
 *
 * `--max-semi-space-size=32`: every proxied request leaves a few KB of short-lived objects, and
 * with V8's default young generation (16 MB semi-spaces) the ingress ran a 2–4 ms scavenge every
 * ~650 requests — pauses that land in the p99 of a proxy at 1,000 req/s. 32 MB halves their number
 * (45 → 23 per 30,000 requests, `node --trace-gc`) and the time spent in them; resident memory
 * under load stayed within the run-to-run spread (peak RSS 167–228 MB either way, most of it
 * start-up garbage awaiting its first full collection). bench/RESULTS.md has the runs.
 *
 * `--no-allocation-site-pretenuring`: V8 watches which allocation sites' objects survive a
 * scavenge and, above ~85 %, allocates that site's objects straight in the old generation. Some
 * per-request sites get that verdict while the sidecar warms up (in-flight requests survive the
 * scavenges of start-up), and from then on short-lived request objects are born old: dead, they
 * still keep the young objects they point to alive through the remembered set, those are promoted
 * in turn, and the garbage feeds itself. Measured at 1,000 req/s open loop (`node --trace-gc`,
 * 10,000 requests): the egress scavenge paused 4.7–10 ms with 2.3 MB promoted per scavenge; with
 * this flag 1.6 ms and 0.45 MB (ingress: 5.7 → 1.5 ms, 2.25 → 0.02 MB). A bare node:http + undici
 * forwarder, which V8 never pretenures, pauses ~0.8 ms. The price: the push bridge's batch path
 * may lose ~5 % of its records/s (bench/RESULTS.md, Push subscriptions), where long-lived fetched
 * batches were pretenured to good effect; a larger minimum young generation instead of this flag
 * did not shorten the proxies' pauses.
 */
export const SIDECAR_NODE_FLAGS: readonly string[] = [
  '--max-semi-space-size=32',
  '--no-allocation-site-pretenuring',
];
