#!/usr/bin/env node
// mingo oracle for tests/slow_differential.c (mingo pinned in package.json).
//
// Reads one case per line (canonical Extended JSON) on stdin and writes one result per line on
// stdout, in the same order; the protocol is the one of mongomock_oracle.py:
//   case   {"id": N, "op": "find"|"project"|"sort"|"update"|"upsert", "docs": [...], "filter",
//           "proj", "sort", "update"}
//   result {"id": N, "ids": [...]} | {"id": N, "docs": [...]} | {"id": N, "doc": {...}} |
//          {"id": N, "nomatch": true} | {"id": N, "error": "...", "etype": "unsupported"|"error"}
// mingo has one JavaScript number type: every number comes back as {"$numberDouble": ...} and the
// test compares numbers by value (normaliser mingo_no_int_long_distinction). Values it cannot
// represent (decimal128, int64 beyond 2^53) make the case "unsupported" (mingo_no_decimal128,
// mingo_int64_precision); upserts are "unsupported" (mingo_no_upsert).
"use strict";

const readline = require("readline");
const path = require("path");

let mingo, updater;
try {
  mingo = require(path.join(__dirname, "node_modules", "mingo"));
  updater = require(path.join(__dirname, "node_modules", "mingo", "dist", "cjs", "updater.js"));
} catch (e) {
  process.stderr.write("mingo_oracle: mingo is not installed (run scripts/install-deps): " + e.message + "\n");
  process.exit(3);
}

class Unsupported extends Error {}

function fromEjson(v) {
  if (Array.isArray(v)) return v.map(fromEjson);
  if (v === null || typeof v !== "object") return v;
  const keys = Object.keys(v);
  if (keys.length === 1) {
    const k = keys[0];
    const s = v[k];
    switch (k) {
      case "$numberInt":
        return Number(s);
      case "$numberLong": {
        const n = Number(s);
        if (!Number.isSafeInteger(n)) throw new Unsupported("mingo_int64_precision: " + s);
        return n;
      }
      case "$numberDouble":
        if (s === "-0.0") return -0;
        return Number(s);
      case "$numberDecimal":
        throw new Unsupported("mingo_no_decimal128: " + s);
      case "$regularExpression": {
        let flags = "";
        for (const c of s.options) {
          if ("ims".includes(c)) flags += c;
          else throw new Unsupported("mingo_regex_option: " + c);
        }
        return new RegExp(s.pattern, flags);
      }
      default:
        if (k.startsWith("$") && !k.startsWith("$$") && k.length > 1 && /^\$(binary|date|oid|timestamp|minKey|maxKey|undefined|symbol|code|dbPointer)$/.test(k))
          throw new Unsupported("mingo_type: " + k);
    }
  }
  const out = {};
  for (const k of keys) out[k] = fromEjson(v[k]);
  return out;
}

function toEjson(v) {
  if (v === undefined) return undefined;
  if (Array.isArray(v)) return v.map((x) => (x === undefined ? null : toEjson(x)));
  if (typeof v === "number") {
    if (Object.is(v, -0)) return { $numberDouble: "-0.0" };
    if (Number.isNaN(v)) return { $numberDouble: "NaN" };
    if (v === Infinity) return { $numberDouble: "Infinity" };
    if (v === -Infinity) return { $numberDouble: "-Infinity" };
    return { $numberDouble: String(v) };
  }
  if (v instanceof RegExp) return { $regularExpression: { pattern: v.source, options: v.flags.split("").sort().join("") } };
  if (v === null || typeof v !== "object") return v;
  const out = {};
  for (const k of Object.keys(v)) {
    const x = toEjson(v[k]);
    if (x !== undefined) out[k] = x;
  }
  return out;
}

function runCase(c) {
  const docs = fromEjson(c.docs || []);
  const filter = fromEjson(c.filter || {});
  switch (c.op) {
    case "find": {
      const q = new mingo.Query(filter);
      return { ids: docs.filter((d) => q.test(d)).map((d) => d._id) };
    }
    case "project": {
      const q = new mingo.Query(filter);
      return { docs: q.find(docs, fromEjson(c.proj)).all() };
    }
    case "sort": {
      const q = new mingo.Query(filter);
      return { ids: q.find(docs).sort(fromEjson(c.sort)).all().map((d) => d._id) };
    }
    case "update": {
      const q = new mingo.Query(filter);
      const d = docs[0];
      if (!q.test(d)) return { nomatch: true };
      const upd = fromEjson(c.update);
      // mingo's updater takes one operator at a time; the generator never makes two operators
      // touch the same path (MongoDB rejects that), so applying them in turn is equivalent.
      const ops = Object.keys(upd);
      for (const op of ops) {
        updater.updateObject(d, { [op]: upd[op] }, [], ops.length === 1 ? filter : {});
      }
      return { doc: d };
    }
    case "upsert":
      throw new Unsupported("mingo_no_upsert");
    default:
      throw new Unsupported("unknown op " + c.op);
  }
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
const out = [];
rl.on("line", (line) => {
  if (!line.trim()) return;
  const c = JSON.parse(line);
  const id = c.id;
  let res;
  try {
    res = Object.assign({ id }, toEjson(runCase(c)));
  } catch (e) {
    // Unsupported: mingo cannot represent the case. TypeError/RangeError: mingo itself broke
    // ("crash", not an answer). Anything else: mingo refused the case as MongoDB might.
    const etype = e instanceof Unsupported ? "unsupported"
      : (e instanceof TypeError || e instanceof RangeError || e instanceof ReferenceError) ? "crash" : "error";
    res = { id, error: String(e && e.message ? e.message : e), etype };
  }
  out.push(JSON.stringify(res));
  if (out.length >= 256) {
    process.stdout.write(out.join("\n") + "\n");
    out.length = 0;
  }
});
rl.on("close", () => {
  if (out.length) process.stdout.write(out.join("\n") + "\n");
});
