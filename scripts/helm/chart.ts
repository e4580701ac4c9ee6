/**
 * Offline checks of the Helm chart `helm/mesh-sidecar`, shared by its tests
 * (integration/helm/*.test.ts) and the `scripts/helm/check.ts` command: the pinned helm
 * (installed by install-helm.sh), `helm lint`, `helm template`, and validation of every rendered
 * object against the Kubernetes API schemas with kubernetes-models (no cluster needed).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const chartDir = join(repoRoot, 'helm/mesh-sidecar');
const installScript = join(repoRoot, 'scripts/helm/install-helm.sh');

/**
 * The Kubernetes version `helm template` renders for. helm's own default is v1.20, older than
 * the chart's kubeVersion; native sidecars need 1.29.
 */
export const KUBE_VERSION = '1.31.0';

/** A rendered Kubernetes object, as parsed from `helm template`. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(
  file: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { cwd: options.cwd ?? repoRoot, env: options.env ?? process.env, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        // A non-numeric code means the program did not run at all (ENOENT, EACCES).
        if (err && typeof err.code !== 'number') {
          reject(new Error(`${file}: ${err.message}`, { cause: err }));
          return;
        }
        resolve({ code: err ? Number(err.code) : 0, stdout, stderr });
      },
    );
  });
}

let helmPath: Promise<string> | undefined;

/**
 * Path of the pinned helm, installing it first when it is missing (install-helm.sh is
 * idempotent: a second call only checks the version). `HELM_BIN` overrides it.
 */
export function ensureHelm(): Promise<string> {
  helmPath ??= (async () => {
    if (process.env.HELM_BIN) return process.env.HELM_BIN;
    const result = await run('bash', [installScript]);
    if (result.code !== 0) {
      throw new Error(`install-helm.sh failed (exit ${result.code}):\n${result.stderr}`);
    }
    return result.stdout.trim().split('\n').pop()!;
  })();
  helmPath.catch(() => (helmPath = undefined));
  return helmPath;
}

export async function helm(args: string[]): Promise<RunResult> {
  return run(await ensureHelm(), args);
}

/** The CI scenarios: `helm/mesh-sidecar/ci/*-values.yaml`, as paths relative to the chart. */
export async function scenarios(): Promise<string[]> {
  return (await readdir(join(chartDir, 'ci')))
    .filter((name) => name.endsWith('-values.yaml'))
    .sort()
    .map((name) => `ci/${name}`);
}

export interface RenderOptions {
  /** Values files, relative to the chart directory (or absolute). */
  values?: string[];
  /** `--set-json` pairs, e.g. `{'sidecar.config': {log: {level: 'debug'}}}`. */
  setJson?: Record<string, unknown>;
  kubeVersion?: string;
}

function valuesArgs(options: RenderOptions): string[] {
  const args: string[] = [];
  for (const file of options.values ?? []) args.push('--values', join(chartDir, file));
  for (const [key, value] of Object.entries(options.setJson ?? {})) {
    args.push('--set-json', `${key}=${JSON.stringify(value)}`);
  }
  return args;
}

/** `helm lint --strict` with the given values. */
export function lintChart(options: RenderOptions = {}): Promise<RunResult> {
  return helm([
    'lint',
    chartDir,
    '--strict',
    '--kube-version',
    options.kubeVersion ?? KUBE_VERSION,
    ...valuesArgs(options),
  ]);
}

/** `helm template`; resolves with the raw result so callers can assert on refusals. */
export function templateChart(options: RenderOptions = {}): Promise<RunResult> {
  return helm([
    'template',
    'demo',
    chartDir,
    '--namespace',
    'shop',
    '--kube-version',
    options.kubeVersion ?? KUBE_VERSION,
    ...valuesArgs(options),
  ]);
}

/** Renders the chart and parses every object; throws with helm's message when it refuses. */
export async function renderChart(options: RenderOptions = {}): Promise<K8sObject[]> {
  const result = await templateChart(options);
  if (result.code !== 0) throw new Error(`helm template failed: ${result.stderr}`);
  return parseManifests(result.stdout);
}

export function parseManifests(text: string): K8sObject[] {
  const objects: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`invalid YAML in rendered manifests: ${doc.errors[0].message}`);
    const value = doc.toJS() as K8sObject | null;
    if (value !== null) objects.push(value);
  }
  return objects;
}

interface Validatable {
  validate(): void;
}
type ModelFactory = (object: K8sObject) => Validatable;

const models: Record<string, ModelFactory> = {
  'apps/v1/Deployment': (o) => new Deployment(o),
  'v1/ConfigMap': (o) => new ConfigMap(o),
  'v1/Service': (o) => new Service(o),
  'v1/ServiceAccount': (o) => new ServiceAccount(o),
  'networking.k8s.io/v1/NetworkPolicy': (o) => new NetworkPolicy(o),
  'policy/v1/PodDisruptionBudget': (o) => new PodDisruptionBudget(o),
  'autoscaling/v2/HorizontalPodAutoscaler': (o) => new HorizontalPodAutoscaler(o),
};

/**
 * Custom resources kubernetes-models has no schema for (@kubernetes-models/prometheus-operator is
 * not installed): only their basic shape is checked.
 */
const shapeOnly = new Set(['monitoring.coreos.com/v1/ServiceMonitor', 'monitoring.coreos.com/v1/PrometheusRule']);

/**
 * Validates one rendered object against the Kubernetes API schema of its kind and returns the
 * problems (empty when valid). kubernetes-models checks types, required fields, enums and
 * formats; like the API's OpenAPI document it does not reject unknown fields.
 */
export function validateObject(object: K8sObject): string[] {
  const problems: string[] = [];
  const where = `${object.kind ?? '?'}/${object.metadata?.name ?? '?'}`;
  if (typeof object.apiVersion !== 'string' || typeof object.kind !== 'string') {
    return [`${where}: apiVersion and kind must be strings`];
  }
  if (!object.metadata || typeof object.metadata.name !== 'string' || object.metadata.name === '') {
    problems.push(`${where}: metadata.name is missing`);
  } else if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(object.metadata.name) || object.metadata.name.length > 253) {
    problems.push(`${where}: metadata.name is not a valid DNS subdomain`);
  }
  const key = `${object.apiVersion}/${object.kind}`;
  const model = models[key];
  if (model) {
    try {
      model(object).validate();
    } catch (err) {
      problems.push(`${where}: ${err instanceof Error ? err.message : String(err)}`);
    }
  } else if (shapeOnly.has(key)) {
    if (typeof object.spec !== 'object' || object.spec === null) problems.push(`${where}: spec is missing`);
  } else {
    problems.push(`${where}: no schema known for ${key}; add it to scripts/helm/chart.ts`);
  }
  return problems;
}

/** The one object of that kind (and name, when given); throws when there is not exactly one. */
export function findObject<T = K8sObject>(objects: K8sObject[], kind: string, name?: string): T {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) {
    throw new Error(`expected one ${kind}${name === undefined ? '' : ` named ${name}`}, found ${found.length}`);
  }
  return found[0] as T;
}

/** The sidecar config text (`config.yaml`) of the rendered sidecar ConfigMap. */
export function sidecarConfigText(objects: K8sObject[]): string {
  const deployment = findObject<{ metadata: { name: string } }>(objects, 'Deployment');
  const configMap = objects.find(
    (o) => o.kind === 'ConfigMap' && o.metadata.name === deployment.metadata.name,
  ) as { data?: Record<string, string> } | undefined;
  const text = configMap?.data?.['config.yaml'];
  if (typeof text !== 'string') throw new Error('no ConfigMap with config.yaml rendered');
  return text;
}

/** Literal `value:` environment variables of the sidecar container (secret references left out). */
export function sidecarEnv(objects: K8sObject[]): Record<string, string> {
  const deployment = findObject<{
    spec: { template: { spec: { initContainers?: Container[]; containers: Container[] } } };
  }>(objects, 'Deployment');
  const pod = deployment.spec.template.spec;
  const sidecar = [...(pod.initContainers ?? []), ...pod.containers].find((c) => c.name === 'mesh-sidecar');
  if (!sidecar) throw new Error('no mesh-sidecar container rendered');
  const env: Record<string, string> = {};
  for (const variable of sidecar.env ?? []) {
    if (typeof variable.value === 'string') env[variable.name] = variable.value;
  }
  return env;
}

interface Container {
  name: string;
  env?: { name: string; value?: string }[];
}

/** Variables of this process that would change what check-config sees; the pod does not have them. */
const overridingVariables = [
  'MESH_CONFIG',
  'UPSTREAM_URL',
  'APP_URL',
  'KAFKA_BOOTSTRAP',
  'LOG_LEVEL',
  'OTEL_SERVICE_NAME',
  'OTEL_RESOURCE_ATTRIBUTES',
];

/**
 * Runs the real `mesh-sidecar check-config` (the TypeScript source, through tsx) on a config
 * text, with `env` as the sidecar's environment (pass sidecarEnv(objects) to check it the way
 * the pod would run it). Resolves with the exit code and output.
 */
export async function checkSidecarConfig(text: string, env: Record<string, string> = {}): Promise<RunResult> {
  const dir = await mkdtemp(join(tmpdir(), 'mesh-helm-check-'));
  try {
    const file = join(dir, 'config.yaml');
    await writeFile(file, text);
    const base = { ...process.env };
    for (const name of overridingVariables) delete base[name];
    return await run(
      process.execPath,
      ['--import', 'tsx', join(repoRoot, 'services/sidecar/bin.ts'), 'check-config', file],
      { env: { ...base, ...env } },
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
