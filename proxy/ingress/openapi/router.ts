/**
 * Matches request paths to OpenAPI path templates with a segment trie: literal segments win over
 * templated ones (`/pets/mine` before `/pets/{id}`), as the OpenAPI spec asks, and a lookup costs
 * one map access per segment in the common case.
 */
export interface RouteMatch<T> {
  readonly template: string;
  readonly value: T;
  /** Path parameters, still percent-encoded. */
  readonly params: Record<string, string>;
}

interface PatternChild<T> {
  readonly regex: RegExp;
  readonly names: readonly string[];
  readonly node: TrieNode<T>;
}

interface TrieNode<T> {
  readonly literal: Map<string, TrieNode<T>>;
  param: { name: string; node: TrieNode<T> } | undefined;
  readonly patterns: PatternChild<T>[];
  leaf: { template: string; value: T } | undefined;
}

function newNode<T>(): TrieNode<T> {
  return { literal: new Map(), param: undefined, patterns: [], leaf: undefined };
}

const WHOLE_PARAM = /^\{([^{}]+)\}$/;

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export class PathRouter<T> {
  private readonly root = newNode<T>();

  add(template: string, value: T): void {
    let node = this.root;
    for (const segment of template.split('/').slice(1)) {
      const whole = WHOLE_PARAM.exec(segment);
      if (whole) {
        node.param ??= { name: whole[1], node: newNode<T>() };
        node = node.param.node;
      } else if (segment.includes('{')) {
        const names: string[] = [];
        const source = segment
          .split(/(\{[^{}]+\})/)
          .map((part) => {
            const param = WHOLE_PARAM.exec(part);
            if (!param) return escapeRegex(part);
            names.push(param[1]);
            return '([^/]+)';
          })
          .join('');
        const existing = node.patterns.find((p) => p.regex.source === `^${source}$`);
        if (existing) node = existing.node;
        else {
          const child = { regex: new RegExp(`^${source}$`), names, node: newNode<T>() };
          node.patterns.push(child);
          node = child.node;
        }
      } else {
        let next = node.literal.get(segment);
        if (!next) {
          next = newNode<T>();
          node.literal.set(segment, next);
        }
        node = next;
      }
    }
    node.leaf = { template, value };
  }

  /** `path` is the raw request path without the query string. */
  match(path: string): RouteMatch<T> | undefined {
    const segments = path.split('/').slice(1);
    const params: Record<string, string> = {};
    const leaf = this.walk(this.root, segments, 0, params);
    return leaf ? { template: leaf.template, value: leaf.value, params } : undefined;
  }

  private walk(
    node: TrieNode<T>,
    segments: readonly string[],
    index: number,
    params: Record<string, string>,
  ): { template: string; value: T } | undefined {
    if (index === segments.length) return node.leaf;
    const segment = segments[index];
    const literal = node.literal.get(segment);
    if (literal) {
      const found = this.walk(literal, segments, index + 1, params);
      if (found) return found;
    }
    for (const pattern of node.patterns) {
      const match = pattern.regex.exec(segment);
      if (!match) continue;
      const found = this.walk(pattern.node, segments, index + 1, params);
      if (found) {
        pattern.names.forEach((name, i) => (params[name] = match[i + 1]!));
        return found;
      }
    }
    if (node.param && segment !== '') {
      const found = this.walk(node.param.node, segments, index + 1, params);
      if (found) {
        params[node.param.name] = segment;
        return found;
      }
    }
    return undefined;
  }
}
