import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ValidateFunction } from 'ajv';
import { parse } from 'yaml';
import type { FieldError } from '../services/runtime/errors.js';
import { readSchemaText } from '../services/runtime/package-files.js';

const SCHEMA_NAMES = [
  'ProducerRecordList',
  'PartitionRecordList',
  'NewTopic',
  // Pull consumers.
  'Consumer',
  'Topics',
  'Partitions',
  'OffsetCommitSeekList',
  // light-mesh compatibility.
  'LightmeshProduceRequest',
] as const;

export type BridgeSchemaName = (typeof SCHEMA_NAMES)[number];

/**
 * The bridge's own OpenAPI document (schemas/bridge.openapi.yaml): served at GET /openapi and
 * the source of the request body schemas the bridge validates against, compiled once.
 */
export class BridgeOpenApi {
  readonly document: Record<string, unknown>;
  private readonly validators = new Map<BridgeSchemaName, ValidateFunction>();

  constructor() {
    this.document = parse(readSchemaText('bridge.openapi.yaml')) as Record<string, unknown>;
    const components = (this.document.components as { schemas: Record<string, unknown> }).schemas;
    // OpenAPI 3.1 schemas are JSON Schema 2020-12; only their $refs point into the OpenAPI document.
    const defs = JSON.parse(
      JSON.stringify(components).replaceAll('#/components/schemas/', 'urn:mesh-sidecar:bridge#/$defs/'),
    ) as Record<string, unknown>;
    const ajv = new Ajv2020({ allErrors: true, strict: false });
    ajv.addSchema({ $id: 'urn:mesh-sidecar:bridge', $defs: defs });
    for (const name of SCHEMA_NAMES) {
      this.validators.set(name, ajv.compile({ $ref: `urn:mesh-sidecar:bridge#/$defs/${name}` }));
    }
  }

  /** Every problem of `body` against the named schema, as body field errors. */
  check(name: BridgeSchemaName, body: unknown): FieldError[] {
    const validate = this.validators.get(name)!;
    if (validate(body)) return [];
    return (validate.errors ?? []).map((error) => {
      const params = error.params as { additionalProperty?: string; missingProperty?: string };
      if (error.keyword === 'additionalProperties') {
        return {
          in: 'body' as const,
          path: `${error.instancePath}/${params.additionalProperty ?? ''}`,
          message: `unknown property "${params.additionalProperty ?? ''}"`,
        };
      }
      if (error.keyword === 'required') {
        return {
          in: 'body' as const,
          path: `${error.instancePath}/${params.missingProperty ?? ''}`,
          message: 'is required',
        };
      }
      return { in: 'body' as const, path: error.instancePath || '/', message: error.message ?? 'is invalid' };
    });
  }
}
