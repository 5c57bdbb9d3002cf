#!/usr/bin/env python3
"""`helm template` and `helm lint` without a helm binary.

Drives Helm's own engine (PyPI helm-python-sdk: libhelm_c.so behind a Python API); run it with
the venv that scripts/helm-env.sh creates:

    ~/.cache/inbound/helm-venv/bin/python scripts/helm.py render charts/inbound \
        --set issuer=https://auth.example.com --name inbound --namespace inbound-system
    ~/.cache/inbound/helm-venv/bin/python scripts/helm.py lint charts/inbound \
        --set-json '{"issuer": "https://auth.example.com"}'

Values compose like helm's: every --values file in order, then every --set / --set-json in
order, deep-merged over the chart's defaults. --set-json takes helm's `path=JSON` or a whole
JSON object. `render` prints one multi-document YAML stream (templates sorted by path, empty
documents and NOTES.txt left out) and exits 1 with the engine's error when rendering fails
(including values.schema.json violations and `fail` calls in templates).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from helm_python import _native, parse_set_json, parse_set_string
from helm_python.chart import Chart, lint, values_from_yaml
from helm_python.errors import HelmError

SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of user values: maps merge recursively, anything else replaces."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def user_values(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for path in args.values:
        with open(path, encoding="utf-8") as f:
            values = merge(values, values_from_yaml(f.read()) or {})
    for kind, expression in args.overrides:
        if kind == "set":
            values = merge(values, parse_set_string(expression))
        elif expression.lstrip().startswith("{"):
            parsed = json.loads(expression)
            if not isinstance(parsed, dict):
                raise SystemExit(f"--set-json {expression!r}: expected a JSON object")
            values = merge(values, parsed)
        else:
            values = merge(values, parse_set_json(expression))
    return values


def documents(text: str) -> list[str]:
    """The non-empty YAML documents of one rendered template."""
    out = []
    for doc in re.split(r"(?m)^---[ \t]*$", text):
        meaningful = [line for line in doc.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        if meaningful:
            out.append(doc.strip("\n"))
    return out


def render(args: argparse.Namespace) -> int:
    values = user_values(args)
    opts: dict[str, Any] = {"name": args.name, "namespace": args.namespace}
    # The C library's render options also take what `helm template --kube-version /
    # --api-versions` set; the Python wrapper does not expose them, so call it directly.
    if args.kube_version:
        opts["kube_version"] = args.kube_version
    if args.api_versions:
        opts["api_versions"] = args.api_versions
    try:
        with Chart.load(args.chart) as chart:
            rendered: dict[str, str] = json.loads(
                _native.call_string("helm_render", chart._raw(), json.dumps(values), json.dumps(opts))
            )
    except HelmError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    stream = []
    for path in sorted(rendered):
        if path.endswith("NOTES.txt"):
            continue
        for doc in documents(rendered[path]):
            stream.append(f"---\n# Source: {path}\n{doc}\n")
    sys.stdout.write("".join(stream))
    return 0


def run_lint(args: argparse.Namespace) -> int:
    try:
        report = lint(
            args.chart,
            values=user_values(args),
            strict=not args.no_strict,
            namespace=args.namespace,
            kube_version=args.kube_version,
        )
    except HelmError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    for message in report.get("messages") or []:
        severity = SEVERITY.get(message.get("severity"), str(message.get("severity")))
        print(f"[{severity}] {message.get('path')}: {message.get('error')}")
    errors = report.get("errors") or []
    # With strict, warnings fail the lint as `helm lint --strict` does.
    failing = [m for m in report.get("messages") or [] if m.get("severity", 0) >= (2 if not args.no_strict else 3)]
    if errors or failing:
        print(f"Error: {args.chart}: {len(errors) or len(failing)} chart(s) failed linting", file=sys.stderr)
        return 1
    print(f"{report.get('total_charts_linted', 0)} chart(s) linted, 0 chart(s) failed")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("chart", help="chart directory or .tgz")
        p.add_argument("--values", "-f", action="append", default=[], metavar="FILE", help="values YAML file")
        p.add_argument("--set", dest="overrides", action="append", default=[], type=lambda s: ("set", s),
                       metavar="PATH=VALUE", help="helm --set expression")
        p.add_argument("--set-json", dest="overrides", action="append", type=lambda s: ("json", s),
                       metavar="JSON", help="helm --set-json PATH=JSON, or a whole JSON object of values")
        p.add_argument("--kube-version", help="Kubernetes version for .Capabilities, e.g. v1.20.0")

    p = sub.add_parser("render", help="print the rendered manifests as one YAML stream")
    common(p)
    p.add_argument("--name", default="release-name", help="release name")
    p.add_argument("--namespace", default="default", help="release namespace")
    p.add_argument("--api-versions", action="append", default=[], metavar="GROUP/VERSION[/KIND]",
                   help="extra .Capabilities.APIVersions entries")
    p.set_defaults(run=render)

    p = sub.add_parser("lint", help="helm lint (strict unless --no-strict)")
    common(p)
    p.add_argument("--namespace", default=None, help="release namespace")
    p.add_argument("--no-strict", action="store_true", help="warnings do not fail")
    p.set_defaults(run=run_lint)

    args = parser.parse_args()
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
