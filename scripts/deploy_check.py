#!/usr/bin/env python3
"""Structural checks of deploy/ that no linter makes: every file a kustomization names exists, every
patch meets a resource of the base, selectors match their pods, the grace period outlasts the
gateway's shutdown, the ServiceMonitor scrapes a port the Service has, the menus copy is the
repository's, and compose's replicas are the servers haproxy balances. Prints one line per problem;
exit 1 when there is any."""
import os
import re
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEPLOY = os.path.join(ROOT, "deploy")
problems = []


def load(path):
    with open(path, encoding="utf-8") as file:
        return list(yaml.safe_load_all(file))


def kustomization(directory):
    config = load(os.path.join(directory, "kustomization.yaml"))[0]
    resources = {}
    for entry in config.get("resources", []):
        path = os.path.normpath(os.path.join(directory, entry))
        if os.path.isdir(path):
            resources.update(kustomization(path)[1])
        elif not os.path.exists(path):
            problems.append(f"{os.path.relpath(directory, ROOT)}: resource {entry} does not exist")
        else:
            for document in load(path):
                resources[(document["kind"], document["metadata"]["name"])] = document
    for generator in config.get("configMapGenerator", []):
        for entry in generator.get("files", []) + generator.get("envs", []):
            if not os.path.exists(os.path.join(directory, entry)):
                problems.append(f"{os.path.relpath(directory, ROOT)}: {generator['name']} names {entry}, which does not exist")
    for patch in config.get("patches", []):
        path = os.path.join(directory, patch["path"])
        for document in load(path):
            if (document["kind"], document["metadata"]["name"]) not in resources:
                problems.append(f"{os.path.relpath(path, ROOT)} patches {document['kind']}/{document['metadata']['name']}, which the base does not have")
    return config, resources


base_dir = os.path.join(DEPLOY, "kubernetes", "base")
_, base = kustomization(base_dir)
kustomization(os.path.join(DEPLOY, "kubernetes", "overlays", "production"))

deployment = base[("Deployment", "ussd-gateway")]
labels = deployment["spec"]["template"]["metadata"]["labels"]
for key, value in deployment["spec"]["selector"]["matchLabels"].items():
    if labels.get(key) != value:
        problems.append(f"the Deployment's selector {key}={value} does not match its pods")
service = base[("Service", "ussd-gateway")]
for key, value in service["spec"]["selector"].items():
    if labels.get(key) != value:
        problems.append(f"the Service's selector {key}={value} does not match the gateway's pods")
container_ports = {port["name"] for port in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
service_ports = {port["name"] for port in service["spec"]["ports"]}
for port in service["spec"]["ports"]:
    if port["targetPort"] not in container_ports:
        problems.append(f"the Service's port {port['name']} targets {port['targetPort']}, which the container does not have")
monitor = base[("ServiceMonitor", "ussd-gateway")]
for endpoint in monitor["spec"]["endpoints"]:
    if endpoint["port"] not in service_ports:
        problems.append(f"the ServiceMonitor scrapes port {endpoint['port']}, which the Service does not have")

settings = dict(line.split("=", 1) for line in open(os.path.join(base_dir, "settings.env"), encoding="utf-8").read().split("\n") if "=" in line)
pod = deployment["spec"]["template"]["spec"]
pause = pod["containers"][0].get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
if pod["terminationGracePeriodSeconds"] <= int(settings.get("SHUTDOWN_TIMEOUT_SECONDS", "25")) + pause:
    problems.append("terminationGracePeriodSeconds does not outlast SHUTDOWN_TIMEOUT_SECONDS and the preStop pause")
if open(os.path.join(base_dir, "menus.json"), "rb").read() != open(os.path.join(ROOT, "menus.json"), "rb").read():
    problems.append("deploy/kubernetes/base/menus.json is not the repository's menus.json (cp menus.json deploy/kubernetes/base/)")

compose = load(os.path.join(DEPLOY, "compose.yaml"))[0]
services = compose["services"]
for name, service_definition in services.items():
    for dependency in service_definition.get("depends_on", []) or []:
        if dependency not in services:
            problems.append(f"compose: {name} depends on {dependency}, which is not a service")
balanced = set(re.findall(r"^\s*server (\S+) (\S+):8080", open(os.path.join(DEPLOY, "haproxy.cfg"), encoding="utf-8").read(), re.M))
replicas = {name for name in services if name.startswith("gateway")}
if {host for _, host in balanced} != replicas:
    problems.append(f"haproxy balances {sorted(host for _, host in balanced)} but compose runs {sorted(replicas)}")

for problem in problems:
    print("deploy-check: " + problem, file=sys.stderr)
sys.exit(1 if problems else 0)
