"""k8s/: the rendered NetworkPolicies, read as Kubernetes would apply them: only ingest and verify
pods reach the anchors' port, every role reaches the object store, and only ingest and verify
call an anchor (policy selection and peers as in the NetworkPolicy spec, not as written)."""

from __future__ import annotations

from tests.k8s.conftest import Rendered
from tests.k8s.test_manifests import labels, notar_workloads, pod_labels, selects


def admitted(rendered: Rendered, target: dict[str, str], source: dict[str, str], port: int) -> bool:
    """Whether a pod labelled `source`, in the same namespace, may open `port` on `target`."""
    policies = [
        p
        for p in rendered.of_kind("NetworkPolicy")
        if "Ingress" in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], target)
    ]
    if not policies:
        return True
    for p in policies:
        for rule in p["spec"].get("ingress", []):
            ports = rule.get("ports")
            if ports and not any(q.get("port") in (port, "http") for q in ports):
                continue
            peers = rule.get("from")
            if peers is None:
                return True
            for peer in peers:
                if "namespaceSelector" in peer or "ipBlock" in peer:
                    continue  # other namespaces / addresses: not a pod of this namespace
                if selects(peer["podSelector"], source):
                    return True
    return False


def test_only_ingest_and_verify_reach_the_anchors(rendered: Rendered) -> None:
    """Every anchor pod (each shard's, which ingest and verify reach at its own URL)."""
    workloads = notar_workloads(rendered)
    pods = {role: labels(w) for role, w in workloads.items()}
    stranger = {"app.kubernetes.io/name": "something-else"}
    for n in range(workloads["anchor"]["spec"]["replicas"]):
        anchor = {**pods["anchor"], **pod_labels(workloads["anchor"], n)}
        assert admitted(rendered, anchor, pods["ingest"], 8080)
        assert admitted(rendered, anchor, pods["verify"], 8080)
        assert not admitted(rendered, anchor, stranger, 8080), "a stranger reaches the internal routes"
        assert not admitted(rendered, anchor, pods["anchor"], 8080), "anchors do not call each other"
    anchor = pods["anchor"]
    assert admitted(rendered, pods["ingest"], stranger, 8080), "the public API is public"
    assert admitted(rendered, pods["verify"], stranger, 8080)
    scrape = [
        peer
        for p in rendered.of_kind("NetworkPolicy")
        if selects(p["spec"]["podSelector"], anchor)
        for rule in p["spec"].get("ingress", [])
        for peer in rule.get("from", [])
        if "namespaceSelector" in peer
    ]
    assert all(peer.get("podSelector", {}).get("matchLabels") for peer in scrape), "only named pods elsewhere"


def egress_allowed(
    rendered: Rendered, source: dict[str, str], *, to: dict[str, str] | None, port: int
) -> bool:
    for p in rendered.of_kind("NetworkPolicy"):
        if "Egress" not in p["spec"]["policyTypes"] or not selects(p["spec"]["podSelector"], source):
            continue
        for rule in p["spec"].get("egress", []):
            if not any(q.get("port") == port for q in rule.get("ports", [])):
                continue
            for peer in rule.get("to", []):
                if to is None and "ipBlock" in peer:
                    return True
                in_namespace = "podSelector" in peer and "namespaceSelector" not in peer
                if to is not None and in_namespace and selects(peer["podSelector"], to):
                    return True
    return False


def test_every_role_reaches_the_store_and_only_ingest_and_verify_call_the_anchor(rendered: Rendered) -> None:
    pods = {role: labels(w) for role, w in notar_workloads(rendered).items()}
    seaweed = [labels(s) for s in rendered.of_kind("StatefulSet") if s["metadata"]["name"] == "seaweedfs"]
    for role, pod in pods.items():
        to_store = egress_allowed(rendered, pod, to=None, port=443) or any(
            egress_allowed(rendered, pod, to=s, port=8333) for s in seaweed
        )
        assert to_store, f"{rendered.overlay}: {role} cannot reach the object store"
    anchor = notar_workloads(rendered)["anchor"]
    for n in range(anchor["spec"]["replicas"]):
        shard = {**pods["anchor"], **pod_labels(anchor, n)}
        assert egress_allowed(rendered, pods["ingest"], to=shard, port=8080)
        assert egress_allowed(rendered, pods["verify"], to=shard, port=8080)
        assert not egress_allowed(rendered, pods["anchor"], to=shard, port=8080)
