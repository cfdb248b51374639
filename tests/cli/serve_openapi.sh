#!/usr/bin/env bash
# /openapi.json documents exactly the server's routing table (`moe serve
# --list-routes`): every route has its path and method in the document and
# every documented operation is a route. Also checks the document's shape:
# OpenAPI 3.0, every $ref resolves, every /v1 operation needs the bearer key
# and documents 401 with the shared error schema, path parameters declared.
source "$(dirname "$0")/lib.bash"
$MOE serve --list-routes >"$WORK/routes.txt"
[ -s "$WORK/routes.txt" ] || fail "moe serve --list-routes printed nothing"
$PY - "$WORK/routes.txt" src/serve/assets/openapi.json <<'PY'
import json, sys
routes = set()
for line in open(sys.argv[1]):
    method, path = line.split()
    routes.add((method.lower(), path))
doc = json.load(open(sys.argv[2]))
assert doc["openapi"].startswith("3.0"), doc["openapi"]
assert doc["info"]["title"] and doc["info"]["version"]
methods = {"get", "put", "post", "delete", "patch", "head", "options"}
documented = {(m, p) for p, item in doc["paths"].items() for m in item if m in methods}
missing = routes - documented
extra = documented - routes
assert not missing, f"routes without an operation in openapi.json: {sorted(missing)}"
assert not extra, f"operations in openapi.json the server does not route: {sorted(extra)}"

def resolve(ref):
    assert ref.startswith("#/"), ref
    node = doc
    for part in ref[2:].split("/"):
        assert part in node, f"$ref {ref} does not resolve"
        node = node[part]
    return node

def walk(node):
    if isinstance(node, dict):
        if "$ref" in node:
            resolve(node["$ref"])
        for v in node.values():
            walk(v)
    elif isinstance(node, list):
        for v in node:
            walk(v)
walk(doc)

schemes = doc["components"]["securitySchemes"]
assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
err = doc["components"]["schemas"]["Error"]["properties"]["error"]
assert set(err["required"]) == {"status", "field", "message"}
op_ids = set()
for (method, path) in routes:
    item = doc["paths"][path]
    op = item[method]
    assert op.get("operationId") and op["operationId"] not in op_ids, (method, path)
    op_ids.add(op["operationId"])
    assert op.get("summary"), (method, path)
    assert any(c.startswith("2") for c in op["responses"]), f"{method} {path}: no 2xx response"
    params = [p["name"] for p in item.get("parameters", []) + op.get("parameters", [])]
    assert ("{id}" in path) == ("id" in params), f"{method} {path}: path parameter not declared"
    security = op.get("security", doc.get("security"))
    if path.startswith("/v1/") or path == "/metrics":
        assert security == [{"bearer": []}], f"{method} {path}: needs the bearer key"
        r401 = op["responses"].get("401")
        assert r401 and r401["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"}, f"{method} {path}: 401 must use the Error schema"
    else:
        assert security == [], f"{method} {path} needs no key: security must be []"
    if method == "post" and path in ("/v1/infer", "/v1/generate", "/v1/train"):
        assert "application/json" in op["requestBody"]["content"], (method, path)
        for code in ("400", "413", "415"):
            assert code in op["responses"], f"{method} {path}: {code} undocumented"
print(f"openapi.json matches the {len(routes)} routes")
PY
