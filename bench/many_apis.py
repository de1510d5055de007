#!/usr/bin/env python3
"""Writes a gateway configuration with many APIs (bench/many_apis.sh).

    many_apis.py OUT REVISION [APIS] [OPS] [BACKEND_URL]

APIs `a0` .. `a{APIS-1}`, each with OPS operations `GET /o{j}/*`; every API
points at BACKEND_URL. Written to OUT.tmp and renamed into place, so the
gateway's watcher never reads a half-written file.
"""
import json
import os
import sys


def main() -> None:
    out, revision = sys.argv[1], int(sys.argv[2])
    apis = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
    ops = int(sys.argv[4]) if len(sys.argv) > 4 else 10
    backend = sys.argv[5] if len(sys.argv) > 5 else "http://127.0.0.1:18000"
    doc = {
        "revision": revision,
        "apis": [
            {
                "id": f"a{i}",
                "displayName": f"API {i}",
                "path": f"a{i}",
                "serviceUrl": backend,
                "subscriptionRequired": False,
                "operations": [
                    {
                        "id": f"a{i}-o{j}",
                        "displayName": f"op {j}",
                        "method": "GET",
                        "urlTemplate": f"/o{j}/*",
                    }
                    for j in range(ops)
                ],
            }
            for i in range(apis)
        ],
        "backends": [],
        "namedValues": [],
    }
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, separators=(",", ":"))
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
