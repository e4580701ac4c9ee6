import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule, { type FormatsPlugin } from 'ajv-formats';
import type { FieldError } from '../../services/runtime/errors.js';

const addFormats = addFormatsModule as unknown as FormatsPlugin;

/**
 * The JSON Schemas of `bridge.topics.<name>.schema`, compiled once at start-up. A file that is
 * missing or not a valid schema fails start-up with its path in the message.
 */
export class TopicSchemas {
  private readonly validators = new Map<string, ValidateFunction>();

  constructor(topics: Readonly<Record<string, { readonly schema?: string } | undefined>>, baseDir: string) {
    for (const [topic, settings] of Object.entries(topics)) {
      if (!settings?.schema) continue;
      const file = isAbsolute(settings.schema) ? settings.schema : resolve(baseDir, settings.schema);
      let schema: Record<string, unknown>;
      try {
        schema = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      } catch (err) {
        throw new Error(`bridge.topics.${topic}.schema: cannot read ${file}: ${(err as Error).message}`);
      }
      const draft2020 = typeof schema.$schema === 'string' && schema.$schema.includes('2020-12');
      const ajv = draft2020
        ? new Ajv2020({ allErrors: true, strict: false })
        : new Ajv({ allErrors: true, strict: false });
      addFormats(ajv);
      try {
        this.validators.set(topic, ajv.compile(schema));
      } catch (err) {
        throw new Error(
          `bridge.topics.${topic}.schema: ${file} is not a valid JSON Schema: ${(err as Error).message}`,
        );
      }
    }
  }

  has(topic: string): boolean {
    return this.validators.has(topic);
  }

  /** Problems of the record at `index`, with JSON pointers into the request body. */
  check(topic: string, index: number, value: unknown): FieldError[] {
    const validate = this.validators.get(topic);
    if (!validate || validate(value)) return [];
    return (validate.errors ?? []).map((error) => ({
      in: 'body' as const,
      path: `/records/${index}/value${error.instancePath}`,
      message:
        error.keyword === 'additionalProperties'
          ? `unknown property "${String((error.params as { additionalProperty?: string }).additionalProperty)}"`
          : (error.message ?? 'is invalid'),
    }));
  }
}
