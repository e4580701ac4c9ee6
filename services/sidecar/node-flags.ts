/**
 * Node/V8 flags the sidecar runs with: the container's ENTRYPOINT (a test checks the Dockerfile
 * against this list), the quick start, and the launchers of the tests and benchmarks, so the
 * benchmarks measure the process as it is deployed. Users may add more through `NODE_OPTIONS`.
 *
 * `--max-semi-space-size=16`: every proxied request leaves a few KB of short-lived objects, and
 * with V8's default young generation on a small container (it stays at 4 MB here) scavenges run
 * every few hundred requests. 16 MB semi-spaces took the proxy's CPU per request down by about a
 * tenth at 2,000 req/s (bench/RESULTS.md) for ~30 MB more resident memory under load.
 */
export const SIDECAR_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=16'];
