"""Checks of tollgate's deployment files that no schema expresses; helpers for lint-deploy.

    python deploy_checks.py check ROOT               cross-file checks (below); exit 1 on a finding
    python deploy_checks.py extract-config ROOT OUT  write the ConfigMap's tollgate.yaml to OUT
    python deploy_checks.py istio-json ROOT          deploy/istio/*.yaml as JSON, for istio-crd.mjs
    python deploy_checks.py docker-context ROOT OUT  copy the Docker build context to OUT

`check` covers what the Kubernetes and Istio schemas cannot see:
  - the pieces agree with each other: ports, names, labels, selectors, the config path,
    the Istio provider's service address and name;
  - the properties the deployment promises hold (non-root, read-only root filesystem,
    probes on /healthz and /readyz, JSON logs, a bounded ext_authz timeout, fail closed);
  - kustomization.yaml lists every manifest in deploy/kubernetes;
  - the meshConfig part of deploy/istio/mesh-config.yaml. MeshConfig is not a Kubernetes
    resource and no registry package ships a schema for it, so MESH_CONFIG below is
    transcribed from Istio's istio.mesh.v1alpha1 reference, for the fields this
    repository sets: a field it does not list is an error here until it is added.

Runs with the lint virtual environment's Python (PyYAML and jsonschema come with
kubernetes-validate).
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml

NAMESPACE = "tollgate"
CONFIG_KEY = "tollgate.yaml"
LISTEN_HOSTS = {"0.0.0.0", "[::]"}

# Protobuf's JSON form of a Duration, which is how Istio reads one: seconds with up to
# nine decimals and an "s" ("0.5s"; "500ms" is refused).
PROTO_DURATION = r"^[0-9]+(\.[0-9]{1,9})?s$"

# The parts of Istio's MeshConfig (istio.mesh.v1alpha1) that mesh-config.yaml may set.
MESH_CONFIG: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "extensionProviders": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "envoyExtAuthzGrpc"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    # MeshConfig.ExtensionProvider.EnvoyExternalAuthorizationGrpcProvider
                    "envoyExtAuthzGrpc": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["service", "port"],
                        "properties": {
                            "service": {"type": "string", "minLength": 1},
                            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                            "timeout": {"type": "string", "pattern": PROTO_DURATION},
                            "failOpen": {"type": "boolean"},
                            "statusOnError": {"type": "string", "pattern": "^[1-5][0-9][0-9]$"},
                            "includeRequestBodyInCheck": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "maxRequestBytes": {"type": "integer", "minimum": 0},
                                    "allowPartialMessage": {"type": "boolean"},
                                    "packAsBytes": {"type": "boolean"},
                                },
                            },
                        },
                    },
                },
            },
        },
        # MeshConfig.ProxyPathNormalization
        "pathNormalization": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "normalization": {
                    "enum": ["DEFAULT", "NONE", "BASE", "MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES"]
                }
            },
        },
    },
}


class Findings:
    """Problems found so far, each naming its file."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, file: str, problem: str) -> None:
        self.items.append(f"{file}: {problem}")

    def expect(self, ok: bool, file: str, problem: str) -> bool:
        if not ok:
            self.add(file, problem)
        return ok


def load_all(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def one(root: Path, relative: str, kind: str) -> dict[str, Any]:
    """The single resource of `kind` in the file, or exit with a message."""
    docs = [d for d in load_all(root / relative) if d.get("kind") == kind]
    if len(docs) != 1:
        sys.exit(f"{relative}: expected exactly one {kind}, found {len(docs)}")
    return docs[0]


def dig(value: Any, *path: str | int) -> Any:
    """value[path[0]][path[1]]..., or None where a step is missing."""
    for step in path:
        if isinstance(step, int):
            value = value[step] if isinstance(value, list) and len(value) > step else None
        else:
            value = value.get(step) if isinstance(value, dict) else None
    return value


def split_host_port(address: str) -> tuple[str, int | None]:
    host, _, port = address.rpartition(":")
    return host, int(port) if port.isdigit() else None


# --- check ---------------------------------------------------------------------------


def check(root: Path) -> int:
    k8s = root / "deploy" / "kubernetes"
    configmap = one(root, "deploy/kubernetes/configmap.yaml", "ConfigMap")
    deployment = one(root, "deploy/kubernetes/deployment.yaml", "Deployment")
    service = one(root, "deploy/kubernetes/service.yaml", "Service")
    pdb = one(root, "deploy/kubernetes/pdb.yaml", "PodDisruptionBudget")
    hpa = one(root, "deploy/kubernetes/hpa.yaml", "HorizontalPodAutoscaler")
    operator = one(root, "deploy/istio/mesh-config.yaml", "IstioOperator")
    policy = one(root, "deploy/istio/authorization-policy.yaml", "AuthorizationPolicy")

    findings = Findings()
    for doc in (configmap, deployment, service, pdb, hpa):
        findings.expect(
            dig(doc, "metadata", "namespace") == NAMESPACE,
            f"deploy/kubernetes ({doc['kind']})",
            f"metadata.namespace must be {NAMESPACE!r}",
        )

    container_ports = check_deployment(deployment, configmap, findings)
    check_config_listeners(configmap, container_ports, findings)
    check_dockerfile(root, deployment, container_ports, findings)
    grpc_port = check_service(service, deployment, container_ports, findings)
    check_pdb_and_hpa(pdb, hpa, deployment, findings)
    check_kustomization(k8s, findings)
    check_istio(operator, policy, service, grpc_port, findings)

    for item in findings.items:
        print(f"ERROR {item}")
    if findings.items:
        return 1
    print("INFO deployment files agree with each other and keep their promises")
    return 0


def check_deployment(
    deployment: dict[str, Any], configmap: dict[str, Any], findings: Findings
) -> dict[str, int]:
    """Checks the pod template; returns its container ports by name."""
    file = "deploy/kubernetes/deployment.yaml"
    pod = dig(deployment, "spec", "template", "spec") or {}
    containers = pod.get("containers") or []
    if not findings.expect(len(containers) == 1, file, "expected one container"):
        return {}
    container = containers[0]

    pod_security = pod.get("securityContext") or {}
    security = container.get("securityContext") or {}
    findings.expect(pod_security.get("runAsNonRoot") is True, file, "runAsNonRoot must be true")
    findings.expect(pod_security.get("runAsUser") == 65532, file, "runAsUser must be 65532")
    findings.expect(
        dig(pod_security, "seccompProfile", "type") == "RuntimeDefault",
        file,
        "seccompProfile must be RuntimeDefault",
    )
    findings.expect(
        security.get("readOnlyRootFilesystem") is True, file, "readOnlyRootFilesystem must be true"
    )
    findings.expect(
        security.get("allowPrivilegeEscalation") is False,
        file,
        "allowPrivilegeEscalation must be false",
    )
    findings.expect(
        dig(security, "capabilities", "drop") == ["ALL"], file, "capabilities must drop ALL"
    )

    ports = {p.get("name"): p.get("containerPort") for p in container.get("ports") or []}
    findings.expect(set(ports) == {"grpc", "admin"}, file, "container ports must be grpc and admin")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        findings.expect(
            dig(container, probe, "httpGet", "path") == path
            and dig(container, probe, "httpGet", "port") in ("admin", ports.get("admin")),
            file,
            f"{probe} must GET {path} on the admin port",
        )

    env = {e.get("name"): e.get("value") for e in container.get("env") or []}
    findings.expect(
        env.get("TOLLGATE_LOG_FORMAT") == "json", file, "TOLLGATE_LOG_FORMAT must be json"
    )
    findings.expect(
        bool(dig(container, "resources", "requests", "cpu")),
        file,
        "a CPU request is needed (the autoscaler's target is relative to it)",
    )

    # The config file the command names lies in a mount of the ConfigMap.
    args = container.get("args") or []
    config_path = args[args.index("--config") + 1] if "--config" in args[:-1] else None
    mounts = {m.get("name"): m.get("mountPath") for m in container.get("volumeMounts") or []}
    volumes = {v.get("name"): v for v in pod.get("volumes") or []}
    configmap_name = dig(configmap, "metadata", "name")
    config_volume = next(
        (n for n, v in volumes.items() if dig(v, "configMap", "name") == configmap_name), None
    )
    findings.expect(
        config_volume is not None and config_volume in mounts,
        file,
        f"ConfigMap {configmap_name} must be mounted",
    )
    if config_volume in mounts:
        findings.expect(
            config_path == f"{mounts[config_volume].rstrip('/')}/{CONFIG_KEY}",
            file,
            f"--config must be {CONFIG_KEY} in the ConfigMap mount ({mounts[config_volume]})",
        )
    return ports


def check_config_listeners(
    configmap: dict[str, Any], ports: dict[str, int], findings: Findings
) -> None:
    file = "deploy/kubernetes/configmap.yaml"
    text = dig(configmap, "data", CONFIG_KEY)
    if not findings.expect(isinstance(text, str), file, f"data.{CONFIG_KEY} is missing"):
        return
    server = (yaml.safe_load(text) or {}).get("server") or {}
    for listener in ("grpc", "admin"):
        host, port = split_host_port(str(server.get(listener, "")))
        findings.expect(
            host in LISTEN_HOSTS,
            file,
            f"server.{listener} must listen on 0.0.0.0 (or [::]) inside the pod, not {host!r}",
        )
        findings.expect(
            port == ports.get(listener),
            file,
            f"server.{listener} port {port} differs from the Deployment's {listener} port",
        )


def check_dockerfile(
    root: Path, deployment: dict[str, Any], ports: dict[str, int], findings: Findings
) -> None:
    """The image's default command and ports match what the Deployment runs."""
    file = "Dockerfile"
    lines = [line.strip() for line in (root / file).read_text().splitlines()]
    cmd = next((json.loads(line[4:]) for line in lines if line.startswith("CMD [")), None)
    args = dig(deployment, "spec", "template", "spec", "containers", 0, "args")
    findings.expect(cmd == args, file, f"CMD {cmd} differs from the Deployment's args {args}")
    exposed = {
        int(word) for line in lines if line.startswith("EXPOSE ") for word in line.split()[1:]
    }
    findings.expect(
        exposed == set(ports.values()),
        file,
        f"EXPOSE {sorted(exposed)} differs from the container ports {sorted(ports.values())}",
    )


def check_service(
    service: dict[str, Any],
    deployment: dict[str, Any],
    ports: dict[str, int],
    findings: Findings,
) -> int | None:
    """Checks the Service; returns its grpc port."""
    file = "deploy/kubernetes/service.yaml"
    labels = dig(deployment, "spec", "template", "metadata", "labels") or {}
    selector = dig(service, "spec", "selector") or {}
    findings.expect(
        bool(selector) and selector.items() <= labels.items(),
        file,
        "selector must match the Deployment's pod labels",
    )
    by_name = {p.get("name"): p for p in dig(service, "spec", "ports") or []}
    for name, port in by_name.items():
        target = port.get("targetPort")
        findings.expect(
            target in ports or target in ports.values(),
            file,
            f"port {name}: targetPort {target} is not a container port",
        )
    grpc = by_name.get("grpc") or {}
    findings.expect(grpc.get("appProtocol") == "grpc", file, "port grpc needs appProtocol: grpc")
    findings.expect("admin" in by_name, file, "port admin is missing")
    return grpc.get("port")


def check_pdb_and_hpa(
    pdb: dict[str, Any], hpa: dict[str, Any], deployment: dict[str, Any], findings: Findings
) -> None:
    labels = dig(deployment, "spec", "template", "metadata", "labels") or {}
    selector = dig(pdb, "spec", "selector", "matchLabels") or {}
    findings.expect(
        bool(selector) and selector.items() <= labels.items(),
        "deploy/kubernetes/pdb.yaml",
        "selector must match the Deployment's pod labels",
    )
    findings.expect(
        dig(pdb, "spec", "minAvailable") == 1,
        "deploy/kubernetes/pdb.yaml",
        "minAvailable must be 1",
    )
    target = dig(hpa, "spec", "scaleTargetRef") or {}
    findings.expect(
        target.get("kind") == "Deployment"
        and target.get("name") == dig(deployment, "metadata", "name"),
        "deploy/kubernetes/hpa.yaml",
        "scaleTargetRef must name the Deployment",
    )
    containers = {
        c.get("name") for c in dig(deployment, "spec", "template", "spec", "containers") or []
    }
    for metric in dig(hpa, "spec", "metrics") or []:
        container = dig(metric, "containerResource", "container")
        findings.expect(
            container is None or container in containers,
            "deploy/kubernetes/hpa.yaml",
            f"metric names container {container!r}, which the Deployment does not have",
        )
    findings.expect(
        (dig(hpa, "spec", "minReplicas") or 1) >= 2,
        "deploy/kubernetes/hpa.yaml",
        "minReplicas below 2 leaves a single pod, which the PodDisruptionBudget then pins",
    )


def check_kustomization(k8s: Path, findings: Findings) -> None:
    file = "deploy/kubernetes/kustomization.yaml"
    kustomization = load_all(k8s / "kustomization.yaml")[0]
    listed = set(kustomization.get("resources") or [])
    present = {p.name for p in k8s.glob("*.yaml")} - {"kustomization.yaml"}
    for missing in sorted(present - listed):
        findings.add(file, f"{missing} is not listed in resources")
    for extra in sorted(listed - present):
        findings.add(file, f"resources lists {extra}, which does not exist")


def check_istio(
    operator: dict[str, Any],
    policy: dict[str, Any],
    service: dict[str, Any],
    grpc_port: int | None,
    findings: Findings,
) -> None:
    file = "deploy/istio/mesh-config.yaml"
    spec = operator.get("spec") or {}
    findings.expect(
        set(spec) == {"meshConfig"},
        file,
        "spec must hold only meshConfig (so that it doubles as istiod Helm values)",
    )
    mesh = spec.get("meshConfig") or {}
    for error in jsonschema.Draft202012Validator(MESH_CONFIG).iter_errors(mesh):
        path = ".".join(str(p) for p in error.absolute_path) or "meshConfig"
        findings.add(file, f"spec.meshConfig.{path}: {error.message}")

    address = (
        f"{dig(service, 'metadata', 'name')}.{dig(service, 'metadata', 'namespace')}"
        ".svc.cluster.local"
    )
    providers = {
        p.get("name"): p.get("envoyExtAuthzGrpc") or {}
        for p in mesh.get("extensionProviders") or []
    }
    for name, grpc in providers.items():
        findings.expect(grpc.get("service") == address, file, f"{name}: service must be {address}")
        findings.expect(grpc.get("port") == grpc_port, file, f"{name}: port must be {grpc_port}")
        findings.expect("timeout" in grpc, file, f"{name}: set timeout (Istio's default is 600s)")
        findings.expect(grpc.get("failOpen") is False, file, f"{name}: failOpen must be false")

    file = "deploy/istio/authorization-policy.yaml"
    pspec = policy.get("spec") or {}
    findings.expect(pspec.get("action") == "CUSTOM", file, "action must be CUSTOM")
    findings.expect(
        dig(pspec, "provider", "name") in providers,
        file,
        f"provider.name must be one of the mesh config's providers {sorted(providers)}",
    )
    findings.expect(
        bool(dig(pspec, "selector", "matchLabels")),
        file,
        "select the workload (an empty selector covers the whole namespace)",
    )
    findings.expect(bool(pspec.get("rules")), file, "CUSTOM needs rules (none matches no request)")


# --- helpers for lint-deploy ------------------------------------------------------------


def extract_config(root: Path, out: Path) -> int:
    configmap = one(root, "deploy/kubernetes/configmap.yaml", "ConfigMap")
    text = dig(configmap, "data", CONFIG_KEY)
    if not isinstance(text, str):
        sys.exit(f"deploy/kubernetes/configmap.yaml: data.{CONFIG_KEY} is missing")
    out.write_text(text)
    return 0


def istio_json(root: Path) -> int:
    entries = [
        {"file": str(path.relative_to(root)), "resource": doc}
        for path in sorted((root / "deploy" / "istio").glob("*.yaml"))
        for doc in load_all(path)
    ]
    json.dump(entries, sys.stdout)
    return 0


def docker_context(root: Path, out: Path) -> int:
    """Copies what `docker build .` would send, following .dockerignore."""
    patterns = []
    for line in (root / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("!"):
            sys.exit(".dockerignore: exceptions (!) are not handled by this check; extend it")
        patterns.append(line.strip("/").split("/"))

    def ignored(parts: tuple[str, ...]) -> bool:
        return any(matches(pattern, list(parts)) for pattern in patterns)

    # Walk top-down and prune ignored folders, so target/ is never even listed.
    for folder, dirs, files in os.walk(root):
        parts = Path(folder).relative_to(root).parts
        dirs[:] = [d for d in dirs if not ignored((*parts, d))]
        out.joinpath(*parts).mkdir(parents=True, exist_ok=True)
        for name in files:
            if not ignored((*parts, name)):
                shutil.copy2(Path(folder, name), out.joinpath(*parts, name))
    return 0


def matches(pattern: list[str], parts: list[str]) -> bool:
    """Docker's path patterns: one glob per segment, `**` for any number of segments."""
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(matches(pattern[1:], parts[i:]) for i in range(len(parts) + 1))
    return (
        bool(parts)
        and fnmatch.fnmatchcase(parts[0], pattern[0])
        and matches(pattern[1:], parts[1:])
    )


def main(argv: list[str]) -> int:
    commands = {
        "check": (1, lambda a: check(Path(a[0]))),
        "extract-config": (2, lambda a: extract_config(Path(a[0]), Path(a[1]))),
        "istio-json": (1, lambda a: istio_json(Path(a[0]))),
        "docker-context": (2, lambda a: docker_context(Path(a[0]), Path(a[1]))),
    }
    if len(argv) < 1 or argv[0] not in commands or len(argv) - 1 != commands[argv[0]][0]:
        print(__doc__, file=sys.stderr)
        return 2
    return commands[argv[0]][1](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
