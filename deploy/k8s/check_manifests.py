#!/usr/bin/env python3
"""Static checks of deploy/k8s/ that need no Kubernetes API server.

Two parts:
  * schema: every field of every object is one the Kubernetes API knows, of
    the right kind (mapping, list, scalar), and required fields are there.
    Uses the API models of the Kubernetes Python client (Debian's
    python3-kubernetes, API 1.22); skipped, saying so, when it is missing.
  * facts: what fleet needs of these manifests and what the README promises
    (probes, limits, drain vs grace period, names and ports that must agree
    across files, the security context).

Usage: check_manifests.py DIR. Prints each problem; exits 1 if any.
"""

import collections
import os
import re
import sys

import yaml

# Files that kustomization.yaml must not list: the Secret template holds a
# placeholder token, and a Job is applied on its own.
NOT_IN_KUSTOMIZATION = {"secret.example.yaml", "example-job.yaml"}
TOKEN_ENV = "FLEET_TOKEN"
WORKER_DEFAULT_DRAIN_S = 30  # fleet-worker's --drain_timeout default

problems = []


def fail(where, message):
    problems.append(f"{where}: {message}")


# ---------------------------------------------------------------- schema --

MODELS = {
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "Secret"): "V1Secret",
    ("v1", "Service"): "V1Service",
    ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("batch/v1", "Job"): "V1Job",
}


def check_schema(where, data, type_name, client):
    """Walks `data` along the client's openapi_types of `type_name`."""
    if type_name.startswith("list["):
        if not isinstance(data, list):
            fail(where, f"expected a list, got {type(data).__name__}")
            return
        for i, item in enumerate(data):
            check_schema(f"{where}[{i}]", item, type_name[5:-1], client)
        return
    if type_name.startswith("dict("):
        if not isinstance(data, dict):
            fail(where, f"expected a mapping, got {type(data).__name__}")
            return
        value_type = type_name[type_name.index(",") + 1:-1].strip()
        for key, value in data.items():
            check_schema(f"{where}.{key}", value, value_type, client)
        return
    if type_name == "str":
        # Quantities and durations are strings; a bare 2 for cpu is accepted
        # by the API server, but quote them so every tool reads a string.
        if not isinstance(data, str):
            fail(where, f"expected a string, got {data!r}")
        return
    if type_name == "int":
        if not isinstance(data, int) or isinstance(data, bool):
            fail(where, f"expected an integer, got {data!r}")
        return
    if type_name == "bool":
        if not isinstance(data, bool):
            fail(where, f"expected true or false, got {data!r}")
        return
    if type_name in ("object", "datetime", "date", "float"):
        return  # IntOrString, Quantity, free-form
    model = getattr(client, type_name, None)
    if model is None:
        return
    if not isinstance(data, dict):
        fail(where, f"expected a {type_name} mapping, got {data!r}")
        return
    by_json_name = {json: attr for attr, json in model.attribute_map.items()}
    for key, value in data.items():
        attr = by_json_name.get(key)
        if attr is None:
            fail(where, f"unknown field '{key}' for {type_name}")
            continue
        check_schema(f"{where}.{key}", value, model.openapi_types[attr], client)


def check_required(where, data, type_name, client):
    # The client's deserializer builds the model objects, whose setters
    # refuse a missing required field or a value outside an enum.
    api = client.ApiClient()
    try:
        api._ApiClient__deserialize(data, type_name)  # pylint: disable=protected-access
    except (ValueError, TypeError) as error:
        fail(where, f"not a valid {type_name}: {error}")


# ----------------------------------------------------------------- facts --

def duration_seconds(text):
    """'30s', '5m', '1m30s' (absl durations as the daemons take them)."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * units[u] for n, u in parts)


def flags(container):
    """--name=value args as a dict (--name alone maps to 'true')."""
    out = {}
    for arg in container.get("args", []):
        if isinstance(arg, str) and arg.startswith("--"):
            name, _, value = arg[2:].partition("=")
            out[name] = value if _ else "true"
    return out


def pod_spec(doc):
    if doc["kind"] == "Deployment" or doc["kind"] == "Job":
        return doc["spec"]["template"]["spec"]
    return None


def container_port(container, port):
    """The number a probe's or Service's port (name or number) refers to."""
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p["containerPort"]
    return None


def check_pod(where, doc, expected_image):
    spec = pod_spec(doc)
    pod_security = spec.get("securityContext", {})
    if pod_security.get("runAsNonRoot") is not True:
        fail(where, "pod securityContext.runAsNonRoot must be true")
    uid = pod_security.get("runAsUser")
    # The kubelet checks runAsNonRoot only against a numeric UID; the image's
    # USER is a name, so the pod must give the number.
    if not isinstance(uid, int) or uid == 0:
        fail(where, "pod securityContext.runAsUser must be a non-zero UID")
    if pod_security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        fail(where, "pod seccompProfile must be RuntimeDefault")
    if spec.get("automountServiceAccountToken") is not False:
        fail(where, "automountServiceAccountToken must be false (fleet never calls the API)")

    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    mounted = set()
    for v in volumes.values():
        if "emptyDir" in v and "sizeLimit" not in (v["emptyDir"] or {}):
            fail(where, f"emptyDir volume '{v['name']}' needs a sizeLimit")

    for c in spec["containers"]:
        cw = f"{where} container '{c['name']}'"
        if c.get("image") != expected_image:
            fail(cw, f"image {c.get('image')!r}, expected {expected_image!r} as everywhere else")
        security = c.get("securityContext", {})
        if security.get("allowPrivilegeEscalation") is not False:
            fail(cw, "allowPrivilegeEscalation must be false")
        if security.get("readOnlyRootFilesystem") is not True:
            fail(cw, "readOnlyRootFilesystem must be true")
        if security.get("capabilities", {}).get("drop") != ["ALL"]:
            fail(cw, "capabilities must drop ALL")
        resources = c.get("resources", {})
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in resources.get(kind, {}):
                    fail(cw, f"resources.{kind}.{resource} is missing")
        env = {e["name"]: e for e in c.get("env", [])}
        token = env.get(TOKEN_ENV, {}).get("valueFrom", {}).get("secretKeyRef")
        if not token:
            fail(cw, f"{TOKEN_ENV} must come from the token Secret (secretKeyRef)")
        elif token.get("optional") is True:
            fail(cw, f"{TOKEN_ENV}'s Secret must not be optional: fail closed without it")
        # Kubernetes leaves $(VAR) as is when VAR is not defined.
        for arg in c.get("command", []) + c.get("args", []):
            for var in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", str(arg)):
                if var not in env:
                    fail(cw, f"'{arg}' refers to $({var}), which is not in env")
        mounts = {}
        for m in c.get("volumeMounts", []):
            if m["name"] not in volumes:
                fail(cw, f"mounts undeclared volume '{m['name']}'")
            mounted.add(m["name"])
            mounts[m["mountPath"]] = m["name"]
        # A read-only root needs somewhere for temporary files.
        if "/tmp" not in mounts:
            fail(cw, "read-only root filesystem without a volume at /tmp")
        c["_mounts"] = mounts
        c["_env"] = env
    for name in volumes:
        if name not in mounted:
            fail(where, f"volume '{name}' is mounted nowhere")


def check_deployment_probes(where, container):
    for probe in ("readinessProbe", "livenessProbe"):
        if probe not in container:
            fail(where, f"has no {probe}")


def main(directory):
    kustomization = yaml.safe_load(open(os.path.join(directory, "kustomization.yaml")))
    files = sorted(f for f in os.listdir(directory) if f.endswith(".yaml")
                   and f != "kustomization.yaml")
    namespace = kustomization.get("namespace")
    listed = kustomization.get("resources", [])
    for f in listed:
        if not os.path.exists(os.path.join(directory, f)):
            fail("kustomization.yaml", f"lists {f}, which does not exist")
    for f in files:
        if f in NOT_IN_KUSTOMIZATION and f in listed:
            fail("kustomization.yaml", f"must not list {f}")
        if f not in NOT_IN_KUSTOMIZATION and f not in listed:
            fail("kustomization.yaml", f"does not list {f}")

    docs = []  # (file, doc)
    for f in files:
        with open(os.path.join(directory, f)) as stream:
            for doc in yaml.safe_load_all(stream):
                if doc is not None:
                    docs.append((f, doc))

    try:
        import kubernetes.client as client  # pylint: disable=import-outside-toplevel
    except ImportError:
        client = None
        print("check_manifests: schema check skipped: no kubernetes Python client "
              "(Debian: python3-kubernetes)")
    for f, doc in docs:
        where = f"{f} {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        model = MODELS.get((doc.get("apiVersion"), doc.get("kind")))
        if model is None:
            fail(where, f"unexpected apiVersion/kind {doc.get('apiVersion')}/{doc.get('kind')}")
            continue
        if client is not None:
            check_schema(where, doc, model, client)
            check_required(where, doc, model, client)
        meta = doc.get("metadata", {})
        if doc["kind"] == "Namespace":
            if meta.get("name") != namespace:
                fail(where, f"namespace is not kustomization's '{namespace}'")
        elif meta.get("namespace") != namespace:
            # Explicit, so that `kubectl apply -f` of one file lands there too.
            fail(where, f"metadata.namespace must be '{namespace}'")

    if problems:
        return  # the facts below read fields the schema says are wrong or missing
    try:
        check_facts(docs)
    except (KeyError, IndexError, TypeError, AttributeError) as error:
        fail("manifests", f"missing or malformed field ({type(error).__name__}: {error})")


def check_facts(docs):
    by_kind = {}
    for f, doc in docs:
        by_kind.setdefault(doc["kind"], []).append((f, doc))

    def one(kind, name):
        found = [d for _, d in by_kind.get(kind, []) if d["metadata"]["name"] == name]
        if len(found) != 1:
            fail("manifests", f"expected one {kind} named {name}, found {len(found)}")
            return None
        return found[0]

    scheduler = one("Deployment", "fleet-scheduler")
    worker = one("Deployment", "fleet-worker")
    service = one("Service", "fleet-scheduler")
    pvc = one("PersistentVolumeClaim", "fleet-scheduler-state")
    job = one("Job", "fleet-examples")
    secret = one("Secret", "fleet-token")
    if None in (scheduler, worker, service, pvc, job, secret):
        return

    # The image most containers name is the one they all must name.
    images = collections.Counter(c.get("image") for d in (scheduler, worker, job)
                                 for c in pod_spec(d)["containers"])
    expected_image = images.most_common(1)[0][0]
    for d in (scheduler, worker, job):
        where = f"{d['kind']}/{d['metadata']['name']}"
        check_pod(where, d, expected_image)
        labels = d["spec"]["template"]["metadata"].get("labels", {})
        if d["kind"] == "Deployment":
            selector = d["spec"]["selector"]["matchLabels"]
            if any(labels.get(k) != v for k, v in selector.items()):
                fail(where, "selector does not match the pod template's labels")
            for c in pod_spec(d)["containers"]:
                check_deployment_probes(f"{where} container '{c['name']}'", c)
        for c in pod_spec(d)["containers"]:
            ref = c["_env"].get(TOKEN_ENV, {}).get("valueFrom", {}).get("secretKeyRef", {})
            if ref and (ref.get("name") != secret["metadata"]["name"]
                        or ref.get("key") not in secret.get("stringData", {})):
                fail(where, f"{TOKEN_ENV} refers to {ref}, not the Secret template's name/key")

    # The Secret template must not hold something that looks like a token.
    for value in secret.get("stringData", {}).values():
        if not value.startswith("REPLACE"):
            fail("secret.example.yaml", "holds a value, not the REPLACE... placeholder")
    if "data" in secret:
        fail("secret.example.yaml", "holds base64 data; keep only the stringData placeholder")

    # --- scheduler
    where = "Deployment/fleet-scheduler"
    spec = scheduler["spec"]
    if spec.get("replicas") != 1:
        fail(where, "replicas must be 1 (one scheduler)")
    if spec.get("strategy", {}).get("type") != "Recreate":
        fail(where, "strategy must be Recreate: never two schedulers on one state")
    sc = pod_spec(scheduler)["containers"][0]
    sflags = flags(sc)
    state_dir = sflags.get("state_dir")
    volumes = {v["name"]: v for v in pod_spec(scheduler).get("volumes", [])}
    if not state_dir:
        fail(where, "no --state_dir: a rescheduled scheduler would lose every job")
    else:
        volume = volumes.get(sc["_mounts"].get(state_dir), {})
        claim = volume.get("persistentVolumeClaim", {}).get("claimName")
        if claim != pvc["metadata"]["name"]:
            fail(where, f"--state_dir={state_dir} is not the mount of PVC "
                        f"{pvc['metadata']['name']}")
    if "ReadWriteOnce" not in pvc["spec"].get("accessModes", []):
        fail("PersistentVolumeClaim", "should be ReadWriteOnce (one scheduler at a time)")
    sports = {p["name"]: p["containerPort"] for p in sc.get("ports", [])}
    if str(sports.get("grpc")) != sflags.get("port", "50051"):
        fail(where, "container port 'grpc' differs from --port")
    if str(sports.get("http")) != sflags.get("http_port", "8265"):
        fail(where, "container port 'http' differs from --http_port")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = sc.get(probe, {}).get("httpGet", {})
        if get.get("path") != "/healthz" or \
                container_port(sc, get.get("port")) != sports.get("http"):
            fail(where, f"{probe} must be an httpGet of /healthz on the http port")
        # /healthz waits up to 5 s for the event loop before answering 503.
        if sc.get(probe, {}).get("timeoutSeconds", 1) <= 5:
            fail(where, f"{probe}.timeoutSeconds must exceed /healthz's 5 s loop wait")

    # --- service
    where = "Service/fleet-scheduler"
    pod_labels = scheduler["spec"]["template"]["metadata"]["labels"]
    if any(pod_labels.get(k) != v for k, v in service["spec"]["selector"].items()):
        fail(where, "selector does not select the scheduler's pods")
    service_ports = {}
    for p in service["spec"]["ports"]:
        target = container_port(sc, p.get("targetPort", p["port"]))
        if target is None or target != p["port"]:
            fail(where, f"port {p['name']} ({p['port']}) does not reach container port "
                        f"{p.get('targetPort')} = {target}")
        service_ports[p["name"]] = p["port"]
    if set(service_ports) != {"grpc", "http"}:
        fail(where, "must expose exactly grpc and http")
    scheduler_address = f"{service['metadata']['name']}:{service_ports.get('grpc')}"

    # --- workers
    where = "Deployment/fleet-worker"
    wspec = pod_spec(worker)
    wc = wspec["containers"][0]
    wflags = flags(wc)
    if wflags.get("scheduler") != scheduler_address:
        fail(where, f"--scheduler={wflags.get('scheduler')}, not the Service {scheduler_address}")
    try:
        drain = duration_seconds(wflags["drain_timeout"]) if "drain_timeout" in wflags \
            else WORKER_DEFAULT_DRAIN_S
    except ValueError as error:
        fail(where, str(error))
        drain = WORKER_DEFAULT_DRAIN_S
    grace = wspec.get("terminationGracePeriodSeconds", 30)
    if grace <= drain:
        fail(where, f"terminationGracePeriodSeconds {grace} must exceed the drain "
                    f"timeout {drain:g}s, or SIGKILL cuts drains short")
    slots_ref = wc["_env"].get("FLEET_SLOTS", {}).get("valueFrom", {}).get("resourceFieldRef", {})
    if wflags.get("slots") != "$(FLEET_SLOTS)" or slots_ref.get("resource") != "limits.cpu" \
            or slots_ref.get("containerName") != wc["name"]:
        fail(where, "--slots must be $(FLEET_SLOTS), the container's limits.cpu")
    wports = {p["name"]: p["containerPort"] for p in wc.get("ports", [])}
    if str(wports.get("objects")) != wflags.get("port"):
        fail(where, "container port 'objects' differs from --port")
    for probe in ("readinessProbe", "livenessProbe"):
        port = wc.get(probe, {}).get("tcpSocket", {}).get("port")
        if container_port(wc, port) != wports.get("objects"):
            fail(where, f"{probe} must check the object service's port")
    wvolumes = {v["name"]: v for v in wspec.get("volumes", [])}
    shm = wvolumes.get(wc["_mounts"].get("/dev/shm"), {}).get("emptyDir") or {}
    if shm.get("medium") != "Memory" or "sizeLimit" not in shm:
        fail(where, "/dev/shm must be an emptyDir of medium Memory with a sizeLimit")
    spill = wflags.get("spill_dir", "/tmp")
    if "emptyDir" not in wvolumes.get(wc["_mounts"].get(spill), {}):
        fail(where, f"--spill_dir={spill} is not an emptyDir mount")
    rolling = worker["spec"].get("strategy", {}).get("rollingUpdate", {})
    if rolling.get("maxUnavailable") != 0:
        fail(where, "rollingUpdate.maxUnavailable must be 0 (drain one, keep capacity)")
    for lib in wflags.get("task_lib", "").split(","):
        if not lib.startswith("/usr/local/lib/"):
            fail(where, f"--task_lib={lib} is not in the image's /usr/local/lib")

    # --- example job
    where = "Job/fleet-examples"
    jc = pod_spec(job)["containers"][0]
    if f"--address={scheduler_address}" not in jc.get("args", []) or \
            "all" not in jc.get("args", []):
        fail(where, f"must run `fleet-examples all --address={scheduler_address}`")
    if pod_spec(job).get("restartPolicy") not in ("Never", "OnFailure"):
        fail(where, "restartPolicy must be Never or OnFailure")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: check_manifests.py DIR")
    main(sys.argv[1])
    for p in problems:
        print(f"check_manifests: {p}")
    if problems:
        sys.exit(1)
    print("check_manifests: ok")
