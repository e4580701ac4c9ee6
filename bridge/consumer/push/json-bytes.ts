/**
 * JSON syntax check on UTF-8 bytes, without building values: whether `JSON.parse` would accept the
 * text of `bytes` (RFC 8259, as ECMAScript's JSON.parse). The caller checks that the bytes are
 * UTF-8 (`isUtf8`): here bytes of 0x80 and up are only accepted inside strings, where JSON allows
 * any character but controls, `"` and `\`. The event serializer uses it to copy a JSON value into
 * `data` as it is, at a quarter of the cost of parsing it into objects (and no garbage).
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;

const isDigit = (c: number | undefined) => c !== undefined && c >= ZERO && c <= NINE;
const isHex = (c: number | undefined) =>
  c !== undefined && ((c >= ZERO && c <= NINE) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66));

/** Characters that may follow a backslash: " \ / b f n r t (u is checked on its own). */
const SIMPLE_ESCAPES = new Set([QUOTE, BACKSLASH, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74]);

function skipWhitespace(bytes: Uint8Array, i: number): number {
  for (;;) {
    const c = bytes[i];
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return i;
    i += 1;
  }
}

/** The index after the string starting at `i` (a quote), or -1. */
function endOfString(bytes: Uint8Array, i: number): number {
  if (bytes[i] !== QUOTE) return -1;
  const n = bytes.length;
  i += 1;
  while (i < n) {
    const c = bytes[i];
    // Most bytes of a string are plain: neither a quote, a backslash nor a control.
    if (c > QUOTE && c !== BACKSLASH) {
      i += 1;
      continue;
    }
    if (c === QUOTE) return i + 1;
    if (c < 0x20) return -1;
    if (c === BACKSLASH) {
      const escaped = bytes[i + 1];
      if (escaped === 0x75) {
        if (!(isHex(bytes[i + 2]) && isHex(bytes[i + 3]) && isHex(bytes[i + 4]) && isHex(bytes[i + 5])))
          return -1;
        i += 6;
      } else if (escaped !== undefined && SIMPLE_ESCAPES.has(escaped)) {
        i += 2;
      } else {
        return -1;
      }
    } else {
      i += 1;
    }
  }
  return -1;
}

/** The index after the number starting at `i`, or -1. */
function endOfNumber(bytes: Uint8Array, i: number): number {
  if (bytes[i] === MINUS) i += 1;
  if (bytes[i] === ZERO) i += 1;
  else if (isDigit(bytes[i])) while (isDigit(bytes[i])) i += 1;
  else return -1;
  if (bytes[i] === DOT) {
    i += 1;
    if (!isDigit(bytes[i])) return -1;
    while (isDigit(bytes[i])) i += 1;
  }
  if (bytes[i] === 0x65 || bytes[i] === 0x45) {
    i += 1;
    if (bytes[i] === PLUS || bytes[i] === MINUS) i += 1;
    if (!isDigit(bytes[i])) return -1;
    while (isDigit(bytes[i])) i += 1;
  }
  return i;
}

function endOfLiteral(bytes: Uint8Array, i: number, literal: readonly number[]): number {
  for (let k = 0; k < literal.length; k++) if (bytes[i + k] !== literal[k]) return -1;
  return i + literal.length;
}

const TRUE = [...'true'].map((c) => c.charCodeAt(0));
const FALSE = [...'false'].map((c) => c.charCodeAt(0));
const NULL = [...'null'].map((c) => c.charCodeAt(0));

/** After an object's `{` or `,`: a key, a colon; the index of the member's value, or -1. */
function afterKey(bytes: Uint8Array, i: number): number {
  i = endOfString(bytes, i);
  if (i < 0) return -1;
  i = skipWhitespace(bytes, i);
  if (bytes[i] !== COLON) return -1;
  return skipWhitespace(bytes, i + 1);
}

/** Whether `bytes` (UTF-8) is one JSON text: a value with optional whitespace around it. */
export function isJsonBytes(bytes: Uint8Array): boolean {
  const n = bytes.length;
  /** Open containers, innermost last: `{` or `[`. */
  const open: number[] = [];
  let i = skipWhitespace(bytes, 0);
  for (;;) {
    // A value starts at i.
    const c = bytes[i];
    if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      const close = c === OPEN_OBJECT ? CLOSE_OBJECT : CLOSE_ARRAY;
      i = skipWhitespace(bytes, i + 1);
      if (bytes[i] === close) {
        i += 1;
      } else {
        open.push(c);
        if (c === OPEN_OBJECT) {
          i = afterKey(bytes, i);
          if (i < 0) return false;
        }
        continue;
      }
    } else if (c === QUOTE) {
      i = endOfString(bytes, i);
    } else if (c === MINUS || isDigit(c)) {
      i = endOfNumber(bytes, i);
    } else if (c === 0x74) {
      i = endOfLiteral(bytes, i, TRUE);
    } else if (c === 0x66) {
      i = endOfLiteral(bytes, i, FALSE);
    } else if (c === 0x6e) {
      i = endOfLiteral(bytes, i, NULL);
    } else {
      return false;
    }
    if (i < 0) return false;
    // After a value: close containers until a comma starts the next value, or the text ends.
    for (;;) {
      i = skipWhitespace(bytes, i);
      if (open.length === 0) return i === n;
      const container = open[open.length - 1];
      const next = bytes[i];
      if (next === COMMA) {
        i = skipWhitespace(bytes, i + 1);
        if (container === OPEN_OBJECT) {
          i = afterKey(bytes, i);
          if (i < 0) return false;
        }
        break;
      }
      if (next !== (container === OPEN_OBJECT ? CLOSE_OBJECT : CLOSE_ARRAY)) return false;
      open.pop();
      i += 1;
    }
  }
}
