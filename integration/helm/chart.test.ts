/**
 * The Helm chart, checked offline with the pinned helm (installed on first use by
 * scripts/helm/install-helm.sh): lint, rendering of every ci/*-values.yaml scenario, validation of
 * every rendered object against the Kubernetes API schemas (kubernetes-models), the sidecar config
 * in the ConfigMap through the real `mesh-sidecar check-config`, and assertions on what the
 * rendered pod does.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import {
  chartDir,
  checkSidecarConfig,
  ensureHelm,
  findObject,
  lintChart,
  renderChart,
  scenarios,
  sidecarConfigText,
  sidecarEnv,
  templateChart,
  validateObject,
  type K8sObject,
} from '../../scripts/helm/chart.js';

interface Probe {
  httpGet?: { path: string; port: string | number };
}
interface Container {
  name: string;
  image: string;
  restartPolicy?: string;
  ports?: { name?: string; containerPort: number }[];
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
  startupProbe?: Probe;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
  securityContext?: Record<string, unknown>;
  volumeMounts?: { name: string; mountPath: string }[];
}
interface PodSpec {
  initContainers?: Container[];
  containers: Container[];
  securityContext?: Record<string, unknown>;
  shareProcessNamespace?: boolean;
  terminationGracePeriodSeconds?: number;
  volumes?: { name: string }[];
}
interface Deployment {
  spec: { template: { metadata: { annotations?: Record<string, string> }; spec: PodSpec } };
}
interface NetworkPolicyPort {
  port: number;
  protocol: string;
}
interface NetworkPolicy {
  spec: {
    policyTypes: string[];
    ingress: { ports: NetworkPolicyPort[]; from?: unknown[] }[];
    egress: { ports: NetworkPolicyPort[]; to?: unknown[] }[];
  };
}

const minimal = ['ci/minimal-values.yaml'];

function pod(objects: K8sObject[]): PodSpec {
  return findObject<Deployment>(objects, 'Deployment').spec.template.spec;
}
function allContainers(spec: PodSpec): Container[] {
  return [...(spec.initContainers ?? []), ...spec.containers];
}
function container(spec: PodSpec, name: string): Container {
  const found = allContainers(spec).filter((c) => c.name === name);
  assert.equal(found.length, 1, `one container named ${name}`);
  return found[0];
}
function envOf(c: Container): Record<string, string | undefined> {
  return Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));
}
/** The container port a probe's named port resolves to. */
function probePort(c: Container, probe: Probe | undefined): number | undefined {
  const port = probe?.httpGet?.port;
  return typeof port === 'number' ? port : c.ports?.find((p) => p.name === port)?.containerPort;
}
async function configChecksum(setJson: Record<string, unknown>): Promise<string | undefined> {
  const objects = await renderChart({ values: minimal, setJson });
  return findObject<Deployment>(objects, 'Deployment').spec.template.metadata.annotations?.['checksum/config'];
}

describe('helm chart helm/mesh-sidecar', function () {
  // The first run builds helm from source (a minute or two); later runs find it in .cache/helm.
  this.timeout(60_000);

  before(async function () {
    this.timeout(15 * 60_000);
    try {
      await ensureHelm();
    } catch (err) {
      // Only when helm truly cannot be installed (no Go toolchain, no module proxy).
      console.warn(`skipping the Helm chart tests: ${err instanceof Error ? err.message : String(err)}`);
      this.skip();
    }
  });

  it('has the three CI scenarios', async () => {
    assert.deepEqual(await scenarios(), [
      'ci/full-values.yaml',
      'ci/minimal-values.yaml',
      'ci/native-off-values.yaml',
    ]);
  });

  describe('every ci/*-values.yaml scenario', () => {
    for (const scenario of ['ci/full-values.yaml', 'ci/minimal-values.yaml', 'ci/native-off-values.yaml']) {
      it(`${scenario}: helm lint --strict passes, every object is valid, check-config says ok`, async () => {
        const lint = await lintChart({ values: [scenario] });
        assert.equal(lint.code, 0, `helm lint failed:\n${lint.stdout}${lint.stderr}`);
        assert.match(lint.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);

        const objects = await renderChart({ values: [scenario] });
        assert.ok(objects.length >= 4, 'at least Deployment, ConfigMap, Service, ServiceAccount');
        const problems = objects.flatMap(validateObject);
        assert.deepEqual(problems, []);

        const check = await checkSidecarConfig(sidecarConfigText(objects), sidecarEnv(objects));
        assert.equal(check.code, 0, `check-config: ${check.stdout}${check.stderr}`);
        assert.equal(check.stdout.trim(), 'ok');
      });
    }

    it('the full scenario renders every optional object', async () => {
      const objects = await renderChart({ values: ['ci/full-values.yaml'] });
      const kinds = objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
      assert.deepEqual(kinds, [
        'ConfigMap/orders',
        'ConfigMap/orders-dashboard',
        'ConfigMap/orders-reloader',
        'Deployment/orders',
        'HorizontalPodAutoscaler/orders',
        'NetworkPolicy/orders',
        'PodDisruptionBudget/orders',
        'PrometheusRule/orders',
        'Service/orders',
        'Service/orders-metrics',
        'ServiceAccount/orders',
        'ServiceMonitor/orders',
      ]);
      // The ServiceMonitor (a CRD kind, shape-checked only) scrapes the metrics Service's admin port.
      const monitor = findObject<{ spec: { selector: { matchLabels: Record<string, string> }; endpoints: { port: string; path: string }[] } }>(
        objects,
        'ServiceMonitor',
      );
      const metrics = findObject<{ metadata: { labels: Record<string, string> }; spec: { ports: { name: string; port: number }[] } }>(
        objects,
        'Service',
        'orders-metrics',
      );
      for (const [label, value] of Object.entries(monitor.spec.selector.matchLabels)) {
        assert.equal(metrics.metadata.labels[label], value, `metrics Service carries ${label}`);
      }
      assert.deepEqual(monitor.spec.endpoints.map((e) => [e.port, e.path]), [['admin', '/metrics']]);
      assert.deepEqual(metrics.spec.ports.map((p) => [p.name, p.port]), [['admin', 15000]]);
    });
  });

  describe('the sidecar config in the ConfigMap', () => {
    it('is sidecar.config merged over the chart defaults', async () => {
      const objects = await renderChart({
        values: minimal,
        setJson: { 'sidecar.config': { ingress: { timeoutMs: 1234 }, log: { level: 'warn' } } },
      });
      assert.deepEqual(parse(sidecarConfigText(objects)), {
        admin: { port: 15000 },
        ingress: { port: 15006, target: 'http://127.0.0.1:8080', timeoutMs: 1234 },
        log: { level: 'warn' },
      });
    });

    it('a wrong key or value in sidecar.config renders, and check-config refuses it with its JSON pointer', async () => {
      const objects = await renderChart({
        values: minimal,
        setJson: { 'sidecar.config': { ingress: { timeoutMs: 0 }, admin: { prot: 1 } } },
      });
      const check = await checkSidecarConfig(sidecarConfigText(objects), sidecarEnv(objects));
      assert.equal(check.code, 2, check.stdout + check.stderr);
      assert.notEqual(check.stdout.trim(), 'ok');
      assert.match(check.stdout, /^\/ingress\/timeoutMs: /m);
      assert.match(check.stdout, /^\/admin(\/prot)?: .*prot/m);
    });
  });

  describe('values.schema.json', () => {
    it('refuses a port given as a string, naming the value', async () => {
      const result = await templateChart({ values: minimal, setJson: { 'app.port': '8080' } });
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /values don't meet the specifications of the schema/);
      assert.match(result.stderr, /\/app\/port.*got string, want integer/);
    });

    it('refuses an unknown key, naming it', async () => {
      const result = await templateChart({ values: minimal, setJson: { 'sidecar.nativ': false } });
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /\/sidecar.*additional properties 'nativ' not allowed/);
      const lint = await lintChart({ values: minimal, setJson: { 'sidecar.nativ': false } });
      assert.notEqual(lint.code, 0, 'helm lint refuses it too');
    });

    it('refuses a service port out of range and an unknown service type', async () => {
      const port = await templateChart({ values: minimal, setJson: { 'service.port': 70000 } });
      assert.match(port.stderr, /\/service\/port/);
      const type = await templateChart({ values: minimal, setJson: { 'service.type': 'Ingress' } });
      assert.match(type.stderr, /\/service\/type/);
    });

    it('the app image is required, with a clear message', async () => {
      const result = await templateChart({});
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /app\.image\.repository is required/);
    });

    it('every value in values.yaml is documented with a `# --` comment (on it or a parent)', async () => {
      const lines = (await readFile(join(chartDir, 'values.yaml'), 'utf8')).split('\n');
      const undocumented: string[] = [];
      // Stack of open keys: indentation, dotted path, documented.
      const stack: { indent: number; path: string; documented: boolean }[] = [];
      let commentHasDoc = false;
      for (const line of lines) {
        const comment = /^\s*#/.exec(line);
        if (comment) {
          if (/^\s*# --/.test(line)) commentHasDoc = true;
          continue;
        }
        const key = /^(\s*)([A-Za-z0-9_]+):(.*)$/.exec(line);
        if (!key) {
          if (line.trim() === '') commentHasDoc = false;
          continue;
        }
        const indent = key[1].length;
        while (stack.length > 0 && stack.at(-1)!.indent >= indent) stack.pop();
        const parent = stack.at(-1);
        const path = parent ? `${parent.path}.${key[2]}` : key[2];
        const documented = commentHasDoc || (parent?.documented ?? false);
        commentHasDoc = false;
        const isLeaf = key[3].trim() !== '';
        if (isLeaf && !documented) undocumented.push(path);
        stack.push({ indent, path, documented });
      }
      assert.deepEqual(undocumented, []);
    });
  });

  describe('the pod', () => {
    it('native mode: the sidecar is the first init container with restartPolicy Always, the app a regular container', async () => {
      const spec = pod(await renderChart({ values: minimal }));
      assert.equal(spec.initContainers?.[0]?.name, 'mesh-sidecar');
      assert.equal(spec.initContainers[0].restartPolicy, 'Always');
      assert.deepEqual(spec.containers.map((c) => c.name), ['app']);
      assert.equal(spec.containers[0].image, 'ghcr.io/example/orders:1.4.2');
      assert.equal(spec.containers[0].restartPolicy, undefined);
    });

    it('native mode: user init containers run after the sidecar has started', async () => {
      const spec = pod(
        await renderChart({
          values: minimal,
          setJson: { initContainers: [{ name: 'migrate', image: 'ghcr.io/example/migrate:1' }] },
        }),
      );
      assert.deepEqual(spec.initContainers?.map((c) => c.name), ['mesh-sidecar', 'migrate']);
    });

    it('native off: the sidecar is a second container whose preStop waits, and nothing is an init container', async () => {
      const spec = pod(await renderChart({ values: ['ci/native-off-values.yaml'] }));
      assert.equal(spec.initContainers, undefined);
      assert.deepEqual(spec.containers.map((c) => c.name).sort(), ['app', 'mesh-sidecar']);
      const sidecar = container(spec, 'mesh-sidecar');
      assert.equal(sidecar.restartPolicy, undefined);
      assert.deepEqual(sidecar.lifecycle?.preStop?.exec?.command, ['node', '-e', 'setTimeout(() => {}, 5000)']);
      assert.equal(spec.terminationGracePeriodSeconds, 30);
    });

    it('native mode is refused on Kubernetes older than 1.29; native off renders there', async () => {
      const refused = await templateChart({ values: minimal, kubeVersion: '1.28.5' });
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /sidecar\.native=true needs Kubernetes 1\.29.*set sidecar\.native=false/);
      const objects = await renderChart({ values: ['ci/native-off-values.yaml'], kubeVersion: '1.28.5' });
      assert.deepEqual(objects.flatMap(validateObject), []);
    });

    it('refuses a termination grace period shorter than the sidecar shutdown', async () => {
      const result = await templateChart({
        values: minimal,
        setJson: { terminationGracePeriodSeconds: 20, 'sidecar.config': { shutdown: { drainDelayMs: 5000, timeoutMs: 20000 } } },
      });
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /terminationGracePeriodSeconds \(20 s\) is shorter than the sidecar's shutdown/);
      // Without the preStop sleep (native mode) 25 s is enough.
      await renderChart({ values: minimal, setJson: { terminationGracePeriodSeconds: 25 } });
      const nonNative = await templateChart({
        values: minimal,
        setJson: { terminationGracePeriodSeconds: 25, 'sidecar.native': false },
      });
      assert.match(nonNative.stderr, /preStopSleepSeconds 10 s = 35000 ms/);
    });

    for (const scenario of ['ci/minimal-values.yaml', 'ci/native-off-values.yaml', 'ci/full-values.yaml']) {
      it(`${scenario}: probes on the admin port; startup and liveness /healthz, readiness /readyz`, async () => {
        const spec = pod(await renderChart({ values: [scenario] }));
        const sidecar = container(spec, 'mesh-sidecar');
        assert.equal(probePort(sidecar, sidecar.startupProbe), 15000);
        assert.equal(probePort(sidecar, sidecar.livenessProbe), 15000);
        assert.equal(probePort(sidecar, sidecar.readinessProbe), 15000);
        // Not /readyz: a native sidecar must be "started" before the app exists.
        assert.equal(sidecar.startupProbe?.httpGet?.path, '/healthz');
        assert.equal(sidecar.livenessProbe?.httpGet?.path, '/healthz');
        assert.equal(sidecar.readinessProbe?.httpGet?.path, '/readyz');
      });

      it(`${scenario}: every container is non-root with a read-only root filesystem and no privilege escalation`, async () => {
        const spec = pod(await renderChart({ values: [scenario] }));
        assert.equal(spec.securityContext?.runAsNonRoot, true);
        for (const c of allContainers(spec)) {
          assert.equal(c.securityContext?.readOnlyRootFilesystem, true, `${c.name} readOnlyRootFilesystem`);
          assert.equal(c.securityContext?.allowPrivilegeEscalation, false, `${c.name} allowPrivilegeEscalation`);
          assert.deepEqual(c.securityContext?.capabilities, { drop: ['ALL'] }, `${c.name} capabilities`);
          assert.notEqual(c.securityContext?.runAsNonRoot, false, `${c.name} runAsNonRoot`);
        }
        const sidecar = container(spec, 'mesh-sidecar');
        assert.equal(sidecar.securityContext?.runAsUser, 65532, 'the Dockerfile USER');
        // Node needs a writable /tmp on a read-only root filesystem.
        assert.ok(sidecar.volumeMounts?.some((m) => m.mountPath === '/tmp' && m.name === 'sidecar-tmp'));
      });
    }

    it('points the app at the sidecar and the sidecar at the app', async () => {
      const spec = pod(await renderChart({ values: ['ci/native-off-values.yaml'] }));
      const app = envOf(container(spec, 'app'));
      assert.equal(app.MESH_EGRESS_URL, 'http://127.0.0.1:15001');
      assert.equal(app.MESH_BRIDGE_URL, 'http://127.0.0.1:15002');
      const sidecar = envOf(container(spec, 'mesh-sidecar'));
      assert.equal(sidecar.APP_URL, 'http://127.0.0.1:3000');
      assert.equal(sidecar.KAFKA_BOOTSTRAP, 'kafka-0.kafka:9092,kafka-1.kafka:9092');
    });

    it('ports changed in sidecar.config move the container ports, probes, app env and NetworkPolicy', async () => {
      const objects = await renderChart({
        values: minimal,
        setJson: {
          'sidecar.config': { admin: { port: 16000 }, ingress: { port: 16006 } },
          'networkPolicy.enabled': true,
        },
      });
      const spec = pod(objects);
      const sidecar = container(spec, 'mesh-sidecar');
      assert.equal(probePort(sidecar, sidecar.readinessProbe), 16000);
      assert.equal(sidecar.ports?.find((p) => p.name === 'ingress')?.containerPort, 16006);
      assert.equal(envOf(container(spec, 'app')).MESH_ADMIN_URL, 'http://127.0.0.1:16000');
      const policy = findObject<NetworkPolicy>(objects, 'NetworkPolicy');
      assert.deepEqual(policy.spec.ingress.map((r) => r.ports), [[{ port: 16006, protocol: 'TCP' }]]);
      const service = findObject<{ spec: { ports: { targetPort: string }[] } }>(objects, 'Service');
      assert.deepEqual(service.spec.ports.map((p) => p.targetPort), ['ingress']);
    });

    it('Kafka bootstrap, SASL and TLS come from Secrets', async () => {
      const spec = pod(await renderChart({ values: ['ci/full-values.yaml'] }));
      const sidecar = container(spec, 'mesh-sidecar');
      const fromSecret = Object.fromEntries(
        (sidecar.env ?? []).filter((e) => e.valueFrom).map((e) => [e.name, e.valueFrom?.secretKeyRef]),
      );
      assert.deepEqual(fromSecret, {
        KAFKA_BOOTSTRAP: { name: 'kafka-bootstrap', key: 'servers' },
        KAFKA_SASL_MECHANISM: { name: 'kafka-sasl', key: 'mechanism' },
        KAFKA_SASL_USERNAME: { name: 'kafka-sasl', key: 'username' },
        KAFKA_SASL_PASSWORD: { name: 'kafka-sasl', key: 'password' },
      });
      assert.ok(sidecar.volumeMounts?.some((m) => m.name === 'kafka-tls' && m.mountPath === '/etc/mesh-sidecar/kafka-tls'));
      // Secrets reach only the sidecar, never the app.
      assert.ok(!(container(spec, 'app').env ?? []).some((e) => e.valueFrom));
    });
  });

  describe('config changes', () => {
    it('the checksum/config annotation changes with the config, and only with it', async () => {
      const a = await configChecksum({ 'sidecar.config': { log: { level: 'info' } } });
      const same = await configChecksum({ 'sidecar.config': { log: { level: 'info' } } });
      const b = await configChecksum({ 'sidecar.config': { log: { level: 'debug' } } });
      const otherValue = await configChecksum({ 'sidecar.config': { log: { level: 'info' } }, replicaCount: 3 });
      assert.match(a ?? '', /^[0-9a-f]{64}$/);
      assert.equal(same, a);
      assert.equal(otherValue, a);
      assert.notEqual(b, a);
    });

    it('reloadOnChange: no checksum, a shared process namespace and a config watcher instead', async () => {
      const objects = await renderChart({ values: minimal, setJson: { 'sidecar.reloadOnChange': true } });
      const deployment = findObject<Deployment>(objects, 'Deployment');
      assert.equal(deployment.spec.template.metadata.annotations?.['checksum/config'], undefined);
      const spec = deployment.spec.template.spec;
      assert.equal(spec.shareProcessNamespace, true);
      const watcher = container(spec, 'config-reloader');
      assert.equal(envOf(watcher).MESH_SIDECAR_MATCH, '/app/dist/services/sidecar/bin.js');
      assert.equal(envOf(watcher).MESH_CONFIG_FILE, '/etc/mesh-sidecar/config/config.yaml');
      const script = findObject<{ data: Record<string, string> }>(objects, 'ConfigMap', 'demo-mesh-sidecar-reloader');
      const source = await readFile(join(chartDir, 'files/reloader.mjs'), 'utf8');
      assert.equal(script.data['reloader.mjs'].trim(), source.trim());
      // The watcher and the sidecar see the same config file.
      assert.ok(container(spec, 'mesh-sidecar').volumeMounts?.some((m) => m.mountPath === '/etc/mesh-sidecar/config'));
    });
  });

  describe('NetworkPolicy', () => {
    it('allows ingress only to the sidecar ingress (and admin from the metrics peers), egress only to DNS and Kafka', async () => {
      const policy = findObject<NetworkPolicy>(await renderChart({ values: ['ci/full-values.yaml'] }), 'NetworkPolicy');
      assert.deepEqual(policy.spec.policyTypes, ['Ingress', 'Egress']);
      assert.deepEqual(policy.spec.ingress, [
        {
          ports: [{ port: 15006, protocol: 'TCP' }],
          from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'shop' } } }],
        },
        {
          ports: [{ port: 15000, protocol: 'TCP' }],
          from: [
            {
              namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } },
              podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } },
            },
          ],
        },
      ]);
      assert.deepEqual(policy.spec.egress, [
        {
          ports: [
            { port: 53, protocol: 'UDP' },
            { port: 53, protocol: 'TCP' },
          ],
          to: [{ namespaceSelector: {}, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
        },
        { ports: [{ port: 9093, protocol: 'TCP' }], to: [{ ipBlock: { cidr: '10.20.0.0/16' } }] },
      ]);
    });

    it('never opens the app port, and has no admin rule without metrics peers', async () => {
      const policy = findObject<NetworkPolicy>(
        await renderChart({ values: minimal, setJson: { 'networkPolicy.enabled': true } }),
        'NetworkPolicy',
      );
      const ingressPorts = policy.spec.ingress.flatMap((r) => r.ports.map((p) => p.port));
      assert.deepEqual(ingressPorts, [15006]);
      assert.ok(!ingressPorts.includes(8080));
      assert.equal(policy.spec.ingress[0].from, undefined, 'no from: any source may call the ingress port');
      assert.deepEqual(
        policy.spec.egress.map((r) => r.ports.map((p) => p.port)),
        [[53, 53], [9092, 9093]],
      );
    });

    it('is not rendered unless enabled', async () => {
      const objects = await renderChart({ values: minimal });
      assert.ok(!objects.some((o) => o.kind === 'NetworkPolicy'));
    });
  });
});
