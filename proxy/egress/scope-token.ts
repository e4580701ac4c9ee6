/**
 * light-router's token placement: when the app already sent `Authorization` (its own user token),
 * the service's client-credentials token goes in a second header (`X-Scope-Token`) and the app's
 * header is kept; otherwise the token is the `Authorization`. A 401 with the token drops it and the
 * call is sent once more with a fresh one, as `oauth2Token` does.
 */
import type { Call, Layer } from './dispatch.js';
import type { TokenSource } from './oauth2.js';

export function oauth2ScopeToken(tokens: TokenSource, scopeHeader: string): Layer {
  const header = scopeHeader.toLowerCase();
  return (next) => async (call) => {
    const appAuthorization = call.headers.authorization !== undefined;
    const withToken = (token: string): Call => ({
      ...call,
      headers: appAuthorization
        ? { ...call.headers, [header]: `Bearer ${token}` }
        : { ...call.headers, authorization: `Bearer ${token}` },
    });
    const token = await tokens.get();
    const answer = await next(withToken(token));
    const resendable = call.body === null || Buffer.isBuffer(call.body);
    if (answer.statusCode !== 401 || !resendable) return answer;
    answer.body.discard();
    tokens.invalidate(token);
    return next(withToken(await tokens.get()));
  };
}
