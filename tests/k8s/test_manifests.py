"""k8s/: every overlay (and variant: conftest.VARIANTS) renders with `kubectl kustomize` and
validates with `kubernetes-validate --strict`, with one shard (dev) and with several (prod: 4, a
dev variant: 3); the rendered workloads set only settings the code reads, set every setting their
role needs to values the code accepts (each anchor pod its own shard ordinal and URL), and keep the
security, probe and scaling rules (the network rules: test_network_policies)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from services.anchor.shardset import advertised_url, ordinal_of
from services.cli.commands import ROLES
from services.common.components import load
from services.common.config import ENV_PREFIX, SETTINGS, Settings, load_settings
from tests.k8s.conftest import OVERLAYS, ROOT, VARIANTS, Rendered, expand, render, tool

# The oldest Kubernetes the manifests support (sidecar-free, autoscaling/v2, PDB
# unhealthyPodEvictionPolicy) and the newest schema kubernetes-validate knows.
KUBE_VERSIONS = ("1.30.0", "1.37.0")
ROLE_WORKLOADS = {"anchor": "StatefulSet", "ingest": "Deployment", "verify": "Deployment"}
SECRET_PLACEHOLDER = "from-a-secret"


def test_there_are_a_dev_and_a_prod_overlay() -> None:
    assert {"dev", "prod"} <= set(OVERLAYS)


def test_one_shard_and_several_are_rendered(tmp_path: Path) -> None:
    """dev runs one shard, prod 4, the dev variant 3: each anchor StatefulSet's replicas are its
    NOTAR_SHARDS (components/shards copies the setting), so K is written once."""
    found = {}
    for overlay in [*OVERLAYS, *VARIANTS]:
        r = render(overlay, tmp_path / f"{overlay}.yaml")
        found[overlay] = shard_count(r)
    assert found["dev"] == 1 and found["prod"] == 4 and found["dev-3-shards"] == 3, found


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_overlay_validates_strictly(rendered: Rendered, version: str) -> None:
    validate = tool("kubernetes-validate")
    run = subprocess.run(
        [validate, "--strict", "--quiet", "-k", version, str(rendered.path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, f"{rendered.overlay} against {version}:\n{run.stdout}\n{run.stderr}"


def test_strict_validation_catches_an_unknown_field(rendered: Rendered, tmp_path: Path) -> None:
    """The check above is not vacuous: one misspelt field makes it fail."""
    text = rendered.path.read_text()
    assert "readOnlyRootFilesystem: true" in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true", 1))
    run = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "--quiet", str(bad)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode != 0 and "readOnlyRootFileSystem" in run.stdout + run.stderr


# -- settings ----------------------------------------------------------------------------------


def aws_names_read_by_the_code() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "services").rglob("*.py"):
        names |= set(re.findall(r"[\"'](AWS_[A-Z_]+)[\"']", path.read_text()))
    return names


def other_names_read_by_the_code() -> set[str]:
    """Environment names the services read besides settings, e.g. HOSTNAME (a StatefulSet pod's
    name, whose ordinal claims its shard: services/anchor/shardset.py)."""
    names: set[str] = set()
    for path in (ROOT / "services").rglob("*.py"):
        names |= set(re.findall(r"env\.get\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']", path.read_text()))
    return {n for n in names if not n.startswith(ENV_PREFIX)}


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def notar_workloads(r: Rendered) -> dict[str, dict[str, Any]]:
    """role → the workload running `notar serve --role <role>`."""
    found: dict[str, dict[str, Any]] = {}
    for w in r.of_kind("Deployment") + r.of_kind("StatefulSet"):
        for c in pod_spec(w)["containers"]:
            args = c.get("args", [])
            if args[:2] == ["serve", "--role"]:
                role = args[2]
                assert role in ROLES and role not in found, (r.overlay, args)
                assert w["kind"] == ROLE_WORKLOADS[role], f"{role} runs as a {w['kind']}"
                found[role] = w
    assert set(found) == set(ROLE_WORKLOADS), f"{r.overlay}: roles {sorted(found)}"
    return found


def container_env(r: Rendered, c: dict[str, Any], pod: str = "pod") -> dict[str, str]:
    """The environment a container of pod `pod` gets: envFrom ConfigMaps, then env, with its
    `$(NAME)` references expanded (values from Secrets are placeholders; the downward API gives
    the pod's name only). envFrom of a Secret is refused: its names would be invisible here."""
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        assert "secretRef" not in source, "name Secret values one by one (env + secretKeyRef)"
        cm = r.named("ConfigMap", source["configMapRef"]["name"])
        env |= {k: str(v) for k, v in cm.get("data", {}).items()}
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = expand(str(e["value"]), env)
        elif "fieldRef" in e["valueFrom"]:
            assert e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name", e
            env[e["name"]] = pod
        else:
            assert set(e["valueFrom"]) == {"secretKeyRef"}, e
            env[e["name"]] = SECRET_PLACEHOLDER
    return env


def shipped_overlay(r: Rendered) -> str:
    """The overlay of k8s/overlays that `r` is, or builds on (a variant)."""
    return VARIANTS[r.overlay][0] if r.overlay in VARIANTS else r.overlay


def shard_count(r: Rendered) -> int:
    """The anchor StatefulSet's replicas: one pod per shard, as many as every role's SHARDS."""
    workloads = notar_workloads(r)
    replicas: int = workloads["anchor"]["spec"]["replicas"]
    for role, w in workloads.items():
        settings, _ = role_settings(r, w)
        assert settings.get("SHARDS") == replicas, f"{r.overlay} {role}: SHARDS is not the anchor's replicas"
    return replicas


def anchor_pods(r: Rendered) -> list[str]:
    anchor = notar_workloads(r)["anchor"]
    return [f"{anchor['metadata']['name']}-{n}" for n in range(anchor["spec"]["replicas"])]


def all_containers(w: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(w)
    return [*spec.get("initContainers", []), *spec["containers"]]


def test_every_env_name_is_a_setting_the_code_reads(rendered: Rendered) -> None:
    aws, others = aws_names_read_by_the_code(), other_names_read_by_the_code()
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= aws and "HOSTNAME" in others
    for role, w in notar_workloads(rendered).items():
        for c in all_containers(w):
            for name in container_env(rendered, c):
                setting = name.startswith(ENV_PREFIX) and name[len(ENV_PREFIX) :] in SETTINGS
                known = setting or name in aws or name in others
                assert known, f"{rendered.overlay} {role}/{c['name']}: {name} is read by no code"


def role_settings(
    rendered: Rendered, w: dict[str, Any], pod: str | None = None
) -> tuple[Settings, dict[str, str]]:
    env = container_env(rendered, pod_spec(w)["containers"][0], pod or f"{w['metadata']['name']}-0")
    # Parsed exactly as `notar serve` parses them: a wrong value raises ConfigError naming it.
    return load_settings(flags={}, env=env, config_file=None), env


def test_every_role_gets_the_settings_it_needs(rendered: Rendered) -> None:
    workloads = notar_workloads(rendered)
    services = rendered.of_kind("Service")
    origins = set()
    for role, w in workloads.items():
        settings, env = role_settings(rendered, w)
        where = f"{rendered.overlay} {role}"
        main = pod_spec(w)["containers"][0]
        host, port = settings.get("LISTEN")
        assert host in ("0.0.0.0", "::"), f"{where}: LISTEN {host} is unreachable from the Service"
        assert {"name": "http", "containerPort": port, "protocol": "TCP"} in main["ports"], where
        assert settings.sources["ORIGIN"] != "default", f"{where}: ORIGIN must be the deployment's own"
        origins.add(settings.get("ORIGIN"))
        assert settings.get("LOG_FORMAT") == "json", where
        assert settings.get("STORE") == "s3", f"{where}: pods share the store; fs would not be shared"
        settings.require("S3_BUCKET", "with STORE=s3")
        settings.require("S3_ENDPOINT", "for a store other than AWS")
        assert env.get("AWS_ACCESS_KEY_ID") == env.get("AWS_SECRET_ACCESS_KEY") == SECRET_PLACEHOLDER, where
        mounts = {m["mountPath"]: m["name"] for m in main.get("volumeMounts", [])}
        assert settings.get("DATA_DIR") in mounts, f"{where}: DATA_DIR must be a volume (read-only root)"
        if role in ("ingest", "verify"):
            # shard 0's anchor: all writes and look-ups with one shard, SCITT with several
            url = urlparse(settings.get("ANCHOR_URL"))
            svc = [s for s in services if s["metadata"]["name"] == url.hostname]
            assert svc, f"{where}: ANCHOR_URL names no Service: {url.geturl()}"
            assert svc[0]["spec"]["selector"]["app.kubernetes.io/component"] == "anchor"
            first = {**labels(workloads["anchor"]), **pod_labels(workloads["anchor"], 0)}
            for n in range(workloads["anchor"]["spec"]["replicas"]):
                pod = {**labels(workloads["anchor"]), **pod_labels(workloads["anchor"], n)}
                assert selects({"matchLabels": svc[0]["spec"]["selector"]}, pod) == (pod == first), where
            assert url.port in [p["port"] for p in svc[0]["spec"]["ports"]], where
        else:
            claims = [t["metadata"]["name"] for t in w["spec"].get("volumeClaimTemplates", [])]
            assert mounts[settings.get("DATA_DIR")] in claims, f"{where}: RocksDB must be on the PVC"
            for name in ("LOG_KEY_FILE", "CLOCK_KEY_FILE", "EVM_KEY_FILE", "TSA_CA_FILE"):
                path = settings.get(name)
                if path:
                    assert any(path.startswith(m.rstrip("/") + "/") for m in mounts), f"{where}: {name}"
            kinds = settings.get("ANCHORS")
            needs = {
                "evm": ("EVM_RPC", "EVM_KEY_FILE", "EVM_CONTRACT"),
                "rfc3161": ("TSA_URL", "TSA_CA_FILE"),
            }
            for kind in kinds:
                for name in needs.get(kind, ()):
                    settings.require(name, f"with ANCHORS={kind}")
    assert len(origins) == 1, f"{rendered.overlay}: one deployment, one ORIGIN, got {origins}"


def test_each_anchor_pod_claims_its_ordinal_and_advertises_its_own_url(rendered: Rendered) -> None:
    """As `notar serve --role anchor` reads them (services/anchor/shardset.py): pod n's ordinal is
    n, and its SHARD_URL reaches that pod only, through the StatefulSet's headless Service, on the
    port it listens on."""
    anchor = notar_workloads(rendered)["anchor"]
    headless = rendered.named("Service", anchor["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None", "pod DNS names need a headless Service"
    assert selects({"matchLabels": headless["spec"]["selector"]}, labels(anchor))
    urls = set()
    for n, pod in enumerate(anchor_pods(rendered)):
        settings, env = role_settings(rendered, anchor, pod)
        config = load(flags={}, env=env, config_file=None)
        assert ordinal_of(config, env) == n, pod
        url = urlparse(advertised_url(config))
        assert url.hostname == f"{pod}.{headless['metadata']['name']}", url.geturl()
        assert url.port in [p["port"] for p in headless["spec"]["ports"]]
        assert url.port == settings.get("LISTEN")[1]
        urls.add(url.geturl())
    assert len(urls) == len(anchor_pods(rendered)), "each shard's own URL"


def secret_refs(w: dict[str, Any]) -> set[tuple[str, str]]:
    """(Secret, key) pairs a workload reads, from env and from volumes."""
    refs = {
        (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for c in all_containers(w)
        for e in c.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    for v in pod_spec(w).get("volumes", []):
        if "secret" in v and not v["secret"].get("optional"):
            refs |= {(v["secret"]["secretName"], item["key"]) for item in v["secret"]["items"]}
    return refs


def test_secrets_are_generated_in_dev_and_never_shipped_in_prod(rendered: Rendered) -> None:
    secrets = {s["metadata"]["name"]: s for s in rendered.of_kind("Secret")}
    wanted = set().union(*(secret_refs(w) for w in notar_workloads(rendered).values()))
    assert any(n.startswith("notar-s3") and k == "AWS_ACCESS_KEY_ID" for n, k in wanted)
    if shipped_overlay(rendered) == "prod":
        assert not secrets, "prod must not carry Secrets: `kubectl apply` would overwrite the real ones"
        assert {("notar-signing-keys", "log.key"), ("notar-signing-keys", "clock.key")} <= wanted
        assert ("notar-index-key", "index.key") in wanted
    else:
        for name, key in wanted:
            assert name in secrets and key in secrets[name]["data"], f"{rendered.overlay}: {name}/{key}"


def test_signing_keys_reach_the_anchor_owner_only(rendered: Rendered) -> None:
    """notar refuses key files that group or others can read (services/anchor/keys.py), and the
    kubelet makes Secret files group-readable under an fsGroup: the keys are copied, 0400."""
    anchor = notar_workloads(rendered)["anchor"]
    settings, _ = role_settings(rendered, anchor)
    if shipped_overlay(rendered) == "dev":
        assert settings.get("LOG_KEY_FILE") is None, "dev: keys created on each anchor's PVC at first start"
        return
    spec = pod_spec(anchor)
    volumes = {v["name"]: v for v in spec["volumes"]}
    init = {c["name"]: c for c in spec["initContainers"]}["install-keys"]
    assert "install -m 0400" in init["args"][0]
    mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
    for name in ("LOG_KEY_FILE", "CLOCK_KEY_FILE"):
        path = Path(settings.get(name))
        volume = volumes[mounts[str(path.parent)]]
        assert volume["emptyDir"]["medium"] == "Memory", f"{name}: keys never touch a disk"
        assert any(m["name"] == volume["name"] for m in init["volumeMounts"]), "the init container fills it"
    for v in volumes.values():
        if "secret" in v:
            assert v["secret"]["defaultMode"] == 0o400, v["name"]


def test_each_anchor_pod_installs_the_keys_of_its_ordinal(rendered: Rendered, tmp_path: Path) -> None:
    """components/signing-keys' init container, run with sh with its volumes as directories: pod 0
    takes notar-signing-keys' log.key and clock.key (shard 0), pod n > 0 log-<n>.key and
    clock-<n>.key of notar-shard-keys, 0400; a pod whose keys are missing stops and names them."""
    anchor = notar_workloads(rendered)["anchor"]
    init = {c["name"]: c for c in pod_spec(anchor).get("initContainers", [])}.get("install-keys")
    if init is None:
        assert shipped_overlay(rendered) == "dev", "keys made on each anchor's PVC"
        return
    volumes = {v["name"]: v for v in pod_spec(anchor)["volumes"]}
    script = init["args"][0]
    for m in sorted(init["volumeMounts"], key=lambda m: -len(m["mountPath"])):
        script = script.replace(m["mountPath"], str(tmp_path / m["name"]))
        (tmp_path / m["name"]).mkdir()
    by_secret = {v["secret"]["secretName"]: n for n, v in volumes.items() if "secret" in v}
    signing, shards = tmp_path / by_secret["notar-signing-keys"], tmp_path / by_secret["notar-shard-keys"]
    (signing / "log.key").write_text("log 0")
    (signing / "clock.key").write_text("clock 0")
    for n in range(1, max(2, len(anchor_pods(rendered)))):
        (shards / f"log-{n}.key").write_text(f"log {n}")
        (shards / f"clock-{n}.key").write_text(f"clock {n}")
    keys = tmp_path / "keys"
    for pod in [*anchor_pods(rendered), "notar-anchor-1"]:
        for f in keys.iterdir():
            f.unlink()
        env = {"PATH": os.environ["PATH"], **container_env(rendered, init, pod)}
        run = subprocess.run([*init["command"], script], env=env, capture_output=True, text=True, timeout=30)
        n = int(pod.rsplit("-", 1)[1])
        assert run.returncode == 0, run.stderr
        installed = [(keys / f).read_text() for f in ("log.key", "clock.key")]
        assert installed == [f"log {n}", f"clock {n}"], pod
        assert (keys / "log.key").stat().st_mode & 0o777 == 0o400
    (shards / "clock-1.key").unlink()
    env = {"PATH": os.environ["PATH"], **container_env(rendered, init, "notar-anchor-1")}
    run = subprocess.run([*init["command"], script], env=env, capture_output=True, text=True, timeout=30)
    assert run.returncode != 0 and "clock-1.key" in run.stderr and "notar-shard-keys" in run.stderr


def test_the_index_key_reaches_anchor_and_ingest_the_same_and_owner_only(rendered: Rendered) -> None:
    """One index key for every anchor and ingest pod (services/common/index_key.py: an ingest
    pod never makes one), from one Secret, copied 0400 into memory like the signing keys."""
    sources = set()
    for role in ("anchor", "ingest"):
        w = notar_workloads(rendered)[role]
        settings, _ = role_settings(rendered, w)
        spec = pod_spec(w)
        path = Path(settings.get("INDEX_KEY_FILE"))
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
        volume = volumes[mounts[str(path.parent)]]
        assert volume["emptyDir"]["medium"] == "Memory", f"{role}: the index key never touches a disk"
        init = {c["name"]: c for c in spec["initContainers"]}["install-index-key"]
        assert f"install -m 0400 /etc/notar/secrets/index/index.key {path}" in init["args"][0]
        from_secret = {m["mountPath"]: m["name"] for m in init["volumeMounts"]}["/etc/notar/secrets/index"]
        secret = volumes[from_secret]
        assert secret["secret"]["defaultMode"] == 0o400 and not secret["secret"].get("optional"), role
        sources.add(secret["secret"]["secretName"])
    assert len(sources) == 1, f"{rendered.overlay}: anchor and ingest read {sources}"
    verify = pod_spec(notar_workloads(rendered)["verify"])
    assert "index" not in str(verify.get("volumes", [])), "verify pods need no index key"


# -- pods ----------------------------------------------------------------------------------------


def test_pods_are_locked_down(rendered: Rendered) -> None:
    for w in rendered.of_kind("Deployment") + rendered.of_kind("StatefulSet"):
        name = f"{rendered.overlay} {w['metadata']['name']}"
        spec = pod_spec(w)
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        for c in all_containers(w):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"] == {"drop": ["ALL"]} and sc.get("privileged") is False, name
            assert "add" not in sc["capabilities"], name
            res = c["resources"]
            assert {"cpu", "memory"} <= set(res["requests"]) and {"cpu", "memory"} <= set(res["limits"]), name


def test_probes_use_readyz_and_healthz(rendered: Rendered) -> None:
    for role, w in notar_workloads(rendered).items():
        c = pod_spec(w)["containers"][0]
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}, role
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, role


def test_anchor_is_one_pod_per_shard_with_a_pvc_and_a_pdb(rendered: Rendered) -> None:
    """One shard: a drain waits for the anchor to be moved on purpose (minAvailable 1). Several:
    one anchor at a time may go (its shard's share goes to the others), never two."""
    anchor = notar_workloads(rendered)["anchor"]
    assert anchor["spec"]["replicas"] == shard_count(rendered)
    assert anchor["spec"]["volumeClaimTemplates"][0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    pdbs = [
        p for p in rendered.of_kind("PodDisruptionBudget") if selects(p["spec"]["selector"], labels(anchor))
    ]
    assert len(pdbs) == 1
    if anchor["spec"]["replicas"] == 1:
        assert pdbs[0]["spec"]["minAvailable"] == 1
    else:
        assert pdbs[0]["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdbs[0]["spec"]


def test_ingest_and_verify_scale_on_cpu_and_request_rate(rendered: Rendered) -> None:
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in rendered.of_kind("HorizontalPodAutoscaler")}
    for role in ("ingest", "verify"):
        w = notar_workloads(rendered)[role]
        hpa = hpas[w["metadata"]["name"]]
        assert hpa["apiVersion"] == "autoscaling/v2" and hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        kinds = {m["type"]: m for m in hpa["spec"]["metrics"]}
        assert kinds["Resource"]["resource"]["name"] == "cpu"
        assert kinds["Pods"]["pods"]["metric"]["name"] == "notar_http_requests_per_second"
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        assert pod_spec(w)["topologySpreadConstraints"], role


# -- network policies ------------------------------------------------------------------------------


def labels(w: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = w["spec"]["template"]["metadata"]["labels"]
    return found


def pod_labels(statefulset: dict[str, Any], n: int) -> dict[str, str]:
    """The labels the StatefulSet controller adds to its pod of ordinal `n`."""
    name = f"{statefulset['metadata']['name']}-{n}"
    return {"statefulset.kubernetes.io/pod-name": name, "apps.kubernetes.io/pod-index": str(n)}


def selects(selector: dict[str, Any], pod: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions)."""
    if any(pod.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        value = pod.get(e["key"])
        ok = {
            "In": value in e.get("values", []),
            "NotIn": value not in e.get("values", []),
            "Exists": value is not None,
            "DoesNotExist": value is None,
        }[e["operator"]]
        if not ok:
            return False
    return True
