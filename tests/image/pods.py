"""A rendered workload of k8s/ run in the image as the kubelet would run its pod: the pod's user
and group, its volumes as host directories with the ownership and modes the kubelet gives them
(fsGroup), Secret files written from ``secrets``, the environment from its ConfigMaps, Secrets
and `env`, the init containers to completion, then the container's command and args applied to
the image's ENTRYPOINT and CMD.

What cannot be kept on one host network is overridden through ``overrides``: the listen address
(a free loopback port instead of the container port, which the tests compare separately) and the
addresses of the object store and the anchor.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.image.engine import Container, Process
from tests.k8s.conftest import Rendered, expand

NOTAR_IMAGE = re.compile(r"(^|/)notar(:[^/]*)?$")


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def runs_notar(container: dict[str, Any]) -> bool:
    return bool(NOTAR_IMAGE.search(container["image"]))


def notar_workloads(rendered: Rendered) -> dict[str, dict[str, Any]]:
    """role → workload, for the workloads whose first container is `serve --role ROLE`."""
    found = {}
    for w in rendered.of_kind("Deployment") + rendered.of_kind("StatefulSet"):
        args = pod_spec(w)["containers"][0].get("args", [])
        if args[:2] == ["serve", "--role"]:
            found[args[2]] = w
    return found


def port_number(container: dict[str, Any], port: int | str) -> int:
    """A probe's port, by number or by the name of a container port."""
    if isinstance(port, int):
        return port
    named = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    assert len(named) == 1, f"{container['name']}: no port named {port}"
    return int(named[0])


def secret(rendered: Rendered, secrets: Mapping[str, Mapping[str, bytes]], name: str
           ) -> Mapping[str, bytes] | None:
    """The Secret ``name``: from ``secrets`` (also under its name without the hash suffix that a
    kustomize secretGenerator adds), else as the manifests carry it, else None."""
    shipped = [s for s in rendered.of_kind("Secret") if s["metadata"]["name"] == name]
    base = name.rsplit("-", 1)[0]
    if name in secrets or (shipped and base in secrets):
        return secrets[name if name in secrets else base]
    if shipped:
        return {k: base64.b64decode(v) for k, v in shipped[0].get("data", {}).items()}
    return None


def environment(rendered: Rendered, container: dict[str, Any], secrets: Mapping[str, Mapping[str, bytes]],
                pod: str = "notar-anchor-0") -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env |= {k: str(v) for k, v in rendered.named("ConfigMap", source["configMapRef"]["name"])
                .get("data", {}).items()}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = expand(str(e["value"]), env)
        elif "fieldRef" in e["valueFrom"]:  # the downward API: the pod's name (StatefulSet: ordinal 0)
            assert e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name", e
            env[e["name"]] = pod
        else:
            ref = e["valueFrom"]["secretKeyRef"]
            data = secret(rendered, secrets, ref["name"])
            assert data is not None, f"no Secret {ref['name']}"
            env[e["name"]] = data[ref["key"]].decode()
    return env


@dataclass
class Pod:
    role: str
    url: str  # where the main container listens (host network)
    process: Process
    container: dict[str, Any]  # the main container's spec
    manifest_env: dict[str, str]  # its environment as the manifests give it, before overrides
    user: str  # uid:gid
    volumes: dict[str, Path]  # volume name → host directory


def volumes(rendered: Rendered, workload: dict[str, Any], secrets: Mapping[str, Mapping[str, bytes]],
            tmp: Path) -> dict[str, Path]:
    """Each volume of the pod as a host directory, owned and moded as the kubelet makes it."""
    spec = pod_spec(workload)
    group = int(spec["securityContext"].get("fsGroup", 0))
    dirs: dict[str, Path] = {}
    claims = [{"name": t["metadata"]["name"], "persistentVolumeClaim": {}}
              for t in workload["spec"].get("volumeClaimTemplates", [])]
    for v in [*spec.get("volumes", []), *claims]:
        path = dirs[v["name"]] = tmp / v["name"]
        path.mkdir()
        os.chown(path, 0, group)
        if "secret" in v:
            os.chmod(path, 0o755)
            data = secret(rendered, secrets, v["secret"]["secretName"])
            assert data is not None or v["secret"].get("optional"), f"no Secret {v['secret']['secretName']}"
            for item in v["secret"].get("items", []) if data else []:
                f = path / item["path"]
                f.write_bytes(data[item["key"]])  # type: ignore[index]  # data is set: items exist
                os.chown(f, 0, group)
                # with an fsGroup the kubelet adds group read to the Secret's defaultMode
                os.chmod(f, int(v["secret"].get("defaultMode", 0o644)) | (0o040 if group else 0))
        else:  # emptyDir: world-writable; a PVC: the fsGroup's, setgid
            os.chmod(path, 0o777 if "emptyDir" in v else 0o2775)
    return dirs


def start(box: Container, rendered: Rendered, role: str, *, overrides: Mapping[str, str],
          secrets: Mapping[str, Mapping[str, bytes]], tmp: Path) -> Pod:
    """Run the init containers of ``role``'s pod to completion, then start its main container."""
    workload = notar_workloads(rendered)[role]
    spec = pod_spec(workload)
    ctx = spec["securityContext"]
    user = f"{ctx['runAsUser']}:{ctx['runAsGroup']}"
    dirs = volumes(rendered, workload, secrets, tmp)

    def launch(c: dict[str, Any], log: Path) -> Process:
        mounts = {m["mountPath"]: dirs[m["name"]] for m in c.get("volumeMounts", [])}
        read_only = [m["mountPath"] for m in c.get("volumeMounts", []) if m.get("readOnly")]
        env = environment(rendered, c, secrets) | dict(overrides)
        argv = box.image.argv(c.get("command"), c.get("args"))
        return box.run(argv, env=env, volumes=mounts, read_only=read_only, user=user, log=log)

    for init in spec.get("initContainers", []):
        proc = launch(init, tmp / f"{init['name']}.log")
        code = proc.popen.wait(timeout=120)
        assert code == 0, f"{rendered.overlay} {role}: init container {init['name']} exited {code}\n" + (
            proc.output()[-3000:])
    main = spec["containers"][0]
    host, _, port = overrides["NOTAR_LISTEN"].rpartition(":")
    proc = launch(main, tmp / f"{role}.log")
    return Pod(role, f"http://{host}:{port}", proc, main, environment(rendered, main, secrets), user, dirs)
