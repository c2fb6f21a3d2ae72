#!/usr/bin/env python3
"""Validates FHIR resources with an independent library: Python `fhir.resources` (R4B models; R4 content
validates with them for the types oncowatch writes).

Usage: python3 tests/fhir_validate.py FILE...
  FILE ending in .ndjson or .jsonl: one resource (or Bundle) per non-blank line; any other FILE: one JSON
  document (a resource or a Bundle). A Bundle is validated as a whole and each entry's resource on its own.

Prints "validated N resources" and exits 0 when all are valid; otherwise prints the first invalid resource's
type, id, file, line and the validation error, and exits 1. Exit 2 when the library is missing or a file
cannot be read or parsed as JSON.
"""

import json
import sys

try:
    from fhir.resources.R4B import construct_fhir_element
except ImportError as e:  # pragma: no cover - environment problem
    print(f"fhir.resources (R4B) is not installed: {e}", file=sys.stderr)
    sys.exit(2)


class Invalid(Exception):
    pass


def validate(obj, where):
    """Validates one resource (and a Bundle's entries); returns how many resources were validated."""
    if not isinstance(obj, dict) or not isinstance(obj.get("resourceType"), str):
        raise Invalid(f"{where}: not a FHIR resource (no resourceType)")
    rtype = obj["resourceType"]
    rid = obj.get("id", "(no id)")
    try:
        construct_fhir_element(rtype, obj)
    except Exception as e:  # the library raises pydantic ValidationError and others
        raise Invalid(f"{rtype}/{rid} at {where} is invalid: {e}") from None
    count = 1
    if rtype == "Bundle":
        for i, entry in enumerate(obj.get("entry") or []):
            res = entry.get("resource") if isinstance(entry, dict) else None
            if res is not None:
                count += validate(res, f"{where} entry {i}")
    return count


def main(paths):
    if not paths:
        print(__doc__, file=sys.stderr)
        return 2
    total = 0
    try:
        for path in paths:
            with open(path, encoding="utf-8") as f:
                if path.endswith((".ndjson", ".jsonl")):
                    for n, line in enumerate(f, 1):
                        if line.strip():
                            total += validate(json.loads(line), f"{path}:{n}")
                else:
                    total += validate(json.load(f), path)
    except Invalid as e:
        print(f"INVALID {e}")
        return 1
    except (OSError, ValueError) as e:
        print(f"cannot read input: {e}", file=sys.stderr)
        return 2
    print(f"validated {total} resources")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
