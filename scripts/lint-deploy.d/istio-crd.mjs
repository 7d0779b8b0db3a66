// Validates Istio resources against Istio's CRD schemas, offline.
//
//   node scripts/lint-deploy.d/istio-crd.mjs NODE_MODULES_DIR < resources.json
//
// stdin: a JSON array of {"file": "...", "resource": {...}} (scripts/lint-deploy turns the
// YAML into this). The schemas are the ones npm's @kubernetes-models/istio compiles from
// Istio's own CRD definitions (package.json beside this file pins the version; 3.0.1 is
// generated from Istio 1.29.2's CRDs, and from Istio 1.18's for IstioOperator), one
// validator per group, version and kind.
//
// Two checks per resource:
//   1. the CRD's OpenAPI schema: types, enums, required fields, oneOf rules;
//   2. unknown fields. A CRD schema does not forbid them (the API server silently drops
//      them, and `kubectl apply --validate=strict` refuses them), so a typo such as
//      `notPath:` would pass check 1 and leave a rule that matches more than intended.
//      The compiled validator reads every field its schema declares; the resource is
//      handed to it behind a Proxy that records each field read, and a field it never
//      read is one the schema does not know.
// Where a CRD leaves a subtree open on purpose (x-kubernetes-preserve-unknown-fields),
// OPEN_SUBTREES names it; scripts/lint-deploy checks such subtrees itself.
//
// Prints one line per resource (INFO passed, or ERROR with the field path) and exits 1
// if any resource fails.

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

/** Subtrees a CRD leaves open, by "group/version/Kind". */
const OPEN_SUBTREES = {
  // IstioOperator's spec is free-form in its CRD; lint-deploy checks the meshConfig in it.
  "install.istio.io/v1alpha1/IstioOperator": ["/spec"],
};

const nodeModules = process.argv[2];
if (!nodeModules) {
  console.error("usage: istio-crd.mjs NODE_MODULES_DIR < resources.json");
  process.exit(2);
}
const schemaDir = join(nodeModules, "@kubernetes-models", "istio", "_schemas");
const entries = JSON.parse(readFileSync(0, "utf8"));

let failed = 0;
for (const { file, resource } of entries) {
  const name = `${resource?.kind ?? "?"}/${resource?.metadata?.name ?? "?"}`;
  const problems = await check(resource);
  if (problems.length === 0) {
    console.log(`INFO ${file} passed for ${name} against the Istio CRD schema`);
  } else {
    failed++;
    for (const problem of problems) {
      console.log(`ERROR ${file}: ${name}: ${problem}`);
    }
  }
}
process.exit(failed === 0 ? 0 : 1);

/** The problems of one resource, as "path: message" strings. */
async function check(resource) {
  const apiVersion = String(resource?.apiVersion ?? "");
  const kind = String(resource?.kind ?? "");
  const module = join(schemaDir, `${schemaModuleName(apiVersion, kind)}.js`);
  if (!apiVersion.includes(".istio.io/") || !existsSync(module)) {
    return [`no Istio CRD schema for apiVersion ${apiVersion || "?"} kind ${kind || "?"}`];
  }
  // Imported by file path: the package's exports map does not list _schemas/.
  const { validate } = await import(pathToFileURL(module).href);

  const read = new Set();
  if (!validate(recordReads(resource, "", read))) {
    return validate.errors.map((e) => `${e.instancePath || "/"}: ${describe(e)}`);
  }
  const open = OPEN_SUBTREES[`${apiVersion}/${kind}`] ?? [];
  return unreadFields(resource, "", read, open).map((path) => `${path}: unknown field`);
}

/** A validator error in words (the compiled validators carry no messages). */
function describe(error) {
  if (error.message) {
    return error.message;
  }
  const params = Object.entries(error.params ?? {})
    .map(([key, value]) => `${key} ${JSON.stringify(value)}`)
    .join(", ");
  return `fails "${error.keyword}"${params ? ` (${params})` : ""}`;
}

/** "security.istio.io", "v1", "AuthorizationPolicy" -> "SecurityIstioIoV1AuthorizationPolicy". */
function schemaModuleName(apiVersion, kind) {
  const [group, version = ""] = apiVersion.split("/");
  const capital = (s) => s.charAt(0).toUpperCase() + s.slice(1);
  return group.split(".").map(capital).join("") + capital(version) + kind;
}

/** Wraps a value so that every own field read (or key listing) adds its path to `read`. */
function recordReads(value, path, read) {
  if (value === null || typeof value !== "object") {
    return value;
  }
  return new Proxy(value, {
    get(target, key, receiver) {
      const own = typeof key === "string" && Object.hasOwn(target, key);
      const field = Reflect.get(target, key, receiver);
      if (!own) {
        return field;
      }
      read.add(`${path}/${key}`);
      return recordReads(field, `${path}/${key}`, read);
    },
    // Maps (matchLabels and the like) are validated by listing their keys.
    ownKeys(target) {
      for (const key of Reflect.ownKeys(target)) {
        read.add(`${path}/${String(key)}`);
      }
      return Reflect.ownKeys(target);
    },
  });
}

/** Paths of fields in `value` that the validator never read, outside the open subtrees. */
function unreadFields(value, path, read, open) {
  if (value === null || typeof value !== "object") {
    return [];
  }
  const unread = [];
  for (const key of Object.keys(value)) {
    const child = `${path}/${key}`;
    if (open.includes(child)) {
      continue;
    }
    if (!read.has(child)) {
      unread.push(child);
    } else {
      unread.push(...unreadFields(value[key], child, read, open));
    }
  }
  return unread;
}
