#!/usr/bin/python3
"""Interop helper for tests/test_io_interop.c: files written and read by tools nobody here wrote.

  interop.py gen DIR    writes DIR/py.csv (csv module), DIR/py.json (json.dump of a list),
                        DIR/py.ndjson (json.dumps per line) and DIR/py.bson (python3-bson,
                        concatenated as mongodump writes) with the same 200 records.
  interop.py check DIR  reads NexusLite's exports DIR/exp.ndjson (json.loads per line, as pandas'
                        line mode does) and DIR/dump/c.bson + c.metadata.json (python3-bson), and
                        checks them against the records `gen` wrote; prints what failed, exit 1.

Run it with /usr/bin/python3 by absolute path (the python3 first on PATH may lack python3-bson).
Deterministic: no randomness, fixed dates.
"""
import csv
import datetime
import io
import json
import os
import sys

import bson
from bson import Binary, Int64, ObjectId

N = 200
UTC = datetime.timezone.utc


def records():
    for i in range(N):
        yield {
            "_id": i,
            "name": "user %d, \"quoted\"" % i if i % 7 == 0 else "user%d" % i,
            "city": "Zürich" if i % 3 == 0 else "Ōsaka ☃" if i % 3 == 1 else "Paris\nNord",
            "age": 18 + i % 60,
            "score": i * 0.5 + 0.25,
            "active": i % 2 == 0,
            "zip": "%05d" % (i * 37 % 100000),
            "big": 5_000_000_000 + i,
        }


def gen(d):
    recs = list(records())
    with open(os.path.join(d, "py.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)  # excel dialect: minimal quoting, \r\n line ends
        w.writerow(["_id", "name", "address.city", "age", "score", "active", "zip", "big"])
        for r in recs:
            w.writerow([r["_id"], r["name"], r["city"], r["age"], r["score"],
                        "true" if r["active"] else "false", r["zip"], r["big"]])
    with open(os.path.join(d, "py.json"), "w", encoding="utf-8") as f:
        json.dump(recs, f, indent=2)  # ensure_ascii: non-ASCII written as \\u escapes
    with open(os.path.join(d, "py.ndjson"), "w", encoding="utf-8") as f:
        for r in recs:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    with open(os.path.join(d, "py.bson"), "wb") as f:
        for r in recs:
            doc = dict(r)
            doc["_id"] = ObjectId("65f0a1b2c3d4e5f6%08x" % r["_id"])
            doc["big"] = Int64(r["big"])
            doc["when"] = datetime.datetime(2024, 1, 1, tzinfo=UTC) + datetime.timedelta(hours=r["_id"])
            doc["blob"] = Binary(bytes([r["_id"] % 256, 1, 2]))
            doc["tags"] = ["t%d" % (r["_id"] % 5), {"k": r["_id"]}]
            f.write(bson.encode(doc))


def check(d):
    bad = []
    want = {r["_id"]: r for r in records()}
    # NDJSON export: json.loads per line
    got = {}
    with open(os.path.join(d, "exp.ndjson"), encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                o = json.loads(line)
            except ValueError as e:
                bad.append("exp.ndjson line %d: %s" % (n, e))
                continue
            got[o["_id"]] = o
    if len(got) != N:
        bad.append("exp.ndjson: %d records, want %d" % (len(got), N))
    for i, r in want.items():
        o = got.get(i)
        if o is None:
            continue
        for k in ("name", "city", "age", "score", "active", "zip", "big"):
            if o.get(k) != r[k] or type(o.get(k)) is not type(r[k]):
                bad.append("exp.ndjson _id %d field %s: %r, want %r" % (i, k, o.get(k), r[k]))
    # BSON export: python3-bson
    with open(os.path.join(d, "dump", "c.bson"), "rb") as f:
        docs = bson.decode_all(f.read())
    if len(docs) != N:
        bad.append("c.bson: %d documents, want %d" % (len(docs), N))
    for doc in docs:
        i = int(str(doc["_id"])[-8:], 16)
        r = want[i]
        if doc["big"] != r["big"] or not isinstance(doc["big"], int):
            bad.append("c.bson _id %d: big %r" % (i, doc["big"]))
        if doc["city"] != r["city"] or doc["zip"] != r["zip"] or doc["score"] != r["score"]:
            bad.append("c.bson _id %d: fields differ: %r" % (i, doc))
        when = datetime.datetime(2024, 1, 1) + datetime.timedelta(hours=i)
        if doc["when"] != when:
            bad.append("c.bson _id %d: when %r, want %r" % (i, doc["when"], when))
        if bytes(doc["blob"]) != bytes([i % 256, 1, 2]):
            bad.append("c.bson _id %d: blob %r" % (i, doc["blob"]))
        if doc["tags"] != ["t%d" % (i % 5), {"k": i}]:
            bad.append("c.bson _id %d: tags %r" % (i, doc["tags"]))
    with open(os.path.join(d, "dump", "c.metadata.json"), encoding="utf-8") as f:
        meta = json.load(f)
    if meta.get("collectionName") != "c":
        bad.append("metadata: collectionName %r" % meta.get("collectionName"))
    names = [ix.get("name") for ix in meta.get("indexes", [])]
    if "_id_" not in names:
        bad.append("metadata: no _id_ index in %r" % names)
    for line in bad[:20]:
        print(line)
    print("checked %d ndjson records, %d bson documents, %d problems" % (len(got), len(docs), len(bad)))
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("gen", "check"):
        print(__doc__)
        sys.exit(2)
    if sys.argv[1] == "gen":
        gen(sys.argv[2])
        sys.exit(0)
    sys.exit(check(sys.argv[2]))
