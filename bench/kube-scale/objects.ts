// The object set `weft bench kube-scale` loads: namespaces, Pods, Services, one EndpointSlice per Service
// and a few AuthorizationPolicies, shaped as a real API server returns them (uids, owner references,
// managedFields, status), because what an informer holds is the whole object and its size is the point.
//
// Deterministic and random-access: every field is a hash of (seed, what, index), so the API server's
// process and the consumers regenerate the same names without sharing state. Pod slot i belongs to
// Service i % services; a replaced pod keeps its slot, gets the next generation's name and a new address.
import type { KubeObject } from '../../test/helpers/kube-api-server.js';

/** On every Pod, Service and EndpointSlice: SENT_UNSET, then the writer's clock (µs) when the churn changes it. */
export const SENT_LABEL = 'bench.weft.dev/sent-us';
/**
 * As long as a stamp (16 digits), so that stamping an object does not grow it: V8's JSON.parse shares
 * short string values (up to 10 characters) between objects and gives longer ones their own copy.
 */
export const SENT_UNSET = '1000000000000000';
/** Namespaces are enrolled, so the agent's per-node view (identities to certify) has work to do. */
const AMBIENT = { 'istio.io/dataplane-mode': 'ambient' };
/** Weft's default trust domain, for the policies' principals. */
const TRUST_DOMAIN = 'cluster.local';
/** 2026-01-01T00:00:00Z: creation times count up from here, one second per object index. */
const EPOCH_MS = Date.UTC(2026, 0, 1);
/** What Kubernetes uses for generated name suffixes (no vowels, no look-alikes). */
const NAME_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

export interface ScaleSpec {
  readonly pods: number;
  readonly services: number;
  readonly namespaces: number;
  readonly nodes: number;
  readonly policies: number;
  readonly seed: number;
}

/** A realistic shape for the counts: ~20 Services per namespace, ~200 pods per node, ~20 policies. */
export function scaleSpec(
  pods: number,
  services: number,
  overrides: Partial<Omit<ScaleSpec, 'pods' | 'services'>> = {},
): ScaleSpec {
  if (!Number.isInteger(pods) || pods < 1) throw new Error(`pods: expected a positive integer, got ${pods}`);
  if (!Number.isInteger(services) || services < 1 || services > pods)
    throw new Error(`services: expected an integer 1..pods, got ${services}`);
  return {
    pods,
    services,
    namespaces: overrides.namespaces ?? Math.max(1, Math.round(services / 20)),
    nodes: overrides.nodes ?? Math.max(1, Math.round(pods / 200)),
    // Policy names come from Services, so there are at most as many.
    policies: Math.min(overrides.policies ?? 20, services),
    seed: overrides.seed ?? 1,
  };
}

/** splitmix32 of the seed and up to three integers: a well-mixed uint32. */
export function hash(seed: number, a: number, b = 0, c = 0): number {
  let x = (seed ^ Math.imul(a + 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 0x7f4a7c15, 0xc2b2ae35)) >>> 0;
  x = (x ^ Math.imul(c + 0x165667b1, 0x27d4eb2f)) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b) >>> 0;
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

// Salts: which field a hash is for.
const UID = 1;
const NODE = 2;
const TEMPLATE = 3;
const SUFFIX = 4;
const IMAGE = 5;
const CONTAINER = 6;

function uid(seed: number, salt: number, index: number, generation = 0): string {
  const hex = [0, 1, 2, 3].map((part) => hash(seed, salt * 16 + part, index, generation).toString(16));
  const h = hex.map((part) => part.padStart(8, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function generatedName(
  seed: number,
  salt: number,
  index: number,
  generation: number,
  length: number,
): string {
  let text = '';
  let bits = hash(seed, salt, index, generation);
  for (let i = 0; i < length; i += 1) {
    if (i % 6 === 0 && i > 0) bits = hash(seed, salt, index, generation + i);
    text += NAME_ALPHABET[bits % NAME_ALPHABET.length];
    bits = Math.floor(bits / NAME_ALPHABET.length);
  }
  return text;
}

function timestamp(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
}

function ipv4(base: number, index: number): string {
  const n = (base + index) >>> 0;
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** Pod addresses: 10.64.0.0/10 (4 M addresses; churned pods take fresh ones past the initial set). */
export function podIp(ipIndex: number): string {
  return ipv4(0x0a400000, ipIndex + 1);
}

function clusterIp(service: number): string {
  return ipv4(0x0a600000, service + 10);
}

// Names as long as real ones: V8 shares strings of up to 10 characters between parsed objects and
// copies longer ones, so short made-up names would make every pod look cheaper than a real one.

/** `team-42-prod`. */
export function namespaceName(namespace: number): string {
  return `team-${namespace}-prod`;
}

export function namespaceOfService(spec: ScaleSpec, service: number): string {
  return namespaceName(service % spec.namespaces);
}

/** `orders-api-1234`: also the app label and the service account of its pods. */
export function serviceName(service: number): string {
  return `orders-api-${service}`;
}

export function sliceName(spec: ScaleSpec, service: number): string {
  return `${serviceName(service)}-${generatedName(spec.seed, SUFFIX, -1 - service, 0, 5)}`;
}

/** Node addresses: 10.1.0.0/16. */
function nodeIp(node: number): string {
  return ipv4(0x0a010000, node + 1);
}

/** `ip-10-1-0-54.eu-west-1.compute.internal`, as EKS names its nodes after their addresses. */
export function nodeName(node: number): string {
  return `ip-${nodeIp(node).replace(/\./g, '-')}.eu-west-1.compute.internal`;
}

function templateHash(spec: ScaleSpec, service: number): string {
  return generatedName(spec.seed, TEMPLATE, service, 0, 10);
}

export function serviceOfSlot(spec: ScaleSpec, slot: number): number {
  return slot % spec.services;
}

/** The slots of a Service's pods, ascending. */
export function slotsOfService(spec: ScaleSpec, service: number): number[] {
  const slots: number[] = [];
  for (let slot = service; slot < spec.pods; slot += spec.services) slots.push(slot);
  return slots;
}

export function podName(spec: ScaleSpec, slot: number, generation: number): string {
  const service = serviceOfSlot(spec, slot);
  const suffix = generatedName(spec.seed, SUFFIX, slot, generation, 5);
  return `${serviceName(service)}-${templateHash(spec, service)}-${suffix}`;
}

export function podNode(spec: ScaleSpec, slot: number, generation: number): string {
  return nodeName(hash(spec.seed, NODE, slot, generation) % spec.nodes);
}

/** Services 0, 3, 6, … have a second (gRPC) port; the first port's targetPort is named on odd Services. */
function hasGrpcPort(service: number): boolean {
  return service % 3 === 0;
}

function containerPorts(service: number): Record<string, unknown>[] {
  const ports: Record<string, unknown>[] = [{ name: 'http', containerPort: 8080, protocol: 'TCP' }];
  if (hasGrpcPort(service)) ports.push({ name: 'grpc', containerPort: 9090, protocol: 'TCP' });
  return ports;
}

export interface PodState {
  readonly slot: number;
  readonly generation: number;
  readonly ipIndex: number;
  /** Epoch ms; the initial set counts up from 2026-01-01, replacements are created now. */
  readonly createdMs: number;
}

export function initialPodState(slot: number): PodState {
  return { slot, generation: 0, ipIndex: slot, createdMs: EPOCH_MS + slot * 1000 };
}

/** A Running pod of a Deployment, as `kubectl get pod -o json` shows one (managedFields included). */
export function podObject(spec: ScaleSpec, state: PodState): KubeObject {
  const { slot, generation } = state;
  const service = serviceOfSlot(spec, slot);
  const app = serviceName(service);
  const namespace = namespaceOfService(spec, service);
  const hashText = templateHash(spec, service);
  const replicaSet = `${app}-${hashText}`;
  const ip = podIp(state.ipIndex);
  const nodeIndex = hash(spec.seed, NODE, slot, generation) % spec.nodes;
  const hostIp = nodeIp(nodeIndex);
  const created = timestamp(state.createdMs);
  const started = timestamp(state.createdMs + 4000);
  const volume = `kube-api-access-${generatedName(spec.seed, SUFFIX, slot, generation + 1000, 5)}`;
  const image = `registry.example.com/shop/${app}:1.${hash(spec.seed, IMAGE, service) % 40}.0`;
  const ports = containerPorts(service);
  const portKeys = Object.fromEntries(
    ports.map((port) => [
      `k:{"containerPort":${String(port.containerPort)},"protocol":"TCP"}`,
      { '.': {}, 'f:containerPort': {}, 'f:name': {}, 'f:protocol': {} },
    ]),
  );
  const ownerUid = uid(spec.seed, TEMPLATE, service);
  const conditions = ['PodReadyToStartContainers', 'Initialized', 'Ready', 'ContainersReady', 'PodScheduled'];
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: podName(spec, slot, generation),
      generateName: `${replicaSet}-`,
      namespace,
      uid: uid(spec.seed, UID, slot, generation),
      creationTimestamp: created,
      labels: {
        app,
        version: service % 2 === 0 ? 'v1' : 'v2',
        'pod-template-hash': hashText,
        [SENT_LABEL]: SENT_UNSET,
      },
      annotations: {
        'kubectl.kubernetes.io/restartedAt': timestamp(EPOCH_MS - 86_400_000),
        'prometheus.io/scrape': 'true',
        'prometheus.io/port': '8080',
      },
      ownerReferences: [
        {
          apiVersion: 'apps/v1',
          kind: 'ReplicaSet',
          name: replicaSet,
          uid: ownerUid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
      managedFields: [
        {
          manager: 'kube-controller-manager',
          operation: 'Update',
          apiVersion: 'v1',
          time: created,
          fieldsType: 'FieldsV1',
          fieldsV1: {
            'f:metadata': {
              'f:annotations': {
                '.': {},
                'f:kubectl.kubernetes.io/restartedAt': {},
                'f:prometheus.io/port': {},
              },
              'f:generateName': {},
              'f:labels': { '.': {}, 'f:app': {}, 'f:pod-template-hash': {}, 'f:version': {} },
              'f:ownerReferences': { '.': {}, [`k:{"uid":"${ownerUid}"}`]: {} },
            },
            'f:spec': {
              'f:containers': {
                'k:{"name":"app"}': {
                  '.': {},
                  'f:image': {},
                  'f:imagePullPolicy': {},
                  'f:name': {},
                  'f:ports': { '.': {}, ...portKeys },
                  'f:resources': {
                    '.': {},
                    'f:limits': { '.': {}, 'f:cpu': {}, 'f:memory': {} },
                    'f:requests': { '.': {}, 'f:cpu': {}, 'f:memory': {} },
                  },
                  'f:terminationMessagePath': {},
                  'f:terminationMessagePolicy': {},
                },
              },
              'f:dnsPolicy': {},
              'f:enableServiceLinks': {},
              'f:restartPolicy': {},
              'f:schedulerName': {},
              'f:securityContext': {},
              'f:serviceAccount': {},
              'f:serviceAccountName': {},
              'f:terminationGracePeriodSeconds': {},
            },
          },
        },
        {
          manager: 'kubelet',
          operation: 'Update',
          apiVersion: 'v1',
          time: started,
          fieldsType: 'FieldsV1',
          fieldsV1: {
            'f:status': {
              'f:conditions': Object.fromEntries(
                conditions.map((type) => [
                  `k:{"type":"${type}"}`,
                  {
                    '.': {},
                    'f:lastProbeTime': {},
                    'f:lastTransitionTime': {},
                    'f:status': {},
                    'f:type': {},
                  },
                ]),
              ),
              'f:containerStatuses': {},
              'f:hostIP': {},
              'f:hostIPs': {},
              'f:phase': {},
              'f:podIP': {},
              'f:podIPs': { '.': {}, [`k:{"ip":"${ip}"}`]: { '.': {}, 'f:ip': {} } },
              'f:startTime': {},
            },
          },
          subresource: 'status',
        },
      ],
    },
    spec: {
      volumes: [
        {
          name: volume,
          projected: {
            sources: [
              { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
              { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
              {
                downwardAPI: {
                  items: [
                    { path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } },
                  ],
                },
              },
            ],
            defaultMode: 420,
          },
        },
      ],
      containers: [
        {
          name: 'app',
          image,
          ports,
          resources: {
            limits: { cpu: '500m', memory: '256Mi' },
            requests: { cpu: '100m', memory: '128Mi' },
          },
          volumeMounts: [
            { name: volume, readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' },
          ],
          terminationMessagePath: '/dev/termination-log',
          terminationMessagePolicy: 'File',
          imagePullPolicy: 'IfNotPresent',
        },
      ],
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 30,
      dnsPolicy: 'ClusterFirst',
      serviceAccountName: app,
      serviceAccount: app,
      nodeName: nodeName(nodeIndex),
      securityContext: {},
      schedulerName: 'default-scheduler',
      tolerations: [
        {
          key: 'node.kubernetes.io/not-ready',
          operator: 'Exists',
          effect: 'NoExecute',
          tolerationSeconds: 300,
        },
        {
          key: 'node.kubernetes.io/unreachable',
          operator: 'Exists',
          effect: 'NoExecute',
          tolerationSeconds: 300,
        },
      ],
      priority: 0,
      enableServiceLinks: true,
      preemptionPolicy: 'PreemptLowerPriority',
    },
    status: {
      phase: 'Running',
      conditions: conditions.map((type) => ({
        type,
        status: 'True',
        lastProbeTime: null,
        lastTransitionTime: type === 'PodScheduled' ? created : started,
      })),
      hostIP: hostIp,
      hostIPs: [{ ip: hostIp }],
      podIP: ip,
      podIPs: [{ ip }],
      startTime: created,
      containerStatuses: [
        {
          name: 'app',
          state: { running: { startedAt: started } },
          lastState: {},
          ready: true,
          restartCount: 0,
          image,
          imageID: `${image.split(':')[0] ?? image}@sha256:${uid(spec.seed, IMAGE, service).replace(/-/g, '')}${uid(spec.seed, IMAGE, service + 1).replace(/-/g, '')}`,
          containerID: `containerd://${uid(spec.seed, CONTAINER, slot, generation).replace(/-/g, '')}${uid(spec.seed, CONTAINER + 1, slot, generation).replace(/-/g, '')}`,
          started: true,
        },
      ],
      qosClass: 'Burstable',
    },
  };
}

/** A ClusterIP Service applied with `kubectl apply` (so it carries last-applied-configuration). */
export function serviceObject(spec: ScaleSpec, service: number): KubeObject {
  const name = serviceName(service);
  const namespace = namespaceOfService(spec, service);
  const ip = clusterIp(service);
  const ports: Record<string, unknown>[] = [
    { name: 'http', protocol: 'TCP', port: 80, targetPort: service % 2 === 1 ? 'http' : 8080 },
  ];
  if (hasGrpcPort(service)) ports.push({ name: 'grpc', protocol: 'TCP', port: 9090, targetPort: 'grpc' });
  const applied = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { annotations: {}, labels: { app: name }, name, namespace },
    spec: { ports, selector: { app: name } },
  };
  const created = timestamp(EPOCH_MS - 3_600_000 + service * 1000);
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name,
      namespace,
      uid: uid(spec.seed, UID, -1 - service),
      creationTimestamp: created,
      labels: { app: name, [SENT_LABEL]: SENT_UNSET },
      annotations: { 'kubectl.kubernetes.io/last-applied-configuration': `${JSON.stringify(applied)}\n` },
      managedFields: [
        {
          manager: 'kubectl-client-side-apply',
          operation: 'Update',
          apiVersion: 'v1',
          time: created,
          fieldsType: 'FieldsV1',
          fieldsV1: {
            'f:metadata': {
              'f:annotations': { '.': {}, 'f:kubectl.kubernetes.io/last-applied-configuration': {} },
              'f:labels': { '.': {}, 'f:app': {} },
            },
            'f:spec': {
              'f:internalTrafficPolicy': {},
              'f:ports': {
                '.': {},
                ...Object.fromEntries(
                  ports.map((port) => [
                    `k:{"port":${String(port.port)},"protocol":"TCP"}`,
                    { '.': {}, 'f:name': {}, 'f:port': {}, 'f:protocol': {}, 'f:targetPort': {} },
                  ]),
                ),
              },
              'f:selector': {},
              'f:sessionAffinity': {},
              'f:type': {},
            },
          },
        },
      ],
    },
    spec: {
      ports,
      selector: { app: name },
      clusterIP: ip,
      clusterIPs: [ip],
      type: 'ClusterIP',
      sessionAffinity: 'None',
      ipFamilies: ['IPv4'],
      ipFamilyPolicy: 'SingleStack',
      internalTrafficPolicy: 'Cluster',
    },
    status: { loadBalancer: {} },
  };
}

/** The endpoint of one pod in its Service's slice. */
export function sliceEndpoint(spec: ScaleSpec, state: PodState, ready = true): Record<string, unknown> {
  return {
    addresses: [podIp(state.ipIndex)],
    conditions: { ready, serving: ready, terminating: false },
    nodeName: podNode(spec, state.slot, state.generation),
    targetRef: {
      kind: 'Pod',
      namespace: namespaceOfService(spec, serviceOfSlot(spec, state.slot)),
      name: podName(spec, state.slot, state.generation),
      uid: uid(spec.seed, UID, state.slot, state.generation),
    },
  };
}

/** The endpointslice controller's slice for a Service, listing `pods`. */
export function sliceObject(spec: ScaleSpec, service: number, pods: readonly PodState[]): KubeObject {
  const name = serviceName(service);
  const ports: Record<string, unknown>[] = [{ name: 'http', protocol: 'TCP', port: 8080 }];
  if (hasGrpcPort(service)) ports.push({ name: 'grpc', protocol: 'TCP', port: 9090 });
  const created = timestamp(EPOCH_MS - 3_500_000 + service * 1000);
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: sliceName(spec, service),
      generateName: `${name}-`,
      namespace: namespaceOfService(spec, service),
      uid: uid(spec.seed, UID, -1_000_000 - service),
      creationTimestamp: created,
      labels: {
        app: name,
        'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io',
        'kubernetes.io/service-name': name,
        [SENT_LABEL]: SENT_UNSET,
      },
      annotations: { 'endpoints.kubernetes.io/last-change-trigger-time': created },
      ownerReferences: [
        {
          apiVersion: 'v1',
          kind: 'Service',
          name,
          uid: uid(spec.seed, UID, -1 - service),
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
      managedFields: [
        {
          manager: 'kube-controller-manager',
          operation: 'Update',
          apiVersion: 'discovery.k8s.io/v1',
          time: created,
          fieldsType: 'FieldsV1',
          fieldsV1: {
            'f:addressType': {},
            'f:endpoints': {},
            'f:metadata': {
              'f:annotations': { '.': {}, 'f:endpoints.kubernetes.io/last-change-trigger-time': {} },
              'f:generateName': {},
              'f:labels': {
                '.': {},
                'f:app': {},
                'f:endpointslice.kubernetes.io/managed-by': {},
                'f:kubernetes.io/service-name': {},
              },
              'f:ownerReferences': { '.': {}, [`k:{"uid":"${uid(spec.seed, UID, -1 - service)}"}`]: {} },
            },
            'f:ports': {},
          },
        },
      ],
    },
    addressType: 'IPv4',
    endpoints: pods.map((pod) => sliceEndpoint(spec, pod)),
    ports,
  };
}

export function namespaceObject(spec: ScaleSpec, namespace: number): KubeObject {
  const name = namespaceName(namespace);
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name,
      uid: uid(spec.seed, UID, -2_000_000 - namespace),
      creationTimestamp: timestamp(EPOCH_MS - 7_200_000 + namespace * 1000),
      labels: { 'kubernetes.io/metadata.name': name, ...AMBIENT },
    },
    spec: { finalizers: ['kubernetes'] },
    status: { phase: 'Active' },
  };
}

/** Policy p lets the next Service's pods call Service p's pods on 8080. */
export function policyObject(spec: ScaleSpec, policy: number): KubeObject {
  const target = policy % spec.services;
  const caller = (policy + 1) % spec.services;
  return {
    apiVersion: 'security.istio.io/v1',
    kind: 'AuthorizationPolicy',
    metadata: {
      name: `allow-${serviceName(caller)}`,
      namespace: namespaceOfService(spec, target),
      uid: uid(spec.seed, UID, -3_000_000 - policy),
      creationTimestamp: timestamp(EPOCH_MS - 1_800_000 + policy * 1000),
    },
    spec: {
      selector: { matchLabels: { app: serviceName(target) } },
      action: 'ALLOW',
      rules: [
        {
          from: [
            {
              source: {
                principals: [
                  `${TRUST_DOMAIN}/ns/${namespaceOfService(spec, caller)}/sa/${serviceName(caller)}`,
                ],
              },
            },
          ],
          to: [{ operation: { ports: ['8080'] } }],
        },
      ],
    },
  };
}

export type GeneratedKind = 'Namespace' | 'Service' | 'Pod' | 'EndpointSlice' | 'AuthorizationPolicy';

/** Every object of the initial set, one at a time (the set is never all in memory here). */
export function* initialObjects(spec: ScaleSpec): Generator<KubeObject> {
  for (let n = 0; n < spec.namespaces; n += 1) yield namespaceObject(spec, n);
  for (let s = 0; s < spec.services; s += 1) yield serviceObject(spec, s);
  for (let slot = 0; slot < spec.pods; slot += 1) yield podObject(spec, initialPodState(slot));
  for (let s = 0; s < spec.services; s += 1)
    yield sliceObject(spec, s, slotsOfService(spec, s).map(initialPodState));
  for (let p = 0; p < spec.policies; p += 1) yield policyObject(spec, p);
}

/** How many objects of each kind `initialObjects` yields. */
export function expectedCounts(spec: ScaleSpec): Record<GeneratedKind, number> {
  return {
    Namespace: spec.namespaces,
    Service: spec.services,
    Pod: spec.pods,
    EndpointSlice: spec.services,
    AuthorizationPolicy: spec.policies,
  };
}
