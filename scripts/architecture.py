#!/usr/bin/env python3
"""The module graph of ARCHITECTURE.md, generated from Package.swift so it cannot go stale.

    scripts/architecture.py --write   rewrite the graph between the markers in ARCHITECTURE.md
    scripts/architecture.py --check   exit 1 when ARCHITECTURE.md's graph differs from Package.swift's,
                                      when a module imports one of ours it does not declare, when it
                                      declares a dependency (ours or a package's) no file of it
                                      imports, or when a module of the product imports a test helper

The graph is the transitive reduction of the declared dependencies (an arrow that another path
already implies is left out), drawn with Mermaid; `make test` runs --check.
"""
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "ARCHITECTURE.md")
BEGIN, END = "<!-- module-graph:begin -->", "<!-- module-graph:end -->"

# The layers, top to bottom, as ARCHITECTURE.md names them.
LAYERS = [
    ("Executables", ["ussd-gateway", "gateway-bench"]),
    ("Composition", ["USSDGateway"]),
    ("Channels and provider gateways", ["USSDChannel", "SMSChannel", "MPesaGateway", "Sandbox"]),
    ("Shared service parts", ["GatewayActions", "GatewayHTTP"]),
    ("Domain and provider clients", ["Menus", "Wallet", "MPesa", "AfricasTalking"]),
    ("Clients", ["Redis", "Postgres", "Curl", "ConnectionPool"]),
    ("Foundations", ["Basics", "GatewayTelemetry", "Jobs", "CHiredis", "CLibPQ", "CCurl"]),
]


def package():
    dump = subprocess.run(["swift", "package", "dump-package"], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    targets = {}
    for target in json.loads(dump)["targets"]:
        if target["type"] == "test" or target["name"] == "TestSupport" or (target.get("path") or "").startswith("Tests/"):
            continue
        deps, products = [], []
        for dep in target.get("dependencies", []):
            if "byName" in dep:
                deps.append(dep["byName"][0])
            elif "target" in dep:
                deps.append(dep["target"][0])
            elif "product" in dep:
                products.append(dep["product"][0])
        path = target.get("path") or os.path.join("Sources", target["name"])
        targets[target["name"]] = {"deps": sorted(set(deps)), "products": sorted(set(products)), "path": path, "type": target["type"]}
    return targets


def reachable(targets, start, skip_edge=None):
    seen, stack = set(), [start]
    while stack:
        node = stack.pop()
        for dep in targets[node]["deps"]:
            if (node, dep) == skip_edge or dep in seen or dep not in targets:
                continue
            seen.add(dep)
            stack.append(dep)
    return seen


def reduction(targets):
    edges = []
    for name, target in targets.items():
        for dep in target["deps"]:
            if dep in targets and dep not in reachable(targets, name, skip_edge=(name, dep)):
                edges.append((name, dep))
    return sorted(edges)


def acyclic(targets):
    return all(name not in reachable(targets, name) for name in targets)


def mermaid(targets):
    ident = lambda name: name.replace("-", "_")
    lines = ["```mermaid", "flowchart TD"]
    placed = set()
    for index, (layer, names) in enumerate(LAYERS):
        members = [name for name in names if name in targets]
        placed.update(members)
        lines.append(f'  subgraph L{index}["{layer}"]')
        lines += [f'    {ident(name)}["{name}"]' for name in members]
        lines.append("  end")
    for name in sorted(set(targets) - placed):
        lines.append(f'  {ident(name)}["{name}"]')
    lines += [f"  {ident(a)} --> {ident(b)}" for a, b in reduction(targets)]
    lines.append("```")
    return "\n".join(lines)


def import_problems(targets):
    problems = []
    ours = set(targets)
    for name, target in targets.items():
        directory = os.path.join(ROOT, target["path"])
        if target["type"] == "system" or not os.path.isdir(directory):
            continue
        imported, swift = set(), False
        for folder, _, files in os.walk(directory):
            for file in files:
                if not file.endswith(".swift"):
                    continue
                swift = True
                text = open(os.path.join(folder, file), encoding="utf-8").read()
                for module in re.findall(r"^(?:@_exported |@testable |@preconcurrency )?import (?:(?:struct|enum|class|func|protocol) )?(\w+)", text, re.M):
                    imported.add(module)
                    if module == "TestSupport" or (module in ours and module != name and module not in target["deps"]):
                        problems.append(f"{os.path.relpath(os.path.join(folder, file), ROOT)} imports {module}, which {name} does not declare")
                if "@testable import" in text:
                    problems.append(f"{os.path.relpath(os.path.join(folder, file), ROOT)} reaches into a module's internals (@testable)")
                if "@_exported import" in text:
                    problems.append(f"{os.path.relpath(os.path.join(folder, file), ROOT)} re-exports a module (@_exported): each file imports what it uses")
        # A dependency no file imports is a dependency the graph shows and the code does not have.
        for dependency in target["deps"] + target["products"]:
            if swift and dependency not in imported:
                problems.append(f"{name} declares {dependency}, which none of its files imports")
    return problems


def main():
    targets = package()
    graph = mermaid(targets)
    document = open(DOC, encoding="utf-8").read()
    before, _, rest = document.partition(BEGIN)
    _, _, after = rest.partition(END)
    current = before + BEGIN + "\n" + graph + "\n" + END + after
    if "--write" in sys.argv:
        open(DOC, "w", encoding="utf-8").write(current)
        return 0
    problems = import_problems(targets)
    if not acyclic(targets):
        problems.append("the module graph has a cycle")
    if current != document:
        problems.append("ARCHITECTURE.md's module graph is not Package.swift's: run scripts/architecture.py --write")
    for problem in problems:
        print("architecture: " + problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
