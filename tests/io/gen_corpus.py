#!/usr/bin/python3
"""Writes the seed corpora of the io fuzz targets: fuzz/corpus/{csv,ndjson,bson}/ (deterministic).
Run: /usr/bin/python3 tests/io/gen_corpus.py  (from the repository root)."""
import os
import struct

import bson
from bson import Binary, Int64, ObjectId, Decimal128, Regex, Timestamp, MinKey, MaxKey, Code
import datetime

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fuzz", "corpus")


def put(kind, name, data):
    d = os.path.join(ROOT, kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8"))


CSV = {
    "basic.csv": "name,age,score,ok,when\nann,30,1.5,true,2024-05-01T10:20:30Z\nbob,-7,2e3,false,\n",
    "quoted.csv": 'a,b\n"x, y","say ""hi"""\n"multi\nline",\'single\'\n',
    "nested.csv": "name,address.zip,address.geo.lat\nann,\"02134\",42.5\nbo\n",
    "crlf.csv": "k,v\r\n1,a\r\n2,\"b\r\nc\"\r\n",
    "strict_errors.csv": 'a,b\n1,x"y\n2,"q"z\n3,ok\n',
    "unbalanced.csv": 'a,b\n1,"open\n2,3\n',
    "semicolon.csv": "a;b;c\n1;2;3\n\"x;y\";;\n",
    "bom_utf8.csv": "\ufeffname,city\nz,Z\u00fcrich\n",
    "bad_utf8.csv": b"a,b\n1,\xff\xfe\n2,ok\n",
    "conflict.csv": "a,a.b\n1,2\n",
    "extra_cols.csv": "a\n1,2,3\n,\n",
    "empty_lines.csv": "\n\na,b\n\n1,2\n\n",
}
NDJSON = {
    "basic.ndjson": '{"a": 1}\n{"b": "x", "c": [1, 2, {"d": null}]}\n',
    "extjson.ndjson": '{"_id": {"$oid": "65f0a1b2c3d4e5f601234567"}, "n": {"$numberLong": "5"}, '
                      '"d": {"$date": "2024-05-01T10:20:30.123Z"}, "x": {"$numberDecimal": "1.10"}, '
                      '"b": {"$binary": {"base64": "AQID", "subType": "04"}}}\n',
    "bad_lines.ndjson": '{"a": 1}\n{"a": \n[1]\n"str"\n{"a": 3}\r\n',
    "utf16le.ndjson": "\ufeff{\"s\": \"\u00e9\U0001F600\"}\n".encode("utf-16-le"),
    "utf16be.ndjson": "\ufeff{\"s\": \"x\"}\n".encode("utf-16-be"),
    "bad_utf8.ndjson": b'{"s": "a\xc3\x28"}\n{"ok": 1}\n',
    "array.json": '[\n {"a": 1},\n {"b": {"c": "]}\\""}}\n]\n',
    "sequence.json": '{"a": 1}\n{\n "b": 2\n}\n',
    "truncated.json": '[{"a": 1}, {"b": "xx',
    "dollar.ndjson": '{"$set": 1}\n{"a": {"$bad": 1}}\n',
}


def bdocs():
    yield {"a": 1}
    yield {"_id": ObjectId("65f0a1b2c3d4e5f601234567"), "n": Int64(7), "f": 2.5, "s": "text",
           "t": True, "z": None, "when": datetime.datetime(2024, 5, 1, tzinfo=datetime.timezone.utc),
           "bin": Binary(b"\x01\x02\x03", 4), "arr": [1, "two", {"three": 3}],
           "dec": Decimal128("1.10"), "re": Regex("^a.*", "i"), "ts": Timestamp(1, 2),
           "min": MinKey(), "max": MaxKey(), "code": Code("x = 1")}
    yield {"nested": {"deep": {"deeper": {"deepest": [[], {}]}}}}


def build_bson():
    good = b"".join(bson.encode(d) for d in bdocs())
    one = bson.encode({"a": 1})
    put("bson", "good.bson", good)
    put("bson", "truncated.bson", good[:-7])
    put("bson", "huge_length.bson", one + struct.pack("<i", 0x7FFFFFFF) + b"\x10a\x00")
    put("bson", "tiny_length.bson", one + struct.pack("<i", 3) + one)
    bad_inner = bytearray(bson.encode({"s": "abc"}))
    bad_inner[7] = 0x40  # string length lies
    put("bson", "bad_inner.bson", bytes(bad_inner) + one)
    no_nul = bytearray(one)
    no_nul[-1] = 1
    put("bson", "no_trailing_nul.bson", bytes(no_nul) + one)
    bad_utf8 = bytearray(bson.encode({"s": "ab"}))
    bad_utf8[-3] = 0xFF
    put("bson", "bad_utf8.bson", bytes(bad_utf8))
    put("bson", "stray.bson", one + b"\x01\x02")


for k, v in CSV.items():
    put("csv", k, v)
for k, v in NDJSON.items():
    put("ndjson", k, v)
build_bson()
