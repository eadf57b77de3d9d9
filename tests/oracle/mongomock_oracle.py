#!/usr/bin/python3
"""mongomock oracle for tests/slow_differential.c.

Reads one case per line (canonical Extended JSON) on stdin and writes one result per line
(canonical Extended JSON) on stdout, in the same order. Run with Debian's interpreter
(/usr/bin/python3) which has python3-mongomock and python3-bson.

Case:   {"id": N, "op": "find"|"project"|"sort"|"update"|"upsert", "docs": [...],
         "filter": {...}, "proj": {...}, "sort": {...}, "update": {...}}
Result: {"id": N, "ids": [...]}            find, sort (the _ids in result order)
        {"id": N, "docs": [...]}           project (the projected documents, natural order)
        {"id": N, "doc": {...}}            update, upsert (the document afterwards)
        {"id": N, "nomatch": true}         update whose filter matched nothing
        {"id": N, "error": "...", "etype": "unsupported" | "error"}
"""
import sys
import traceback

import mongomock
from bson import json_util
from bson.json_util import CANONICAL_JSON_OPTIONS
from bson.son import SON

try:  # mongomock raises NotImplementedError for what it lacks
    from mongomock import NotImplementedError as MockNotImplemented  # type: ignore
except ImportError:  # pragma: no cover
    MockNotImplemented = NotImplementedError


def run_case(db, case):
    coll = db["c"]
    coll.drop()
    docs = case.get("docs", [])
    if docs:
        coll.insert_many([dict(d) for d in docs])
    op = case["op"]
    flt = case.get("filter", {})
    if op == "find":
        return {"ids": [d["_id"] for d in coll.find(flt)]}
    if op == "project":
        return {"docs": list(coll.find(flt, case["proj"]))}
    if op == "sort":
        spec = [(k, v) for k, v in case["sort"].items()]
        return {"ids": [d["_id"] for d in coll.find(flt).sort(spec)]}
    if op == "update":
        res = coll.update_one(flt, case["update"])
        if res.matched_count == 0:
            return {"nomatch": True}
        return {"doc": coll.find_one({"_id": docs[0]["_id"]})}
    if op == "upsert":
        coll.update_one(flt, case["update"], upsert=True)
        got = list(coll.find({}))
        if len(got) != 1:
            return {"error": "upsert left %d documents" % len(got), "etype": "error"}
        return {"doc": got[0]}
    return {"error": "unknown op " + op, "etype": "unsupported"}


def main():
    client = mongomock.MongoClient()
    db = client["diff"]
    out = sys.stdout
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        case = json_util.loads(line, json_options=CANONICAL_JSON_OPTIONS)
        cid = case.get("id")
        try:
            res = run_case(db, case)
        except (MockNotImplemented, NotImplementedError) as e:
            res = {"error": "%s: %s" % (type(e).__name__, e), "etype": "unsupported"}
        except Exception as e:  # an error MongoDB would also raise, or an oracle crash
            kind = type(e).__name__
            etype = "error" if kind in ("WriteError", "OperationFailure", "ValueError",
                                        "InvalidOperation") else "crash"
            res = {"error": "%s: %s" % (kind, e), "etype": etype}
            if etype == "crash":
                res["trace"] = traceback.format_exc(limit=3)
        res = SON([("id", cid)] + list(res.items()))
        try:
            text = json_util.dumps(res, json_options=CANONICAL_JSON_OPTIONS)
        except Exception as e:  # a result we cannot serialise
            text = json_util.dumps({"id": cid, "error": "dump: %s" % e, "etype": "crash"})
        out.write(text + "\n")
    out.flush()


if __name__ == "__main__":
    main()
