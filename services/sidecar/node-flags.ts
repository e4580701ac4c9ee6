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
 */
export const SIDECAR_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=32'];
