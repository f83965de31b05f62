#!/usr/bin/env python3
"""The anchor: the same validation in Python's jsonschema (Debian python3-jsonschema).

    anchor.py SCHEMA DOCUMENT SECONDS  ->  "python_validations_per_s N"

Draft7Validator built once, with the format checker on (the C validator asserts formats too).
"""
import importlib.metadata
import json
import sys
import time

import jsonschema

schema_path, doc_path, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
schema = json.load(open(schema_path))
doc = json.load(open(doc_path))
v = jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
v.validate(doc)
n = 0
t0 = time.perf_counter()
while True:
    for _ in range(100):
        v.validate(doc)
    n += 100
    t1 = time.perf_counter()
    if t1 - t0 >= secs:
        break
print("python_validations_per_s %.0f" % (n / (t1 - t0)))
print("jsonschema_version %s" % importlib.metadata.version("jsonschema"), file=sys.stderr)
