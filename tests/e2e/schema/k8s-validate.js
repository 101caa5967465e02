#!/usr/bin/env node
// Validate Kubernetes manifests twice: against the strict v1.32 JSON schemas
// (they reject unknown fields) and with the kubernetes-models classes (they
// know formats and enums the JSON schemas lack).
//   node k8s-validate.js --schemas DIR FILE.yaml...   (multi-document files ok)
// Prints one line per document; exit 0 all valid, 1 some invalid, 2 usage or
// parse error.  Modules (ajv, ajv-formats, js-yaml, kubernetes-models) come
// from NODE_PATH; tests/e2e/deploy-check.sh installs them.
'use strict';
const fs = require('fs');
const path = require('path');
const yaml = require('js-yaml');
const Ajv = require('ajv');
const addFormats = require('ajv-formats');

const MODELS = {
  'v1/Namespace': 'kubernetes-models/v1/Namespace',
  'v1/ServiceAccount': 'kubernetes-models/v1/ServiceAccount',
  'v1/Secret': 'kubernetes-models/v1/Secret',
  'v1/ConfigMap': 'kubernetes-models/v1/ConfigMap',
  'v1/Pod': 'kubernetes-models/v1/Pod',
  'v1/PersistentVolumeClaim': 'kubernetes-models/v1/PersistentVolumeClaim',
  'batch/v1/Job': 'kubernetes-models/batch/v1/Job',
  'rbac.authorization.k8s.io/v1/Role': 'kubernetes-models/rbac.authorization.k8s.io/v1/Role',
  'rbac.authorization.k8s.io/v1/RoleBinding': 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding',
  'networking.k8s.io/v1/NetworkPolicy': 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy',
};

function usage(msg) {
  console.error(`k8s-validate: ${msg}\nusage: node k8s-validate.js --schemas DIR FILE.yaml...`);
  process.exit(2);
}

const args = process.argv.slice(2);
if (args[0] !== '--schemas' || args.length < 3) usage('need --schemas DIR and at least one file');
const dir = args[1];
const files = args.slice(2);

const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv);
for (const f of ['int32', 'int64', 'double', 'byte', 'int-or-string']) ajv.addFormat(f, true);

const compiled = {};
function schemaFor(doc) {
  const av = String(doc.apiVersion);
  const [group, version] = av.includes('/') ? av.split('/') : ['', av];
  const name = [String(doc.kind).toLowerCase(), group.split('.')[0], version].filter(Boolean).join('-') + '.json';
  if (!(name in compiled)) {
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) { compiled[name] = null; return { name, v: null }; }
    const s = JSON.parse(fs.readFileSync(file, 'utf8'));
    delete s.$schema;             // draft-04 style URI that ajv 8 does not know
    compiled[name] = ajv.compile(s);
  }
  return { name, v: compiled[name] };
}

function modelFor(doc) {
  const mod = MODELS[`${doc.apiVersion}/${doc.kind}`];
  if (!mod) return null;
  const m = require(mod);
  return m[doc.kind];
}

let bad = 0;
for (const file of files) {
  let docs;
  try { docs = yaml.loadAll(fs.readFileSync(file, 'utf8')).filter((d) => d != null); }
  catch (e) { console.error(`${file}: cannot parse YAML: ${e.message}`); process.exit(2); }
  if (docs.length === 0) { console.error(`${file}: no YAML document in it`); bad++; }
  docs.forEach((doc, i) => {
    const where = `${file}[${i}] ${doc.apiVersion}/${doc.kind} ${doc.metadata && doc.metadata.name}`;
    const problems = [];
    const { name, v } = schemaFor(doc);
    if (!v) problems.push(`no strict schema ${name} in ${dir}`);
    else if (!v(doc)) for (const e of v.errors) problems.push(`schema: ${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}`);
    const Model = modelFor(doc);
    if (!Model) problems.push(`no kubernetes-models class for ${doc.apiVersion}/${doc.kind}`);
    else {
      try { new Model(doc).validate(); }
      catch (e) {
        if (e.errors) for (const d of e.errors) problems.push(`kubernetes-models: ${d.instancePath || '/'} ${d.message} ${JSON.stringify(d.params)}`);
        else problems.push(`kubernetes-models: ${e.message}`);
      }
    }
    if (problems.length === 0) console.log(`${where}: OK`);
    else { bad++; console.log(`${where}: INVALID`); for (const p of problems) console.log(`  ${p}`); }
  });
}
process.exit(bad ? 1 : 0);
