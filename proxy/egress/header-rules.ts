/**
 * Per-service header rules on egress as a dispatch layer: edits the headers of each call before
 * its attempts and the headers of the answer. Only services with rules get this layer.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { CompiledHeaderRules, HeaderBag } from '../shared/header-rules.js';
import type { Layer } from './dispatch.js';

export function headerRulesLayer(rules: CompiledHeaderRules): Layer {
  const { request, response, host } = rules;
  return (next) => async (call) => {
    let headers = call.headers;
    if (request !== undefined || host !== undefined) {
      const copy: HeaderBag = { ...call.headers };
      request?.(copy);
      if (host !== undefined) copy.host = host;
      headers = copy as IncomingHttpHeaders;
    }
    const answer = await next(headers === call.headers ? call : { ...call, headers });
    if (response === undefined) return answer;
    const answerHeaders: HeaderBag = { ...answer.headers };
    response(answerHeaders);
    return { ...answer, headers: answerHeaders as IncomingHttpHeaders };
  };
}
