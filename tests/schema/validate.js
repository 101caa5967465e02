#!/usr/bin/env node
// validate.js SCHEMA_DIR DOCS.json...  Each file holds a JSON array of
// Kubernetes objects.  Every object must pass both the strict JSON schema
// (unknown fields rejected) and kubernetes-models' validator.
'use strict';
const fs = require('fs');
const path = require('path');
const Ajv = require('ajv');

const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
const [dir, ...files] = process.argv.slice(2);
const compiled = {};
const MODELS = {
  'v1/PersistentVolumeClaim': () => require('kubernetes-models/v1/PersistentVolumeClaim').PersistentVolumeClaim,
  'v1/Pod': () => require('kubernetes-models/v1/Pod').Pod,
  'batch/v1/Job': () => require('kubernetes-models/batch/v1/Job').Job,
};

function schemaFor(doc) {
  const [group, version] = doc.apiVersion.includes('/') ? doc.apiVersion.split('/') : ['', doc.apiVersion];
  const name = [doc.kind.toLowerCase(), group.split('.')[0], version].filter(Boolean).join('-') + '.json';
  if (!compiled[name]) {
    const s = JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8'));
    delete s.$schema;
    compiled[name] = ajv.compile(s);
  }
  return compiled[name];
}

let bad = 0, n = 0;
for (const f of files) {
  const docs = JSON.parse(fs.readFileSync(f, 'utf8'));
  docs.forEach((doc, i) => {
    n++;
    const where = `${f}[${i}] ${doc.apiVersion}/${doc.kind} ${doc.metadata && doc.metadata.name}`;
    const v = schemaFor(doc);
    if (!v(doc)) {
      bad++;
      console.error(`${where}: INVALID (JSON schema)`);
      for (const e of v.errors) console.error(`  ${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`);
    }
    const key = `${doc.apiVersion}/${doc.kind}`;
    if (!MODELS[key]) { bad++; console.error(`${where}: no kubernetes-models class`); return; }
    try { new (MODELS[key]())(doc).validate(); }
    catch (e) {
      bad++;
      console.error(`${where}: INVALID (kubernetes-models)`);
      for (const d of (e.errors || [])) console.error(`  ${d.instancePath} ${d.message}`);
      if (!e.errors) console.error('  ' + e.message);
    }
  });
}
console.log(`${n} objects, ${bad} problems`);
process.exit(bad ? 1 : 0);
