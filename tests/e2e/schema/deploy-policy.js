#!/usr/bin/env node
// What the deploy/ manifests promise an operator, checked one by one:
// least-privilege RBAC, no API token in task pods, the token Secret only as
// a marked template, the pipeline ConfigMap equal to conf/pipeline.yaml, and
// network policies that open exactly keruta-api, DNS and the git ports.
//   node deploy-policy.js DEPLOY_DIR PIPELINE_FILE
// One line per check ("ok" / "FAIL"); exit 0 when all pass, 1 otherwise.
'use strict';
const fs = require('fs');
const path = require('path');
const yaml = require('js-yaml');

const [dir, pipelineFile] = process.argv.slice(2);
if (!dir || !pipelineFile) { console.error('usage: node deploy-policy.js DEPLOY_DIR PIPELINE_FILE'); process.exit(2); }

const objs = [];
const byFile = {};
for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.yaml')).sort()) {
  const docs = yaml.loadAll(fs.readFileSync(path.join(dir, f), 'utf8')).filter((d) => d != null);
  byFile[f] = docs;
  if (f !== 'kustomization.yaml') for (const d of docs) objs.push({ file: f, ...d });
}
const find = (kind, name) => objs.filter((o) => o.kind === kind && (!name || o.metadata.name === name));

let failed = 0;
function check(what, cond, detail) {
  console.log(`${cond ? 'ok  ' : 'FAIL'} ${what}${cond || !detail ? '' : ': ' + detail}`);
  if (!cond) failed++;
}
const eqSet = (a, b) => a.length === b.length && a.every((x) => b.includes(x));

// Namespaces.
for (const o of objs.filter((o) => o.kind !== 'Namespace'))
  check(`${o.file} ${o.kind}/${o.metadata.name} is in namespace keruta`, o.metadata.namespace === 'keruta', `namespace ${o.metadata.namespace}`);

// ServiceAccounts.
const launcherSA = find('ServiceAccount', 'keruta-launcher')[0];
const taskSA = find('ServiceAccount', 'keruta-task')[0];
check('ServiceAccount keruta-launcher exists', !!launcherSA);
check('ServiceAccount keruta-task exists and mounts no token', !!taskSA && taskSA.automountServiceAccountToken === false,
      taskSA && `automountServiceAccountToken: ${taskSA.automountServiceAccountToken}`);

// RBAC: exactly these rules, nothing cluster-wide.
const want = {
  'batch/jobs': ['create', 'get', 'list', 'watch', 'delete', 'patch'],
  '/pods': ['get', 'list', 'watch'],
  '/pods/log': ['get'],
  '/persistentvolumeclaims': ['create', 'get', 'list', 'delete'],
};
const role = find('Role', 'keruta-launcher')[0];
check('Role keruta-launcher exists', !!role);
if (role) {
  const got = {};
  let wild = false;
  for (const r of role.rules || []) {
    if ((r.verbs || []).includes('*') || (r.resources || []).includes('*') || (r.apiGroups || []).includes('*') || r.resourceNames || r.nonResourceURLs) wild = true;
    for (const g of r.apiGroups || []) for (const res of r.resources || []) {
      const k = `${g}/${res}`;
      got[k] = [...new Set([...(got[k] || []), ...r.verbs])];
    }
  }
  check('Role has no wildcard, resourceNames or nonResourceURLs', !wild);
  check('Role grants exactly the listed resources', eqSet(Object.keys(got), Object.keys(want)), JSON.stringify(Object.keys(got)));
  for (const k of Object.keys(want))
    check(`Role verbs on ${k} are exactly ${want[k].join(',')}`, !!got[k] && eqSet(got[k], want[k]), JSON.stringify(got[k]));
}
check('no ClusterRole or ClusterRoleBinding', find('ClusterRole').length + find('ClusterRoleBinding').length === 0);
const rb = find('RoleBinding', 'keruta-launcher')[0];
check('RoleBinding binds Role keruta-launcher to ServiceAccount keruta/keruta-launcher only',
      !!rb && rb.roleRef.kind === 'Role' && rb.roleRef.name === 'keruta-launcher' && rb.subjects.length === 1 &&
      rb.subjects[0].kind === 'ServiceAccount' && rb.subjects[0].name === 'keruta-launcher' && rb.subjects[0].namespace === 'keruta',
      JSON.stringify(rb && { roleRef: rb.roleRef, subjects: rb.subjects }));
check('nothing is bound to keruta-task', !find('RoleBinding').some((b) => (b.subjects || []).some((s) => s.name === 'keruta-task')));

// The token Secret: a template with key `token`, a visible placeholder, not in the kustomization.
const sec = find('Secret', 'keruta-api-token')[0];
const tok = sec && ((sec.stringData && sec.stringData.token) || (sec.data && sec.data.token && Buffer.from(sec.data.token, 'base64').toString()));
check('Secret keruta-api-token has key token', !!tok);
check('its value is a visible placeholder', !!tok && /REPLACE/.test(tok), tok);
const kust = (byFile['kustomization.yaml'] || [])[0] || {};
const res = kust.resources || [];
check('kustomization.yaml leaves the Secret template out', !!sec && !res.includes(sec.file));
for (const f of Object.keys(byFile).filter((f) => f !== 'kustomization.yaml' && (!sec || f !== sec.file)))
  check(`kustomization.yaml lists ${f}`, res.includes(f));
for (const r of res) check(`kustomization resource ${r} exists`, fs.existsSync(path.join(dir, r)));

// The pipeline ConfigMap carries conf/pipeline.yaml byte for byte.
const cm = find('ConfigMap', 'keruta-pipeline')[0];
const pipe = fs.readFileSync(pipelineFile, 'utf8');
check(`ConfigMap keruta-pipeline equals ${pipelineFile} (regenerate with deploy/gen-pipeline-configmap.sh)`,
      !!cm && cm.data && cm.data['pipeline.yaml'] === pipe);

// Network policies for task pods (app: keruta).
const nps = find('NetworkPolicy').filter((p) => p.spec.podSelector && p.spec.podSelector.matchLabels && p.spec.podSelector.matchLabels.app === 'keruta');
check('every NetworkPolicy selects the task pods (app: keruta)', nps.length === find('NetworkPolicy').length && nps.length > 0);
const deny = nps.find((p) => eqSet(p.spec.policyTypes || [], ['Ingress', 'Egress']) && !p.spec.ingress && !p.spec.egress);
check('a default-deny policy covers ingress and egress', !!deny);
check('no policy allows ingress to task pods', nps.every((p) => !p.spec.ingress));
const allowed = [];
for (const p of nps) for (const e of p.spec.egress || []) {
  check(`${p.metadata.name}: every egress rule names ports and peers`, !!(e.ports && e.ports.length && e.to && e.to.length));
  for (const port of e.ports || []) for (const to of e.to || []) {
    let peer;
    if (to.ipBlock) peer = 'ip';
    else if (to.namespaceSelector && to.podSelector) {
      const ns = (to.namespaceSelector.matchLabels || {})['kubernetes.io/metadata.name'];
      peer = `${ns}/${JSON.stringify(to.podSelector.matchLabels)}`;
    } else peer = 'OTHER';
    allowed.push(`${port.protocol || 'TCP'}/${port.port}@${peer}`);
  }
}
const wantEgress = [
  'TCP/8080@keruta/{"app":"keruta-api"}',
  'UDP/53@kube-system/{"k8s-app":"kube-dns"}', 'TCP/53@kube-system/{"k8s-app":"kube-dns"}',
  'TCP/443@ip', 'TCP/22@ip', 'TCP/9418@ip',
];
const uniq = [...new Set(allowed)];
check('egress is exactly keruta-api:8080, kube-dns:53 udp+tcp and git ports 443/22/9418', eqSet(uniq, wantEgress), JSON.stringify(uniq));

console.log(`deploy-policy: ${failed ? failed + ' check(s) failed' : 'all checks passed'}`);
process.exit(failed ? 1 : 0);
