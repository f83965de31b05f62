// Validates rendered Kubernetes manifests (the output of `kubectl kustomize`) offline:
//  1. every object against the API schema of its kind (JSON Schemas generated from the
//     Kubernetes OpenAPI spec, shipped by the npm packages kubernetes-models, and for the CRDs
//     @kubernetes-models/keda and @kubernetes-models/prometheus-operator);
//  2. Taina's own rules, which also catch a misspelt field the schemas would let through
//     (they allow unknown fields, as the API server does without strict validation).
// Usage: node k8s-validate.mjs NAME.yaml...   (exit 1 on the first file with problems)
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

const top = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const partitions = Object.fromEntries(
  JSON.parse(readFileSync(join(top, "schemas", "topics.json"), "utf8")).topics.map((t) => [t.name, t.partitions]),
);

// apiVersion -> module folder holding one model per kind
function modelPath(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  if (group === "keda.sh") return `@kubernetes-models/keda/keda.sh/${version}/${kind}`;
  if (group === "monitoring.coreos.com")
    return `@kubernetes-models/prometheus-operator/monitoring.coreos.com/${version}/${kind}`;
  return group ? `kubernetes-models/${group}/${version}/${kind}` : `kubernetes-models/${version}/${kind}`;
}

const SECRET_NAME = /(PASSWORD|SECRET|API_KEY|TOKEN|DATABASE_URL)$/;

function podRules(obj, problems) {
  const spec = obj.spec?.template?.spec ?? {};
  const podSec = spec.securityContext ?? {};
  if (spec.automountServiceAccountToken !== false) problems.push("automountServiceAccountToken is not false");
  for (const c of spec.containers ?? []) {
    const at = `container ${c.name}`;
    const sec = c.securityContext ?? {};
    if (!(sec.runAsNonRoot === true || podSec.runAsNonRoot === true)) problems.push(`${at}: runAsNonRoot is not true`);
    if (sec.readOnlyRootFilesystem !== true) problems.push(`${at}: readOnlyRootFilesystem is not true`);
    if (sec.allowPrivilegeEscalation !== false) problems.push(`${at}: allowPrivilegeEscalation is not false`);
    if (sec.privileged === true) problems.push(`${at}: privileged`);
    for (const kind of ["requests", "limits"])
      for (const r of ["cpu", "memory"])
        if (!c.resources?.[kind]?.[r]) problems.push(`${at}: no resources.${kind}.${r}`);
    if (c.livenessProbe?.httpGet?.path !== "/health") problems.push(`${at}: livenessProbe is not GET /health`);
    if (c.readinessProbe?.httpGet?.path !== "/ready") problems.push(`${at}: readinessProbe is not GET /ready`);
    if (!c.image || c.image.endsWith(":latest")) problems.push(`${at}: image ${c.image} (pin a tag)`);
    for (const e of c.env ?? [])
      if (SECRET_NAME.test(e.name) && !e.valueFrom?.secretKeyRef)
        problems.push(`${at}: ${e.name} must come from a Secret (valueFrom.secretKeyRef)`);
  }
}

function rules(obj, problems) {
  const kind = obj.kind;
  if (kind === "Deployment") podRules(obj, problems);
  if (kind === "ConfigMap")
    for (const k of Object.keys(obj.data ?? {}))
      if (SECRET_NAME.test(k)) problems.push(`${k} is a secret: use a Secret reference, not a ConfigMap`);
  if (kind === "ScaledObject") {
    const s = obj.spec;
    for (const t of s.triggers ?? []) {
      if (t.type !== "kafka") continue;
      const m = t.metadata ?? {};
      for (const k of ["bootstrapServers", "consumerGroup", "topic", "lagThreshold", "activationLagThreshold"])
        if (!m[k]) problems.push(`kafka trigger without ${k}`);
      const parts = partitions[m.topic];
      if (parts === undefined) problems.push(`topic ${m.topic} is not in schemas/topics.json`);
      else if ((s.maxReplicaCount ?? 100) > parts)
        problems.push(`maxReplicaCount ${s.maxReplicaCount} > ${parts} partitions of ${m.topic}`);
    }
    if ((s.minReplicaCount ?? 0) > (s.maxReplicaCount ?? 100)) problems.push("minReplicaCount > maxReplicaCount");
  }
}

let failed = 0;
for (const file of process.argv.slice(2)) {
  const docs = parseAllDocuments(readFileSync(file, "utf8"));
  const byKind = {};
  let n = 0;
  for (const doc of docs) {
    if (doc.errors.length) {
      console.error(`${file}: YAML: ${doc.errors[0].message}`);
      failed = 1;
      continue;
    }
    const obj = doc.toJS();
    if (!obj) continue;
    n++;
    const where = `${file}: ${obj.kind ?? "?"}/${obj.metadata?.name ?? "?"}`;
    const problems = [];
    if (!obj.apiVersion || !obj.kind) {
      console.error(`${where}: no apiVersion or kind`);
      failed = 1;
      continue;
    }
    let Model;
    try {
      Model = (await import(modelPath(obj.apiVersion, obj.kind)))[obj.kind];
    } catch {
      problems.push(`no schema for ${obj.apiVersion} ${obj.kind}`);
    }
    if (Model) {
      try {
        new Model(obj).validate();
      } catch (e) {
        problems.push(`schema: ${e.message}`);
      }
    }
    rules(obj, problems);
    (byKind[obj.kind] ??= new Set()).add(obj.metadata?.name);
    for (const p of problems) console.error(`${where}: ${p}`);
    if (problems.length) failed = 1;
  }
  // Every Deployment comes with its Service, ConfigMap, PodDisruptionBudget and NetworkPolicy.
  for (const name of byKind.Deployment ?? [])
    for (const kind of ["Service", "ConfigMap", "PodDisruptionBudget", "NetworkPolicy"])
      if (!byKind[kind]?.has(name)) {
        console.error(`${file}: Deployment/${name} has no ${kind}`);
        failed = 1;
      }
  if (!failed) console.log(`k8s: ${file}: ${n} objects valid`);
}
process.exit(failed);
