import { ConfigError, formatProblems, loadConfig } from '../runtime/config.js';

export const CHECK_CONFIG_OK = 0;
/** Same code as any other bad-config exit of the CLI. */
export const CHECK_CONFIG_INVALID = 2;

/**
 * `mesh-sidecar check-config FILE`: loads FILE exactly as the sidecar would (interpolation and
 * environment overrides included, since they decide what actually runs) and reports the outcome.
 * Prints `ok` and resolves 0, or one `<json-pointer>: <message>` line per problem and resolves 2.
 * A missing or unreadable file is one problem on `/`.
 */
export async function checkConfig(
  file: string,
  env: NodeJS.ProcessEnv,
  out: (line: string) => void,
): Promise<number> {
  try {
    await loadConfig({ file, env });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const line of formatProblems(err.problems)) out(line);
    return CHECK_CONFIG_INVALID;
  }
  out('ok');
  return CHECK_CONFIG_OK;
}
