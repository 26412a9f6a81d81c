"""The subset of JSON Schema (draft 2020-12) that artifact.schema.json uses.

A full validator would be a runtime dependency on every device; this one
reads `type`, `properties`, `required`, `additionalProperties`,
`patternProperties`-free objects, `enum`, `const`, `items`, `minItems`,
`maxItems`, `minimum`, `maximum`, `exclusiveMinimum`, `minLength`,
`$ref` into the document's own `$defs`, `anyOf` and `oneOf`. A keyword
outside that set is refused when the schema is checked (`check_schema`),
so the schema cannot silently use one that is not enforced. The tests hold
it to the `jsonschema` package on every golden artifact.
"""

import math

__all__ = ["KEYWORDS", "check_schema", "errors"]

# keywords that carry no constraint
_ANNOTATIONS = {"$schema", "$id", "$comment", "title", "description", "$defs"}
KEYWORDS = _ANNOTATIONS | {
    "type", "properties", "required", "additionalProperties", "enum",
    "const", "items", "minItems", "maxItems", "minimum", "maximum",
    "exclusiveMinimum", "minLength", "$ref", "anyOf", "oneOf",
}  # fmt: skip
_SCHEMA_KEYWORDS = ("items", "additionalProperties")
_SCHEMA_LISTS = ("anyOf", "oneOf")


def check_schema(schema, path="#"):
    """Raises ValueError naming the first keyword this subset ignores."""
    if isinstance(schema, bool):
        return
    if not isinstance(schema, dict):
        raise ValueError(f"{path}: a schema is an object or a boolean")
    unknown = sorted(set(schema) - KEYWORDS)
    if unknown:
        raise ValueError(
            f"{path}: keyword(s) {unknown} are not in the subset "
            "edge_backbones.core.json_schema enforces"
        )
    for key in ("properties", "$defs"):
        for name, sub in schema.get(key, {}).items():
            check_schema(sub, f"{path}/{key}/{name}")
    for key in _SCHEMA_KEYWORDS:
        if key in schema:
            check_schema(schema[key], f"{path}/{key}")
    for key in _SCHEMA_LISTS:
        for index, sub in enumerate(schema.get(key, ())):
            check_schema(sub, f"{path}/{key}/{index}")


def errors(instance, schema, root=None, path="$"):
    """[(JSON path, problem)] where `instance` breaks `schema`; [] if none.

    Paths read as `$.outputs.P1.dtype` or `$.compiled.partitions[0]`.
    """
    root = schema if root is None else root
    if schema is True:
        return []
    if schema is False:
        return [(path, "is not allowed here")]
    if "$ref" in schema:
        found = errors(instance, _resolve(root, schema["$ref"]), root, path)
        if found:
            return found
    if "type" in schema and not _is_type(instance, schema["type"]):
        return [(path, f"must be {_types(schema['type'])}; got "
                 f"{_json_name(instance)} {_short(instance)}")]  # fmt: skip
    if "const" in schema and not _equal(instance, schema["const"]):
        return [(path, f"must be {_short(schema['const'])}; got "
                 f"{_short(instance)}")]  # fmt: skip
    if "enum" in schema and not any(
        _equal(instance, v) for v in schema["enum"]
    ):
        return [(path, f"must be one of {schema['enum']}; got "
                 f"{_short(instance)}")]  # fmt: skip
    found = []
    if isinstance(instance, dict):
        found += _object_errors(instance, schema, root, path)
    if isinstance(instance, list):
        found += _array_errors(instance, schema, root, path)
    if _is_number(instance):
        found += _number_errors(instance, schema, path)
    if isinstance(instance, str) and len(instance) < schema.get("minLength", 0):
        found.append((path, f"must have at least {schema['minLength']} "
                      "characters"))  # fmt: skip
    if "anyOf" in schema:
        branches = [errors(instance, s, root, path) for s in schema["anyOf"]]
        if all(branches):
            found.append(
                _no_branch("anyOf", schema["anyOf"], branches, instance)
            )
    if "oneOf" in schema:
        branches = [errors(instance, s, root, path) for s in schema["oneOf"]]
        passed = sum(1 for b in branches if not b)
        if passed == 0:
            found.append(
                _no_branch("oneOf", schema["oneOf"], branches, instance)
            )
        elif passed > 1:
            found.append((path, f"matches {passed} of oneOf's branches"))
    return found


def _object_errors(instance, schema, root, path):
    found = []
    properties = schema.get("properties", {})
    for key in schema.get("required", ()):
        if key not in instance:
            kind = _kind(properties.get(key, True), root)
            found.append((f"{path}.{key}", f"missing: no {key!r} {kind}, "
                          "which is required"))  # fmt: skip
    extra = schema.get("additionalProperties", True)
    for key, value in instance.items():
        if key in properties:
            found += errors(value, properties[key], root, f"{path}.{key}")
        elif extra is False:
            found.append((f"{path}.{key}", "is not a field of this object"))
        elif extra is not True:
            found += errors(value, extra, root, f"{path}.{key}")
    return found


def _array_errors(instance, schema, root, path):
    found = []
    if len(instance) < schema.get("minItems", 0):
        found.append((path, f"must have at least {schema['minItems']} items"))
    if len(instance) > schema.get("maxItems", math.inf):
        found.append((path, f"must have at most {schema['maxItems']} items"))
    if "items" in schema:
        for index, item in enumerate(instance):
            found += errors(item, schema["items"], root, f"{path}[{index}]")
    return found


def _number_errors(instance, schema, path):
    found = []
    if "minimum" in schema and instance < schema["minimum"]:
        found.append((path, f"must be >= {schema['minimum']}; got {instance}"))
    if "maximum" in schema and instance > schema["maximum"]:
        found.append((path, f"must be <= {schema['maximum']}; got {instance}"))
    low = schema.get("exclusiveMinimum")
    if low is not None and instance <= low:
        found.append((path, f"must be > {low}; got {instance}"))
    return found


def _no_branch(keyword, schemas, branches, instance):
    # a branch whose const/enum properties the instance has (its kind)
    # explains best, then the one with the fewest problems; on a tie the
    # later one (a schema lists its general case first)
    ranked = [
        (not _selects(s, instance), len(b), -i, b)
        for i, (s, b) in enumerate(zip(schemas, branches, strict=True))
    ]
    where, problem = min(ranked, key=lambda r: r[:3])[3][0]
    return where, f"{problem} (no branch of {keyword} matches)"


def _selects(schema, instance):
    """Whether `instance` has the const/enum values `schema`'s properties
    name (the branch is about this kind of object)."""
    if not isinstance(instance, dict) or not isinstance(schema, dict):
        return False
    for key, sub in schema.get("properties", {}).items():
        if not isinstance(sub, dict) or key not in instance:
            continue
        if "const" in sub and not _equal(instance[key], sub["const"]):
            return False
        if "enum" in sub and not any(
            _equal(instance[key], v) for v in sub["enum"]
        ):
            return False
    return True


def _kind(schema, root):
    """ "object", "string", ... as the property's schema declares it."""
    while isinstance(schema, dict) and "$ref" in schema:
        schema = _resolve(root, schema["$ref"])
    expected = schema.get("type") if isinstance(schema, dict) else None
    return expected if isinstance(expected, str) else "field"


def _resolve(root, ref):
    if not ref.startswith("#/"):
        raise ValueError(f"$ref {ref!r}: only references into this document")
    node = root
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_type(value, expected):
    if isinstance(expected, list):
        return any(_is_type(value, t) for t in expected)
    if expected == "integer":
        # as the standard: 2.0 is an integer, True is not
        return _is_number(value) and float(value).is_integer()
    return {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
        "number": _is_number,
    }[expected](value)


def _equal(a, b):
    # JSON equality: True is not 1
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_equal, a, b))
    return a == b


def _types(expected):
    return " or ".join(expected) if isinstance(expected, list) else expected


def _json_name(value):
    for name in ("null", "boolean", "integer", "number", "string", "array",
                 "object"):  # fmt: skip
        if _is_type(value, name):
            return name
    return type(value).__name__


def _short(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
