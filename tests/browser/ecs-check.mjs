// Checks `_bulk` NDJSON (from `nightjar-server export elastic-bulk`) against the ECS flat
// schema of @elastic/ecs: every action is a `create` with an `_id`, and every field of every
// document either is an ECS field whose JSON value fits its ECS type (and is an array only
// where ECS allows one), or lies under `nightjar.*` (Nightjar's own namespace).
// Usage: node ecs-check.mjs FILE   -> prints {"documents": N, "fields": M}; exit 1 on errors.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { EcsFlat } = require("@elastic/ecs");

const lines = readFileSync(process.argv[2], "utf8").split("\n").filter((l) => l.length);
const errors = [];
const seen = new Set();
let docs = 0;

const fits = {
  keyword: (v) => typeof v === "string",
  constant_keyword: (v) => typeof v === "string",
  wildcard: (v) => typeof v === "string",
  match_only_text: (v) => typeof v === "string",
  text: (v) => typeof v === "string",
  ip: (v) => typeof v === "string",
  date: (v) => typeof v === "string" && !Number.isNaN(Date.parse(v)),
  long: (v) => Number.isInteger(v),
  unsigned_long: (v) => Number.isInteger(v) && v >= 0,
  integer: (v) => Number.isInteger(v),
  short: (v) => Number.isInteger(v),
  byte: (v) => Number.isInteger(v),
  float: (v) => typeof v === "number",
  scaled_float: (v) => typeof v === "number",
  double: (v) => typeof v === "number",
  boolean: (v) => typeof v === "boolean",
  flattened: (v) => typeof v === "object",
  object: (v) => typeof v === "object",
  nested: (v) => typeof v === "object",
  geo_point: (v) => typeof v === "object" || typeof v === "string",
};

function check(prefix, value, where) {
  if (prefix.startsWith("nightjar.") || prefix === "nightjar") return;
  const def = EcsFlat[prefix];
  if (def && (def.type === "object" || def.type === "flattened" || def.type === "nested")) {
    seen.add(prefix);
    return;
  }
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) check(prefix ? prefix + "." + k : k, v, where);
    return;
  }
  if (!def) {
    errors.push(`${where}: ${prefix} is not an ECS field (custom fields belong under nightjar.*)`);
    return;
  }
  seen.add(prefix);
  const values = Array.isArray(value) ? value : [value];
  if (Array.isArray(value) && !(def.normalize || []).includes("array") && value.length > 1) {
    errors.push(`${where}: ${prefix} is an array but ECS does not normalise it to one`);
  }
  for (const v of values) {
    const ok = fits[def.type];
    if (!ok) errors.push(`${where}: ${prefix}: unknown ECS type ${def.type}`);
    else if (!ok(v)) errors.push(`${where}: ${prefix} = ${JSON.stringify(v)} is not a valid ${def.type}`);
  }
}

for (let i = 0; i < lines.length; i += 2) {
  const action = JSON.parse(lines[i]);
  const where = `line ${i + 2}`;
  if (!action.create || typeof action.create._id !== "string" || !action.create._index) {
    errors.push(`line ${i + 1}: not a create action with _index and _id: ${lines[i]}`);
  }
  const doc = JSON.parse(lines[i + 1] ?? "null");
  if (!doc) { errors.push(`${where}: missing document`); break; }
  docs += 1;
  if (doc.event?.kind !== "alert") errors.push(`${where}: event.kind is ${doc.event?.kind}, not alert`);
  if (!doc["@timestamp"]) errors.push(`${where}: no @timestamp`);
  check("", doc, where);
}

console.log(JSON.stringify({ documents: docs, fields: [...seen].sort(), errors: errors.slice(0, 50) }));
process.exit(errors.length ? 1 : 0);
