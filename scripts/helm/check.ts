/**
 * `npx tsx scripts/helm/check.ts`: the chart's offline check, by hand or in CI. For every
 * `helm/mesh-sidecar/ci/*-values.yaml`: `helm lint --strict`, `helm template`, every rendered
 * object validated against the Kubernetes API schemas, and the ConfigMap's sidecar config run
 * through `mesh-sidecar check-config`. Installs the pinned helm when missing. Exit 0 when all pass.
 * The same checks, with more assertions, run in `npm test` (integration/helm/).
 */
import {
  checkSidecarConfig,
  lintChart,
  renderChart,
  scenarios,
  sidecarConfigText,
  sidecarEnv,
  validateObject,
} from './chart.js';

let failures = 0;
const fail = (scenario: string, message: string) => {
  failures++;
  process.stdout.write(`FAIL ${scenario}: ${message}\n`);
};

for (const scenario of await scenarios()) {
  const before = failures;
  const lint = await lintChart({ values: [scenario] });
  if (lint.code !== 0) {
    fail(scenario, `helm lint:\n${lint.stdout}${lint.stderr}`);
    continue;
  }
  let objects;
  try {
    objects = await renderChart({ values: [scenario] });
  } catch (err) {
    fail(scenario, String(err));
    continue;
  }
  for (const object of objects) for (const problem of validateObject(object)) fail(scenario, problem);
  const check = await checkSidecarConfig(sidecarConfigText(objects), sidecarEnv(objects));
  if (check.code !== 0 || check.stdout.trim() !== 'ok') {
    fail(scenario, `check-config exit ${check.code}: ${check.stdout}${check.stderr}`);
  }
  if (failures === before) {
    process.stdout.write(
      `ok ${scenario}: helm lint, ${objects.length} objects rendered and valid, sidecar config passes check-config\n`,
    );
  }
}
process.exitCode = failures === 0 ? 0 : 1;
