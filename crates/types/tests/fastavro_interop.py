"""The other side of tests/fastavro.rs: fastavro, an Avro implementation independent of ours.

Usage: python fastavro_interop.py SCHEMAS_DIR < request.json > reply.json

It reads SCHEMAS_DIR/*.avsc itself (references inlined by fastavro, not by chatgptd), and
answers a request {"read": [hex, ...], "write": [{"schema": name, "record": {...}}, ...]} with
{"fingerprints": {name: hex}, "read": [{"schema": name, "record": {...}}, ...], "write": [hex]}.
A record read must carry fastavro's own CRC-64-AVRO fingerprint of a known schema, and its
body must decode exactly; anything else exits non-zero.
"""

import datetime
import io
import json
import pathlib
import sys

import fastavro
from fastavro.schema import (
    UnknownType,
    expand_schema,
    fingerprint,
    parse_schema,
    to_parsing_canonical_form,
)

MARKER = b"\xc3\x01"
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def load_schemas(directory):
    """{full name: self-contained parsed schema}; a schema may reference one parsed before it."""
    pending = [json.loads(path.read_text()) for path in sorted(directory.glob("*.avsc"))]
    named, parsed = {}, {}
    while pending:
        retry = []
        for schema in pending:
            try:
                result = parse_schema(schema, named)
            except UnknownType:
                retry.append(schema)
                continue
            parsed[result["name"]] = expand_schema(result)
        if len(retry) == len(pending):
            sys.exit(f"unresolvable schemas: {[s['name'] for s in retry]}")
        pending = retry
    return parsed


def plain(value):
    """Decoded values as JSON: timestamps back to epoch milliseconds, bytes to hex."""
    if isinstance(value, datetime.datetime):
        return (value - EPOCH) // datetime.timedelta(milliseconds=1)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def main():
    schemas = load_schemas(pathlib.Path(sys.argv[1]))
    fingerprints = {
        name: fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO")
        for name, schema in schemas.items()
    }
    by_fingerprint = {bytes.fromhex(fp): name for name, fp in fingerprints.items()}
    request = json.load(sys.stdin)

    read = []
    for framed in request.get("read", []):
        data = bytes.fromhex(framed)
        if data[:2] != MARKER:
            sys.exit(f"no single-object marker: {data[:2].hex()}")
        name = by_fingerprint.get(data[2:10])
        if name is None:
            sys.exit(f"fingerprint {data[2:10].hex()} is none of fastavro's {fingerprints}")
        body = io.BytesIO(data[10:])
        record = fastavro.schemaless_reader(body, schemas[name])
        if body.tell() != len(data) - 10:
            sys.exit(f"{name}: {len(data) - 10 - body.tell()} bytes left after the record")
        read.append({"schema": name, "record": plain(record)})

    written = []
    for item in request.get("write", []):
        out = io.BytesIO()
        out.write(MARKER)
        out.write(bytes.fromhex(fingerprints[item["schema"]]))
        fastavro.schemaless_writer(out, schemas[item["schema"]], item["record"])
        written.append(out.getvalue().hex())

    json.dump({"fingerprints": fingerprints, "read": read, "write": written}, sys.stdout)


if __name__ == "__main__":
    main()
