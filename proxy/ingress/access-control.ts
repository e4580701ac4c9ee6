/**
 * Ingress access control besides JWT (light-proxy parity): IP allow/deny lists (CIDR, node:net
 * BlockList), API keys (header or query; inline or from a file) and HTTP basic auth (users from a
 * file, `sha256:<hex>` or plain passwords). Secrets are compared in constant time: both sides are
 * hashed to SHA-256 and compared with crypto.timingSafeEqual, so neither length nor content leaks.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { MeshError } from '../../services/runtime/errors.js';
import type { IngressContext } from './context.js';

function digest(value: string | Buffer): Buffer {
  return createHash('sha256').update(value).digest();
}

/** Constant-time membership: every stored digest is compared, whatever matched first. */
function containsDigest(stored: readonly Buffer[], candidate: Buffer): boolean {
  let found = false;
  for (const entry of stored) found = timingSafeEqual(entry, candidate) || found;
  return found;
}

function addBlock(list: BlockList, cidr: string): void {
  const [address, bits] = cidr.split('/');
  const type = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined;
  if (type === undefined) throw new Error(`"${cidr}" is not an IP address or CIDR block`);
  if (bits === undefined) list.addAddress(address, type);
  else {
    const prefix = Number(bits);
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > (type === 'ipv4' ? 32 : 128)) {
      throw new Error(`"${cidr}" has an invalid prefix length`);
    }
    list.addSubnet(address, prefix, type);
  }
}

/** `::ffff:127.0.0.1` (a v4 client on a dual-stack socket) is checked as `127.0.0.1`. */
function clientAddress(ctx: IngressContext): { address: string; type: 'ipv4' | 'ipv6' } | undefined {
  let address = ctx.clientAddress;
  if (address === undefined) return undefined;
  if (address.startsWith('::ffff:') && isIPv4(address.slice(7))) address = address.slice(7);
  return { address, type: isIPv4(address) ? 'ipv4' : 'ipv6' };
}

export class AddressFilter {
  private readonly allow: BlockList | undefined;
  private readonly deny: BlockList | undefined;

  constructor(allow: readonly string[] | undefined, deny: readonly string[] | undefined) {
    if (allow !== undefined) {
      this.allow = new BlockList();
      for (const cidr of allow) addBlock(this.allow, cidr);
    }
    if (deny !== undefined) {
      this.deny = new BlockList();
      for (const cidr of deny) addBlock(this.deny, cidr);
    }
  }

  /** Throws 403 when the peer is denied, or not allowed when an allow list exists. */
  check(ctx: IngressContext): void {
    const client = clientAddress(ctx);
    const refused =
      client === undefined ||
      (this.deny?.check(client.address, client.type) ?? false) ||
      (this.allow !== undefined && !this.allow.check(client.address, client.type));
    if (refused) throw new MeshError('MESH_FORBIDDEN', 'client address is not allowed');
  }
}

/** Lines of a keys/users file without blanks and `#` comments. */
async function fileLines(file: string): Promise<string[]> {
  const text = await readFile(file, 'utf8');
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

export interface ApiKeyOptions {
  readonly header: string;
  readonly query?: string | undefined;
  readonly keys?: readonly string[] | undefined;
  readonly keysFile?: string | undefined;
}

export class ApiKeyChecker {
  private constructor(
    private readonly header: string,
    private readonly query: string | undefined,
    private readonly digests: readonly Buffer[],
  ) {}

  static async create(options: ApiKeyOptions, resolvePath: (file: string) => string): Promise<ApiKeyChecker> {
    const keys = [...(options.keys ?? [])];
    if (options.keysFile !== undefined) keys.push(...(await fileLines(resolvePath(options.keysFile))));
    if (keys.length === 0) throw new Error('no API keys configured (set keys or keysFile)');
    return new ApiKeyChecker(options.header.toLowerCase(), options.query, keys.map(digest));
  }

  authenticate(ctx: IngressContext): void {
    let presented = ctx.req.headers[this.header];
    if (Array.isArray(presented)) presented = presented[0];
    if (presented === undefined && this.query !== undefined && ctx.query !== '') {
      presented = new URLSearchParams(ctx.query).get(this.query) ?? undefined;
    }
    if (presented === undefined || presented === '') {
      throw new MeshError('MESH_UNAUTHORIZED', 'missing API key', {
        headers: { 'www-authenticate': `ApiKey header="${this.header}"` },
      });
    }
    if (!containsDigest(this.digests, digest(presented))) {
      throw new MeshError('MESH_UNAUTHORIZED', 'invalid API key', {
        headers: { 'www-authenticate': `ApiKey header="${this.header}"` },
      });
    }
  }
}

interface BasicUser {
  readonly name: Buffer;
  /** SHA-256 of the password. */
  readonly password: Buffer;
}

export class BasicAuthChecker {
  private readonly challenge: string;

  private constructor(
    private readonly users: readonly BasicUser[],
    realm: string,
  ) {
    this.challenge = `Basic realm="${realm.replace(/["\\]/g, '')}", charset="UTF-8"`;
  }

  static async create(
    options: { usersFile: string; realm: string },
    resolvePath: (file: string) => string,
  ): Promise<BasicAuthChecker> {
    const users = (await fileLines(resolvePath(options.usersFile))).map((line) => {
      const colon = line.indexOf(':');
      if (colon <= 0) throw new Error(`users file line "${line.slice(0, 20)}…" is not user:password`);
      const password = line.slice(colon + 1);
      const hashed = /^sha256:[0-9a-fA-F]{64}$/.test(password);
      return {
        name: digest(line.slice(0, colon)),
        password: hashed ? Buffer.from(password.slice(7), 'hex') : digest(password),
      };
    });
    if (users.length === 0) throw new Error('the users file has no users');
    return new BasicAuthChecker(users, options.realm);
  }

  authenticate(ctx: IngressContext): void {
    const header = ctx.req.headers.authorization;
    const refuse = (detail: string) =>
      new MeshError('MESH_UNAUTHORIZED', detail, { headers: { 'www-authenticate': this.challenge } });
    if (header === undefined || !/^basic /i.test(header)) throw refuse('missing basic credentials');
    const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw refuse('malformed basic credentials');
    const name = digest(decoded.slice(0, colon));
    const password = digest(decoded.slice(colon + 1));
    let ok = false;
    for (const user of this.users) {
      // Both comparisons always run: no early exit on the user name.
      const nameMatches = timingSafeEqual(user.name, name);
      const passwordMatches = timingSafeEqual(user.password, password);
      ok = (nameMatches && passwordMatches) || ok;
    }
    if (!ok) throw refuse('invalid basic credentials');
  }
}
