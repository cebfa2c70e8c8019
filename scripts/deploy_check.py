#!/usr/bin/env python3
"""Structural checks of deploy/ that no linter makes: every file a kustomization names exists, every
patch meets a resource of the base, selectors match their pods, the grace period outlasts the
gateway's shutdown, the ServiceMonitor scrapes a port the Service has, the menus copy is the
repository's, and compose's replicas are the servers haproxy balances. The edge: the Ingress routes
to a Service port that exists and serves every host over TLS, TRUSTED_PROXY_CIDRS names the proxy
alone (compose: haproxy's fixed address; Kubernetes: nothing as wide as a /24), haproxy drops a
client's X-Forwarded-For, logs no URL or query, ends TLS 1.2 and up with the certificate compose
mounts and redirects plain HTTP; Postgres is verified (verify-full, its CA mounted wherever the
settings are read); base images are pinned to exact versions; the READMEs give providers https://
callback URLs. The cloudnative-pg overlay: each custom resource valid against its operator's CRD
schema (deploy/kubernetes/schemas, unknown fields refused), synchronous replication that never
falls back to asynchronous, WAL archived to the ObjectStore the Cluster names, a ScheduledBackup
and a PodMonitor of that Cluster, and the gateway checking Postgres against the Cluster's own CA.
The base's PrometheusRule valid against its CRD schema too.
Patroni on hosts: strict synchronous replication, timings within the failover goal, pg_rewind, commit
timestamps, TLS and scram in pg_hba, and no password in the file.
Prints one line per problem; exit 1 when there is any."""
import ipaddress
import os
import re
import sys

import jsonschema
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

settings = dict(
    line.split("=", 1) for line in open(os.path.join(base_dir, "settings.env"), encoding="utf-8").read().split("\n")
    if "=" in line and not line.startswith("#")
)
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

# The Ingress: each backend a Service port of the base, each host under TLS.
services_by_name = {name: document for (kind, name), document in base.items() if kind == "Service"}
for (kind, name), ingress in base.items():
    if kind != "Ingress":
        continue
    tls_hosts = {host for entry in ingress["spec"].get("tls", []) if entry.get("secretName") for host in entry.get("hosts", [])}
    for rule in ingress["spec"].get("rules", []):
        if rule.get("host") not in tls_hosts:
            problems.append(f"Ingress/{name}: host {rule.get('host')} has no TLS section with a Secret")
        for path in rule.get("http", {}).get("paths", []):
            backend = path["backend"]["service"]
            target = services_by_name.get(backend["name"])
            if target is None:
                problems.append(f"Ingress/{name}: {path['path']} routes to Service {backend['name']}, which the base does not have")
                continue
            port = backend["port"]
            if not any(port.get("name") == p.get("name") or port.get("number") == p.get("port") for p in target["spec"]["ports"]):
                problems.append(f"Ingress/{name}: {path['path']} routes to port {port} of Service {backend['name']}, which it does not have")
if not any(kind == "Ingress" for kind, _ in base):
    problems.append("kubernetes/base has no Ingress")


def narrow(cidrs, widest_v4, widest_v6, where):
    entries = [entry.strip() for entry in cidrs.split(",") if entry.strip()]
    if not entries:
        problems.append(f"{where}: TRUSTED_PROXY_CIDRS is empty")
    for entry in entries:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            problems.append(f"{where}: TRUSTED_PROXY_CIDRS entry {entry} is not an address or network")
            continue
        if network.prefixlen < (widest_v4 if network.version == 4 else widest_v6):
            problems.append(f"{where}: TRUSTED_PROXY_CIDRS entry {entry} is wider than the proxy alone")
    return entries


narrow(settings.get("TRUSTED_PROXY_CIDRS", ""), 24, 64, "kubernetes/base/settings.env")

# Postgres over verified TLS wherever the settings are read, with the CA mounted where libpq looks.
if settings.get("PGSSLMODE") != "verify-full":
    problems.append("kubernetes/base/settings.env: PGSSLMODE is not verify-full")
root_cert = settings.get("PGSSLROOTCERT", "")
for (kind, name), document in base.items():
    pod = {"Deployment": lambda d: d["spec"]["template"]["spec"], "Job": lambda d: d["spec"]["template"]["spec"],
           "CronJob": lambda d: d["spec"]["jobTemplate"]["spec"]["template"]["spec"]}.get(kind)
    if pod is None:
        continue
    spec = pod(document)
    for container in spec.get("initContainers", []) + spec["containers"]:
        if not any(source.get("configMapRef", {}).get("name") == "ussd-gateway-settings" for source in container.get("envFrom", [])):
            continue
        mounts = [mount["mountPath"].rstrip("/") + "/" for mount in container.get("volumeMounts", [])]
        if not root_cert or not any(root_cert.startswith(mount) for mount in mounts):
            problems.append(f"{kind}/{name}: container {container['name']} does not mount PGSSLROOTCERT ({root_cert or 'unset'})")

# compose: haproxy alone is trusted, at its fixed address on the network's subnet.
haproxy_service = services.get("haproxy", {})
address = (haproxy_service.get("networks") or {}).get("default", {}).get("ipv4_address")
pools = compose.get("networks", {}).get("default", {}).get("ipam", {}).get("config", [])
subnets = [entry["subnet"] for entry in pools]
if not address:
    problems.append("compose: haproxy has no fixed ipv4_address on the default network")
elif not any(ipaddress.ip_address(address) in ipaddress.ip_network(subnet) for subnet in subnets):
    problems.append(f"compose: haproxy's address {address} is not on the default network's subnet {subnets}")
elif not pools or not all("ip_range" in entry and ipaddress.ip_address(address) not in ipaddress.ip_network(entry["ip_range"]) for entry in pools):
    problems.append(f"compose: haproxy's address {address} could be handed to another container (give the network an ip_range without it)")
for name in sorted(replicas):
    trusted = str(services[name].get("environment", {}).get("TRUSTED_PROXY_CIDRS", ""))
    if address and [entry.strip() for entry in trusted.split(",")] != [f"{address}/32"]:
        problems.append(f"compose: {name}'s TRUSTED_PROXY_CIDRS is {trusted!r}, not haproxy alone ({address}/32)")

# haproxy.cfg: the client's X-Forwarded-For dropped before haproxy adds its own, no URL or query in
# the log, TLS 1.2 and up with the certificate compose mounts, plain HTTP redirected.
haproxy_cfg = open(os.path.join(DEPLOY, "haproxy.cfg"), encoding="utf-8").read()
frontend = re.search(r"^frontend public\n(.*?)(?=^\S|\Z)", haproxy_cfg, re.M | re.S)
frontend = frontend.group(1) if frontend else ""
lines = [line.strip() for line in frontend.split("\n") if line.strip() and not line.strip().startswith("#")]
for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
    if f"http-request del-header {header}" not in lines:
        problems.append(f"haproxy.cfg: the public frontend does not drop a client's {header}")
if "option forwardfor" not in lines:
    problems.append("haproxy.cfg: the public frontend does not set X-Forwarded-For (option forwardfor)")
log_formats = [line for line in lines if line.startswith("log-format ")]
if not log_formats:
    problems.append("haproxy.cfg: the public frontend has no log-format of its own (the default logs the URL)")
for line in log_formats:
    if re.search(r"%(\{[^}]*\})?(r|HU|HP|HPO|HQ)\b|%\[(url|path|query|base|capture)", line):
        problems.append("haproxy.cfg: the log-format logs the URL, path or query")
binds = [line for line in lines if line.startswith("bind ")]
tls_binds = [line for line in binds if " ssl " in f" {line} "]
if not tls_binds:
    problems.append("haproxy.cfg: the public frontend does not end TLS")
for line in tls_binds:
    if not re.search(r"ssl-min-ver TLSv1\.[23]\b", line):
        problems.append(f"haproxy.cfg: {line} allows TLS older than 1.2")
    certificate = re.search(r"\bcrt (\S+)", line)
    targets = ["/run/secrets/" + (entry.get("target") or entry.get("source")) for entry in haproxy_service.get("secrets", []) if isinstance(entry, dict)]
    if certificate and certificate.group(1) not in targets:
        problems.append(f"haproxy.cfg: the certificate {certificate.group(1)} is not a secret compose mounts ({targets})")
if len(binds) > len(tls_binds) and not any(line.startswith("http-request redirect scheme https") for line in lines):
    problems.append("haproxy.cfg: plain HTTP is served without a redirect to https")

# Base images pinned to an exact version: a digest, x.y.z (x.y for Postgres, whose releases have two
# numbers), or a dated Debian snapshot.
pinned = re.compile(r"@sha256:[0-9a-f]{64}$|:\d+\.\d+\.\d+(-[a-z0-9.-]+)?$|^postgres:\d+\.\d+(-[a-z0-9.-]+)?$|:[a-z]+-\d{8}(-slim)?$")
built = {definition.get("image") for definition in services.values() if "build" in definition}
images = [(f"compose: {name}", definition["image"]) for name, definition in services.items()
          if "image" in definition and "build" not in definition and definition["image"] not in built]
for containerfile in ("Containerfile", "postgres.Containerfile"):
    text = open(os.path.join(DEPLOY, containerfile), encoding="utf-8").read()
    images += [(containerfile, match) for match in re.findall(r"^FROM (\S+)", text, re.M)]

# Backups in compose: Postgres archives every WAL segment through pgBackRest within archive_timeout,
# and the backup service reads the same data directory, socket and repository the config names.
postgres_service, backup_service = services.get("postgres", {}), services.get("backup")
settings = dict(item.split("=", 1) for item in postgres_service.get("command", []) if "=" in item)
if settings.get("archive_mode") != "on" or not settings.get("archive_command", "").startswith("pgbackrest --stanza=ussd archive-push"):
    problems.append("compose: Postgres must archive its WAL with pgBackRest (archive_mode=on, archive_command=pgbackrest --stanza=ussd archive-push %p)")
if not re.fullmatch(r"\d+s", settings.get("archive_timeout", "")) or int(settings.get("archive_timeout", "0s")[:-1]) > 60:
    problems.append("compose: Postgres needs an archive_timeout of at most 60s (it bounds what a lost disk takes with it)")
pgbackrest = open(os.path.join(DEPLOY, "pgbackrest.conf"), encoding="utf-8").read()
repository = re.search(r"^repo1-path=(\S+)", pgbackrest, re.M)
if "[ussd]" not in pgbackrest or not repository:
    problems.append("deploy/pgbackrest.conf: needs the stanza [ussd] and repo1-path")
elif backup_service is None:
    problems.append("compose: no backup service")
else:
    def mounts(service):
        return {entry.split(":")[1]: entry.split(":")[0] for entry in service.get("volumes", []) if isinstance(entry, str)}
    for path in ("/var/lib/postgresql/data", "/var/run/postgresql", repository.group(1)):
        if not mounts(backup_service).get(path) or mounts(backup_service).get(path) != mounts(postgres_service).get(path):
            problems.append(f"compose: the backup service and Postgres must share the volume at {path}")
for where, image in images:
    if not pinned.search(image):
        problems.append(f"{where}: image {image} is not pinned to an exact version")

# Providers are given https:// callback URLs (plain http only to this machine).
for document in ("README.md", os.path.join("deploy", "README.md")):
    for match in re.finditer(r"http://(?!127\.0\.0\.1|localhost)[^\s`'\"<>]*(<[^>]*>[^\s`'\"]*)?/(ussd|sms|mpesa|paybill)/", open(os.path.join(ROOT, document), encoding="utf-8").read()):
        problems.append(f"{document}: a provider callback over plain http: {match.group(0)}")


# --- The cloudnative-pg overlay: custom resources against their CRDs, and how they fit together.


def strict(schema):
    """The schema with unknown fields refused, as the API server's strict field validation does:
    every object that lists its properties and neither allows others nor preserves unknown ones."""
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


crds = {}
schemas_dir = os.path.join(DEPLOY, "kubernetes", "schemas")
for name in sorted(os.listdir(schemas_dir)):
    if not name.endswith(".yaml"):
        continue
    for crd in load(os.path.join(schemas_dir, name)):
        for version in crd["spec"]["versions"]:
            api_version = f"{crd['spec']['group']}/{version['name']}"
            crds[(api_version, crd["spec"]["names"]["kind"])] = strict(version["schema"]["openAPIV3Schema"])

# The base's custom resources against their CRDs too: the PrometheusRule (deploy/monitoring's alerts
# and SLO rules, which scripts/monitoring.py generates and checks against its sources).
for (kind, name), document in sorted(base.items()):
    key = (document["apiVersion"], kind)
    where = f"kubernetes/base: {kind}/{name}"
    if key not in crds:
        if kind == "PrometheusRule":
            problems.append(f"{where}: no CRD schema for {document['apiVersion']} in deploy/kubernetes/schemas")
        continue
    for error in sorted(jsonschema.Draft7Validator(crds[key]).iter_errors(document), key=lambda e: list(e.path)):
        problems.append(f"{where}: {'.'.join(str(part) for part in error.path) or '(top)'}: {error.message}")
if ("PrometheusRule", "ussd-gateway") not in base:
    problems.append("kubernetes/base has no PrometheusRule ussd-gateway (python3 scripts/monitoring.py kubernetes)")

cnpg_dir = os.path.join(DEPLOY, "kubernetes", "overlays", "cloudnative-pg")
cnpg_config, cnpg = kustomization(cnpg_dir)
custom = {}
for entry in cnpg_config.get("resources", []):
    path = os.path.join(cnpg_dir, entry)
    if os.path.isdir(path):
        continue
    for document in load(path):
        key = (document["apiVersion"], document["kind"])
        where = f"{os.path.relpath(path, ROOT)}: {document['kind']}/{document['metadata']['name']}"
        if key not in crds:
            problems.append(f"{where}: no CRD schema for {document['apiVersion']} in deploy/kubernetes/schemas")
            continue
        for error in sorted(jsonschema.Draft7Validator(crds[key]).iter_errors(document), key=lambda e: list(e.path)):
            problems.append(f"{where}: {'.'.join(str(part) for part in error.path) or '(top)'}: {error.message}")
        custom[document["kind"]] = document

cluster = custom.get("Cluster")
if cluster is None:
    problems.append("the cloudnative-pg overlay has no Cluster")
else:
    name = cluster["metadata"]["name"]
    spec = cluster["spec"]
    synchronous = spec.get("postgresql", {}).get("synchronous", {})
    if synchronous.get("dataDurability") != "required" or synchronous.get("number", 0) < 1:
        problems.append("the Cluster's commits must wait for a standby and never fall back: synchronous.number >= 1, dataDurability required")
    if spec.get("instances", 1) < synchronous.get("number", 0) + 2:
        problems.append("the Cluster needs a standby to spare beyond its synchronous ones, or losing one stops every write")
    archivers = [plugin for plugin in spec.get("plugins", []) if plugin.get("isWALArchiver")]
    if len(archivers) != 1:
        problems.append("the Cluster must archive its WAL through exactly one plugin")
    else:
        store = archivers[0].get("parameters", {}).get("barmanObjectName")
        if ("ObjectStore", store) not in cnpg:
            problems.append(f"the Cluster archives to ObjectStore {store}, which the overlay does not have")
        backup = custom.get("ScheduledBackup")
        if backup is None:
            problems.append("the cloudnative-pg overlay has no ScheduledBackup")
        elif (backup["spec"]["cluster"]["name"] != name or backup["spec"].get("method") != "plugin"
              or backup["spec"].get("pluginConfiguration", {}).get("name") != archivers[0]["name"]):
            problems.append("the ScheduledBackup must back up the Cluster through its archiving plugin (method: plugin)")
    monitor = custom.get("PodMonitor")
    if monitor is None or monitor["spec"]["selector"]["matchLabels"].get("cnpg.io/cluster") != name:
        problems.append("a PodMonitor must scrape the Cluster's instances (cnpg.io/cluster)")
    # The gateway, the migration and the audit verify Postgres against the Cluster's own CA.
    patched = {}
    for patch in cnpg_config.get("patches", []):
        for document in load(os.path.join(cnpg_dir, patch["path"])):
            template = document["spec"].get("template") or document["spec"]["jobTemplate"]["spec"]["template"]
            for volume in template["spec"].get("volumes", []):
                if volume["name"] == "postgres-ca":
                    patched[document["kind"]] = volume["secret"]["secretName"]
    for kind in ("Deployment", "Job", "CronJob"):
        if patched.get(kind) != f"{name}-ca":
            problems.append(f"the cloudnative-pg overlay must mount Secret {name}-ca as postgres-ca in the {kind}")


# --- Patroni on hosts (deploy/patroni/patroni.yml, which `make ha-test` runs): a failover that loses
# nothing acknowledged, within the RTO goal, an old primary able to rejoin, and no secret in the file.
patroni = load(os.path.join(DEPLOY, "patroni", "patroni.yml"))[0]
dcs = patroni.get("bootstrap", {}).get("dcs", {})
if not (dcs.get("synchronous_mode") is True and dcs.get("synchronous_mode_strict") is True and dcs.get("synchronous_node_count", 1) >= 1):
    problems.append("deploy/patroni/patroni.yml: synchronous_mode and synchronous_mode_strict must be true (commits never acknowledged without a standby)")
ttl, loop_wait, retry_timeout = dcs.get("ttl", 30), dcs.get("loop_wait", 10), dcs.get("retry_timeout", 10)
if loop_wait + 2 * retry_timeout > ttl:
    problems.append("deploy/patroni/patroni.yml: Patroni needs loop_wait + 2 * retry_timeout <= ttl")
if ttl + loop_wait >= 30:
    problems.append("deploy/patroni/patroni.yml: ttl + loop_wait must stay under the 30 s failover goal")
dcs_postgres = dcs.get("postgresql", {})
dcs_parameters = dcs_postgres.get("parameters", {})
checksums = any(option == "data-checksums" for option in patroni.get("bootstrap", {}).get("initdb", []))
if not dcs_postgres.get("use_pg_rewind") or not (dcs_parameters.get("wal_log_hints") == "on" or checksums):
    problems.append("deploy/patroni/patroni.yml: use_pg_rewind with wal_log_hints or data checksums, so an old primary rejoins")
if dcs_parameters.get("track_commit_timestamp") != "on":
    problems.append("deploy/patroni/patroni.yml: track_commit_timestamp on (point-in-time restores exact to the commit)")
for role, settings in patroni.get("postgresql", {}).get("authentication", {}).items():
    if "password" in settings:
        problems.append(f"deploy/patroni/patroni.yml: the {role} password belongs in the environment (PATRONI_{role.upper()}_PASSWORD), not the file")
if patroni.get("restapi", {}).get("authentication", {}).get("password") or patroni.get("etcd3", {}).get("password"):
    problems.append("deploy/patroni/patroni.yml: the REST API's and etcd's passwords belong in the environment, not the file")
# Patroni must reach its own Postgres: through the socket (use_unix_socket, a `local` rule for its
# superuser), or over loopback TCP with a rule that lets it in.
superuser = patroni.get("postgresql", {}).get("authentication", {}).get("superuser", {}).get("username", "postgres")
hba = [rule.split() for rule in patroni.get("postgresql", {}).get("pg_hba", [])]
via_socket = patroni.get("postgresql", {}).get("use_unix_socket") and any(
    r[0] == "local" and r[2] in ("all", superuser) and r[3] != "reject" for r in hba if len(r) >= 4)
via_loopback = any(r[0].startswith("host") and r[2] in ("all", superuser) and r[3] in ("127.0.0.1/32", "::1/128") and r[4] != "reject"
                   for r in hba if len(r) >= 5)
if not (via_socket or via_loopback):
    problems.append("deploy/patroni/patroni.yml: Patroni cannot reach its own Postgres (use_unix_socket with a local rule for its superuser)")
for rule in patroni.get("postgresql", {}).get("pg_hba", []):
    fields = rule.split()
    method = fields[4] if fields[0].startswith("host") and len(fields) > 4 else fields[-1]
    if fields[0].startswith("host") and method not in ("scram-sha-256", "reject", "cert"):
        problems.append(f"deploy/patroni/patroni.yml: pg_hba rule '{rule}' must use scram-sha-256 or cert")
    if fields[0] == "host" and method != "reject":
        problems.append(f"deploy/patroni/patroni.yml: pg_hba rule '{rule}' must be hostssl (TLS only over the network)")

for problem in problems:
    print("deploy-check: " + problem, file=sys.stderr)
sys.exit(1 if problems else 0)
