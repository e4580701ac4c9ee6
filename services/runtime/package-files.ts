import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Reads a file of the installed package by walking up from this module: the source runs from
 * services/runtime/, the build from dist/services/runtime/, and the package ships schemas/ and
 * package.json next to dist/, so both layouts find them.
 */
function readPackageFile(relativePath: string): string {
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    try {
      return readFileSync(join(dir, relativePath), 'utf8');
    } catch {
      if (dirname(dir) === dir) throw new Error(`${relativePath} not found above ${start}`);
    }
  }
}

/** A file of the package's `schemas/` directory. */
export function readSchemaText(name: string): string {
  return readPackageFile(join('schemas', name));
}

let version: string | undefined;

/** The version in the package's package.json. */
export function packageVersion(): string {
  version ??= (JSON.parse(readPackageFile('package.json')) as { version: string }).version;
  return version;
}
