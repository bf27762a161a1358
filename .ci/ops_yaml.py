"""Parses every YAML file under ops/ and checks the keys each kind needs:
Kubernetes objects, the compose file, Prometheus rule groups. Exits non-zero
naming the file and what is missing."""

import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
METRIC = re.compile(r"\b(lockers_[a-z_]+)")
problems = []


def need(cond, file, what):
    if not cond:
        problems.append(f"{file}: {what}")


def kubernetes(file, docs):
    for doc in docs:
        need(isinstance(doc, dict), file, "a document that is not a mapping")
        for key in ("apiVersion", "kind", "metadata"):
            need(key in doc, file, f"{doc.get('kind', '?')} without {key}")
        kind = doc.get("kind")
        spec = doc.get("spec", {})
        if kind == "Deployment":
            pod = spec["template"]["spec"]
            need(spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items(),
                 file, "a Deployment whose selector does not match its pods")
            for c in pod["containers"]:
                need("image" in c, file, f"container {c.get('name')} without an image")
            if doc["metadata"]["name"] == "lockers-api":
                c = pod["containers"][0]
                for probe in ("readinessProbe", "livenessProbe"):
                    need(probe in c, file, f"the intake without a {probe}")
        if kind == "CronJob":
            need("schedule" in spec, file, "a CronJob without a schedule")
        if kind == "PodDisruptionBudget":
            need("selector" in spec, file, "a PodDisruptionBudget without a selector")


def compose(file, doc):
    services = doc.get("services", {})
    for name in ("postgres", "redis", "api", "worker", "mailcatcher", "simulator"):
        need(name in services, file, f"no {name} service")
    for name, service in services.items():
        need("image" in service or "build" in service, file, f"service {name} without an image or build")


def known_metrics():
    source = (ROOT / "core/src/telemetry/metrics.rs").read_text()
    return set(re.findall(r'"(lockers_[a-z_]+)"', source))


def rules(file, doc):
    known = known_metrics()
    groups = doc.get("groups")
    need(isinstance(groups, list) and groups, file, "no rule groups")
    for group in groups or []:
        need("name" in group and group.get("rules"), file, "a group without a name or rules")
        for rule in group.get("rules", []):
            for key in ("alert", "expr", "labels", "annotations"):
                need(key in rule, file, f"rule {rule.get('alert', '?')} without {key}")
            for metric in METRIC.findall(str(rule.get("expr", ""))):
                base = re.sub(r"_(bucket|count|sum)$", "", metric)
                need(base in known, file, f"rule {rule.get('alert')} uses {metric}, which nothing records")


checked = 0
for path in sorted((ROOT / "ops").rglob("*.y*ml")):
    rel = path.relative_to(ROOT)
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as e:
        problems.append(f"{rel}: does not parse: {e}")
        continue
    checked += 1
    if "k8s" in path.parts:
        kubernetes(rel, docs)
    elif path.name.startswith("compose"):
        compose(rel, docs[0])
    elif "prometheus" in path.parts:
        rules(rel, docs[0])

need(checked >= 7, "ops/", f"only {checked} YAML files found")
for p in problems:
    print(p, file=sys.stderr)
print(f"ops YAML: {checked} files parsed, {len(problems)} problems")
sys.exit(1 if problems else 0)
