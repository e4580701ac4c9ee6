/**
 * Header rules (light-proxy / Envoy `request_headers_to_add` parity): remove, then set, then add,
 * on a plain header object. Compiled once from config; an absent or empty rule compiles to
 * `undefined`, so callers can leave it out of the request path entirely.
 */
import type { Config } from '../../services/runtime/config.js';

export type HeaderRulesConfig = NonNullable<NonNullable<Config['ingress']['routes'][number]>['headers']>;
type HeaderEditsConfig = NonNullable<HeaderRulesConfig['request']>;

export type HeaderBag = Record<string, string | string[] | number | undefined>;

/** Applies one direction's edits to a header object (lower-case names) in place. */
export type HeaderEdit = (headers: HeaderBag) => void;

export interface CompiledHeaderRules {
  readonly request: HeaderEdit | undefined;
  readonly response: HeaderEdit | undefined;
  readonly host: string | undefined;
}

function entries(record: Readonly<Record<string, string | undefined>> | undefined): [string, string][] {
  return Object.entries(record ?? {}).flatMap(([name, value]) =>
    value === undefined ? [] : [[name.toLowerCase(), value] as [string, string]],
  );
}

export function compileHeaderEdits(config: HeaderEditsConfig | undefined): HeaderEdit | undefined {
  if (config === undefined) return undefined;
  const remove = (config.remove ?? []).map((name) => name.toLowerCase());
  const set = entries(config.set);
  const add = entries(config.add);
  if (remove.length + set.length + add.length === 0) return undefined;
  return (headers) => {
    for (const name of remove) delete headers[name];
    for (const [name, value] of set) headers[name] = value;
    for (const [name, value] of add) {
      const existing = headers[name];
      if (existing === undefined) headers[name] = value;
      else if (Array.isArray(existing)) headers[name] = [...existing, value];
      else headers[name] = [String(existing), value];
    }
  };
}

export function compileHeaderRules(config: HeaderRulesConfig | undefined): CompiledHeaderRules | undefined {
  if (config === undefined) return undefined;
  const request = compileHeaderEdits(config.request);
  const response = compileHeaderEdits(config.response);
  if (request === undefined && response === undefined && config.host === undefined) return undefined;
  return { request, response, host: config.host };
}
